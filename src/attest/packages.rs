//! OS package databases found inside component layers: dpkg's status file (and distroless's
//! `status.d/` directory), Alpine's apk `installed` database, and the control data of `.deb`
//! files imported into the store (kept as image config labels by `store::import`).
//!
//! All inputs are untrusted bytes from images. Parsers never fail: a record they cannot use
//! (no name or version, not installed) is skipped, invalid UTF-8 is replaced.

use std::collections::BTreeMap;

use super::os_release::OsRelease;

/// Which package manager a package belongs to (and so which purl type it gets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PackageKind {
    #[default]
    Deb,
    Apk,
}

/// One installed OS package.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OsPackage {
    pub kind: PackageKind,
    pub name: String,
    pub version: String,
    /// Architecture as the package manager names it (`amd64`, `x86_64`, `all`, `noarch`).
    pub arch: String,
    /// The source package (dpkg `Source` without its version, apk `o:` origin).
    pub source: Option<String>,
    /// `Name <email>` as the package states it.
    pub maintainer: Option<String>,
    /// The licence as the package declares it (apk `L:`), unvalidated.
    pub license: Option<String>,
}

/// What a component's package databases say: its OS release and its installed packages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsFacts {
    pub release: Option<OsRelease>,
    pub packages: Vec<OsPackage>,
}

/// The labels `store::import` puts on the image config of an imported `.deb`.
pub const DEB_LABEL_PACKAGE: &str = "dev.cairn.deb.package";
pub const DEB_LABEL_VERSION: &str = "dev.cairn.deb.version";
pub const DEB_LABEL_ARCHITECTURE: &str = "dev.cairn.deb.architecture";
pub const DEB_LABEL_CONTROL: &str = "dev.cairn.deb.control";

/// deb822 paragraphs: field names lowercased, continuation lines joined with `\n`.
fn paragraphs(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| cur.get_mut(k)) {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let key = k.trim().to_ascii_lowercase();
            cur.insert(key.clone(), v.trim().to_string());
            last = Some(key);
        } else {
            last = None;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn non_empty(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_string)
}

fn deb_from_paragraph(p: &BTreeMap<String, String>) -> Option<OsPackage> {
    let name = non_empty(p.get("package"))?;
    let version = non_empty(p.get("version"))?;
    // "Source: glibc (2.36-9)" names the source package and its version when they differ.
    let source = p
        .get("source")
        .and_then(|s| s.split_whitespace().next())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some(OsPackage {
        kind: PackageKind::Deb,
        name,
        version,
        arch: non_empty(p.get("architecture")).unwrap_or_default(),
        source,
        maintainer: non_empty(p.get("maintainer")),
        license: non_empty(p.get("license")),
    })
}

fn installed(p: &BTreeMap<String, String>) -> bool {
    p.get("status").is_some_and(|s| s.split_whitespace().eq(["install", "ok", "installed"]))
}

/// Packages from dpkg's `var/lib/dpkg/status`: only those whose `Status` is
/// `install ok installed`.
pub fn from_dpkg_status(bytes: &[u8]) -> Vec<OsPackage> {
    paragraphs(&String::from_utf8_lossy(bytes))
        .iter()
        .filter(|p| installed(p))
        .filter_map(deb_from_paragraph)
        .collect()
}

/// Packages from one file of distroless's `var/lib/dpkg/status.d/`. These files usually carry
/// no `Status` field; a paragraph that has one must say `install ok installed`. Files without
/// a `Package` field (such as `*.md5sums`) yield nothing.
pub fn from_dpkg_status_d(bytes: &[u8]) -> Vec<OsPackage> {
    paragraphs(&String::from_utf8_lossy(bytes))
        .iter()
        .filter(|p| !p.contains_key("status") || installed(p))
        .filter_map(deb_from_paragraph)
        .collect()
}

/// Packages from Alpine's `lib/apk/db/installed`: `P:` name, `V:` version, `A:` arch,
/// `L:` licence, `o:` origin, `m:` maintainer.
pub fn from_apk_installed(bytes: &[u8]) -> Vec<OsPackage> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut fields: BTreeMap<char, String> = BTreeMap::new();
    let mut flush = |fields: &mut BTreeMap<char, String>| {
        let get = |c: char| fields.get(&c).filter(|v| !v.is_empty()).cloned();
        if let (Some(name), Some(version)) = (get('P'), get('V')) {
            out.push(OsPackage {
                kind: PackageKind::Apk,
                name,
                version,
                arch: get('A').unwrap_or_default(),
                source: get('o'),
                maintainer: get('m'),
                license: get('L'),
            });
        }
        fields.clear();
    };
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            flush(&mut fields);
            continue;
        }
        let mut chars = line.chars();
        if let (Some(key), Some(':')) = (chars.next(), chars.next()) {
            // Only the first occurrence counts (file records repeat other letters).
            fields.entry(key).or_insert_with(|| chars.as_str().trim().to_string());
        }
    }
    flush(&mut fields);
    out
}

