//! The two files only a verified-boot build has, and the layout the guest side relies on.
//!
//! - `NAME-initrd.img`, the verifier initramfs (cpio newc, gzip): `/init` (a statically
//!   linked cairn), `/etc/cairn/policy.yaml` (the boot policy, `path:` keys inlined),
//!   `/etc/cairn/keys/*.pub` (trusted keys), `/lib/modules/*.ko` ([`MODULES`], from the
//!   kernel component).
//! - `NAME-payload.img`, a raw disk holding a plain tar whose members are a `cairn verify`
//!   directory: `NAME.tar` (the root filesystem, with cairn at [`PAYLOAD_CAIRN`]) and its
//!   attestations.
//!
//! The build drives these steps (`crate::build::verified_boot`); the guest reads what they
//! write (`crate::init::verifier`). The constants here are the contract between the two.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use super::{EmitError, compress, cpio};
use crate::source_date::SourceDate;
use crate::tree::{Content, Node, Tree, TreeError, TreePath};

/// The modules the verifier loads, in dependency order, as path suffixes under
/// `lib/modules/<version>/kernel/`: virtio block for the payload disk, and overlayfs, which
/// stays loaded after switch_root for the payload init's writable containers.
pub const MODULES: [&str; 7] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    "fs/overlayfs/overlay.ko",
];

/// Where the verifier initramfs keeps its trust anchors and modules.
pub const POLICY_PATH: &str = "/etc/cairn/policy.yaml";
pub const KEYS_DIR: &str = "/etc/cairn/keys";
pub const MODULES_DIR: &str = "/lib/modules";
/// Where the payload's init is, and how the verifier starts it.
pub const PAYLOAD_CAIRN: &str = "sbin/cairn";

/// The file name a module of [`MODULES`] has in [`MODULES_DIR`].
pub fn module_file_name(module: &str) -> &str {
    module.rsplit('/').next().unwrap_or(module)
}

/// What goes into the verifier initramfs besides its fixed directories.
pub struct VerifierInitrd<'a> {
    /// The statically linked cairn that runs as `/init`.
    pub verifier: &'a [u8],
    /// The boot policy, self-contained (keys inlined).
    pub policy_yaml: &'a str,
    /// `(name, SPKI PEM)`: each becomes `/etc/cairn/keys/NAME.pub`.
    pub keys: &'a [(String, String)],
    /// `(file name, bytes)` of the modules, in load order.
    pub modules: &'a [(String, Vec<u8>)],
}

/// Writes the verifier initramfs (gzip cpio newc), deterministic: every entry has mtime
/// `sd`, owner 0:0.
pub fn write_verifier_initrd<W: Write>(
    out: W,
    initrd: &VerifierInitrd<'_>,
    sd: SourceDate,
) -> Result<W, EmitError> {
    let t = sd.secs();
    let dir = Node::dir(0o755, t);
    let mut tree = Tree::new().map_err(TreeError::Spool)?;
    let mut put = |p: &str, n: Node| -> Result<(), TreeError> {
        tree.insert(TreePath::parse(p)?, n, &dir)?;
        Ok(())
    };
    for d in ["dev", "proc", "sys", "newroot", "payload", "etc/cairn/keys", "lib/modules"] {
        put(d, Node::dir(0o755, t))?;
    }
    put("init", Node::file(Content::inline(initrd.verifier.to_vec()), 0o755, t))?;
    put("etc/cairn/policy.yaml", Node::file(Content::inline(initrd.policy_yaml), 0o644, t))?;
    for (name, pem) in initrd.keys {
        put(
            &format!("etc/cairn/keys/{name}.pub"),
            Node::file(Content::inline(pem.as_str()), 0o644, t),
        )?;
    }
    for (name, bytes) in initrd.modules {
        put(&format!("lib/modules/{name}"), Node::file(Content::inline(bytes.clone()), 0o644, t))?;
    }
    let enc = compress::compress_to(compress::Codec::Gzip, out).map_err(EmitError::Write)?;
    let enc = cpio::write_newc(&tree, |_| true, enc)?;
    enc.finish().map_err(EmitError::Write)
}

/// Writes the payload disk: a ustar archive of `files` (plain names, in the given order),
/// each 0644 root-owned with mtime `sd`; the tar's end blocks make it a 512-byte multiple.
pub fn write_payload_disk<W: Write>(
    out: W,
    files: &[(String, PathBuf)],
    sd: SourceDate,
) -> Result<W, EmitError> {
    let mut b = tar::Builder::new(out);
    for (name, path) in files {
        let read_err = |source| EmitError::ReadFile { path: path.clone(), source };
        let f = File::open(path).map_err(read_err)?;
        let len = f.metadata().map_err(read_err)?.len();
        let member_err = |source| EmitError::PayloadMember { name: name.clone(), source };
        let mut h = tar::Header::new_ustar();
        h.set_path(name).map_err(member_err)?;
        h.set_size(len);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(sd.secs());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, f).map_err(member_err)?;
    }
    b.into_inner().map_err(EmitError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_disk_is_deterministic_and_sector_sized() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.tar"), b"abc").unwrap();
        let files = vec![("a.tar".to_string(), d.path().join("a.tar"))];
        let one = write_payload_disk(Vec::new(), &files, SourceDate::ZERO).unwrap();
        let two = write_payload_disk(Vec::new(), &files, SourceDate::ZERO).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.len() % 512, 0);
        let mut ar = tar::Archive::new(&one[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.tar"]);
    }
}
