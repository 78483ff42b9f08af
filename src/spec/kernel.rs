//! The `kernel:` section: which image holds the kernel and how LinuxKit's defaults fill in
//! the binary, modules tarball and microcode names.

use serde::{Deserialize, Deserializer};

use super::{SpecImage, ValueError, deserialize_validated};

/// The `kernel:` section, with LinuxKit's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub image: Option<SpecImage>,
    /// Written to `boot/cmdline`.
    pub cmdline: String,
    /// The kernel's file name inside the image (default `kernel`).
    pub binary: String,
    /// The modules tarball inside the image (default `kernel.tar`; `tar: none` gives `None`).
    pub tar: Option<String>,
    /// A microcode cpio archive inside the image, if any.
    pub ucode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    #[serde(default)]
    image: Option<SpecImage>,
    #[serde(default)]
    cmdline: String,
    #[serde(default)]
    binary: Option<String>,
    #[serde(default)]
    tar: Option<String>,
    #[serde(default)]
    ucode: Option<String>,
}

impl<'de> Deserialize<'de> for Kernel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_validated(d, |r: RawKernel| {
            let binary = match r.binary {
                Some(b) if b.is_empty() => return Err(ValueError::EmptyKernelBinary),
                Some(b) => b,
                None => "kernel".to_string(),
            };
            let tar = match r.tar.as_deref() {
                None => Some("kernel.tar".to_string()),
                Some("none") | Some("") => None,
                Some(t) => Some(t.to_string()),
            };
            Ok(Kernel { image: r.image, cmdline: r.cmdline, binary, tar, ucode: r.ucode })
        })
    }
}