/// The package a `.deb` import describes, from its image config labels (none when the labels
/// are not there). The control text fills what the short labels lack.
pub fn from_deb_labels(labels: &BTreeMap<String, String>) -> Vec<OsPackage> {
    let control = labels
        .get(DEB_LABEL_CONTROL)
        .map(|c| paragraphs(c).into_iter().next().unwrap_or_default())
        .unwrap_or_default();
    let mut p = control.clone();
    for (label, field) in [
        (DEB_LABEL_PACKAGE, "package"),
        (DEB_LABEL_VERSION, "version"),
        (DEB_LABEL_ARCHITECTURE, "architecture"),
    ] {
        if let Some(v) = labels.get(label).filter(|v| !v.trim().is_empty()) {
            p.insert(field.to_string(), v.clone());
        }
    }
    deb_from_paragraph(&p).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPKG_STATUS: &str = "\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u7
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files.

Package: libc6
Status: install ok installed
Priority: optional
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u7
Depends: libgcc-s1
Description: GNU C Library: Shared libraries

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libzstd1
Status: install ok installed
Architecture: amd64
Source: libzstd (1.5.4+dfsg2-5)
Version: 1.5.4+dfsg2-5
Maintainer: RPM packaging team <team+pkg-rpm@tracker.debian.org>
Conffiles:
 /etc/foo 0123456789abcdef
";

    #[test]
    fn dpkg_status_installed_only() {
        let pkgs = from_dpkg_status(DPKG_STATUS.as_bytes());
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base-files", "libc6", "libzstd1"]);
        assert_eq!(pkgs[0].version, "12.4+deb12u7");
        assert_eq!(pkgs[0].arch, "amd64");
        assert_eq!(pkgs[0].source, None);
        assert_eq!(pkgs[0].maintainer.as_deref(), Some("Santiago Vila <sanvila@debian.org>"));
        assert_eq!(pkgs[1].source.as_deref(), Some("glibc"));
        assert_eq!(pkgs[2].source.as_deref(), Some("libzstd"));
        assert!(pkgs.iter().all(|p| p.kind == PackageKind::Deb && p.license.is_none()));
    }

    #[test]
    fn dpkg_status_d_has_no_status_field() {
        let tzdata = b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n\
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n";
        let pkgs = from_dpkg_status_d(tzdata);
        assert_eq!(pkgs.len(), 1);
        assert_eq!((pkgs[0].name.as_str(), pkgs[0].arch.as_str()), ("tzdata", "all"));
        let md5sums = b"d41d8cd98f00b204e9800998ecf8427e  usr/share/zoneinfo/UTC\n";
        assert!(from_dpkg_status_d(md5sums).is_empty());
    }

    #[test]
    fn apk_installed() {
        let db = b"C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nS:383152\nI:622592\n\
T:the musl c library (libc) implementation\nU:https://musl.libc.org/\nL:MIT\no:musl\n\
m:Natanael Copa <ncopa@alpinelinux.org>\nt:1712345678\nF:lib\nR:libc.musl-x86_64.so.1\n\
a:0:0:755\nZ:Q1xyz=\n\nC:Q1def=\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\n\
o:busybox\n\nP:broken-no-version\nA:x86_64\n";
        let pkgs = from_apk_installed(db);
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "musl");
        assert_eq!(pkgs[0].version, "1.2.5-r0");
        assert_eq!(pkgs[0].license.as_deref(), Some("MIT"));
        assert_eq!(pkgs[0].source.as_deref(), Some("musl"));
        assert_eq!(pkgs[0].maintainer.as_deref(), Some("Natanael Copa <ncopa@alpinelinux.org>"));
        assert_eq!(pkgs[1].license.as_deref(), Some("GPL-2.0-only"));
        assert!(pkgs.iter().all(|p| p.kind == PackageKind::Apk));
    }

    #[test]
    fn deb_labels() {
        let control = "Package: hello\nVersion: 1:2.10-3+deb12u1\nArchitecture: all\n\
Maintainer: Santiago Vila <sanvila@debian.org>\nDescription: greeting\n long text\n";
        let labels: BTreeMap<String, String> = [
            (DEB_LABEL_PACKAGE, "hello"),
            (DEB_LABEL_VERSION, "1:2.10-3+deb12u1"),
            (DEB_LABEL_ARCHITECTURE, "all"),
            (DEB_LABEL_CONTROL, control),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let pkgs = from_deb_labels(&labels);
        assert_eq!(pkgs.len(), 1);
        assert_eq!(pkgs[0].version, "1:2.10-3+deb12u1");
        assert_eq!(pkgs[0].maintainer.as_deref(), Some("Santiago Vila <sanvila@debian.org>"));
        assert!(from_deb_labels(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn garbage_does_not_panic() {
        for bytes in [&b"\xff\xfe:\n \n:"[..], b"P:\nV:\n", b":::\n\tcontinued\n", b"P"] {
            let _ = from_dpkg_status(bytes);
            let _ = from_dpkg_status_d(bytes);
            let _ = from_apk_installed(bytes);
        }
    }
}
