Package: alsa-ucm-conf
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 689
Maintainer: Debian ALSA Maintainers <pkg-alsa-devel@lists.alioth.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 1.2.8-1
Depends: libasound2 (>= 1.2.4)
Description: ALSA Use Case Manager configuration files
 This package contains ALSA Use Case Manager configuration of audio
 input/output names and routing for specific audio hardware. They can be
 used with the alsaucm tool.
 .
 ALSA is the Advanced Linux Sound Architecture.
Homepage: https://www.alsa-project.org/

