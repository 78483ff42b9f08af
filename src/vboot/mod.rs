//! Verified boot: the build side (payload disk, verifier initramfs) and the guest side
//! (`/init` of the verifier initramfs, which checks the payload before any of it runs).
//!
//! Layout of a `verified-boot` build (see README "Verified boot"):
//! - `NAME-kernel`, `NAME-cmdline`: the kernel component, as for kernel+initrd.
//! - `NAME-initrd.img`: the verifier initramfs (cpio newc, gzip): `/init` (a statically
//!   linked cairn), `/etc/cairn/policy.yaml` (the boot policy, `path:` keys inlined),
//!   `/etc/cairn/keys/*.pub` (trusted keys), `/lib/modules/*.ko` (virtio block and overlayfs,
//!   from the kernel component).
//! - `NAME-payload.img`: a raw disk holding a plain tar whose members are a `cairn verify`
//!   directory: `NAME.tar` (the root filesystem, with cairn at `/sbin/cairn`) and its
//!   attestations.
//!
//! At boot, cairn runs as PID 1 named `/init` ([`is_verifier_invocation`]) and
//! [`boot_verify`] mounts /proc, /sys, /dev, loads the modules, reads `/dev/vda` as a tar
//! (hostile input: plain names only, bounded sizes), runs [`crate::verify::verify`] (the
//! code of `cairn verify`) on it with the embedded policy and keys at the guest's clock
//! (the RTC), and on success unpacks `NAME.tar` into a tmpfs, moves it over `/` (as
//! busybox `switch_root` does: the initramfs contents stay in memory, unreachable) and
//! executes `/sbin/cairn internal init`. On any failure it prints one line
//! `cairn-verifier: refused: REASON`, then `CAIRN_EXIT=1`, and powers off.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::emit::{compress, cpio};
use crate::source_date::SourceDate;
use crate::tree::{Content, Node, Tree, TreePath};

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

/// Where the verifier initramfs keeps its trust anchors.
pub const POLICY_PATH: &str = "/etc/cairn/policy.yaml";
pub const KEYS_DIR: &str = "/etc/cairn/keys";
pub const MODULES_DIR: &str = "/lib/modules";
/// Where the payload's init is, and how the verifier starts it.
pub const PAYLOAD_CAIRN: &str = "sbin/cairn";

/// Bounds on the (hostile until verified) payload disk.
const MAX_MEMBERS: usize = 16;
const MAX_MEMBER_SIZE: u64 = 8 << 30;

/// Is this ELF file statically linked (no PT_INTERP program header)? Errors on a file
/// that is not a 64-bit little-endian ELF.
pub fn is_static_elf(bytes: &[u8]) -> Result<bool, String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let mut b8 = [0u8; 8];
    b8.copy_from_slice(&bytes[0x20..0x28]);
    let phoff = usize::try_from(u64::from_le_bytes(b8)).map_err(|_| "bad e_phoff")?;
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    if phentsize < 4 {
        return Err("bad e_phentsize".into());
    }
    for i in 0..phnum {
        let o = phoff
            .checked_add(i.checked_mul(phentsize).ok_or("bad program headers")?)
            .ok_or("bad program headers")?;
        let Some(h) = bytes.get(o..o + 4) else {
            return Err("program headers run past the end of the file".into());
        };
        if u32::from_le_bytes([h[0], h[1], h[2], h[3]]) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads the policy file and inlines the keys it names by `path:` (relative to the policy
/// file), so the verifier initramfs needs no other file. Checks that it parses and resolves.
pub fn embeddable_policy(path: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading boot policy {}", path.display()))?;
    // Loaded once as `cairn verify` would, for its errors.
    crate::policy::load(path)?;
    let mut doc: serde_norway::Value = serde_norway::from_str(&text)
        .with_context(|| format!("parsing boot policy {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(keys) = doc.get_mut("keys").and_then(|k| k.as_sequence_mut()) {
        for k in keys {
            let Some(map) = k.as_mapping_mut() else { continue };
            if let Some(rel) = map.remove("path") {
                let rel = rel.as_str().context("boot policy: a key's path is not a string")?;
                let pem = fs::read_to_string(base.join(rel))
                    .with_context(|| format!("reading key {rel} of the boot policy"))?;
                map.insert("pem".into(), pem.into());
            }
        }
    }
    let out = serde_norway::to_string(&doc).context("writing the boot policy")?;
    crate::policy::parse("boot policy", &out)?.resolve("boot policy", base)?;
    Ok(out)
}

/// Writes the verifier initramfs (gzip cpio newc), deterministic: every entry has mtime
/// `sd`, owner 0:0.
pub fn write_verifier_initrd<W: Write>(
    out: W,
    verifier: &[u8],
    policy_yaml: &str,
    keys: &[(String, String)],
    modules: &[(String, Vec<u8>)],
    sd: SourceDate,
) -> anyhow::Result<W> {
    let t = sd.secs();
    let dir = Node::dir(0o755, t);
    let mut tree = Tree::new()?;
    let mut put = |p: &str, n: Node| -> anyhow::Result<()> {
        tree.insert(TreePath::parse(p)?, n, &dir)?;
        Ok(())
    };
    for d in ["dev", "proc", "sys", "newroot", "payload", "etc/cairn/keys", "lib/modules"] {
        put(d, Node::dir(0o755, t))?;
    }
    put("init", Node::file(Content::inline(verifier.to_vec()), 0o755, t))?;
    put("etc/cairn/policy.yaml", Node::file(Content::inline(policy_yaml), 0o644, t))?;
    for (name, pem) in keys {
        put(
            &format!("etc/cairn/keys/{name}.pub"),
            Node::file(Content::inline(pem.as_str()), 0o644, t),
        )?;
    }
    for (name, bytes) in modules {
        put(&format!("lib/modules/{name}"), Node::file(Content::inline(bytes.clone()), 0o644, t))?;
    }
    let enc = compress::compress_to(compress::Codec::Gzip, out)?;
    let enc = cpio::write_newc(&tree, |_| true, enc)?;
    Ok(enc.finish()?)
}

/// Picks the verifier's modules out of the kernel component's `lib/modules/…` files:
/// `(file name, path in the image)` in load order; an error names a missing one.
pub fn find_modules(kernel_files: &[(String, Node)]) -> anyhow::Result<Vec<(String, &Node)>> {
    let mut out = Vec::new();
    for m in MODULES {
        let suffix = format!("/kernel/{m}");
        let Some((_, node)) = kernel_files.iter().find(|(p, _)| p.ends_with(&suffix)) else {
            bail!(
                "verified-boot needs the kernel module {m} (uncompressed) under lib/modules/<version>/kernel/ of the kernel image"
            );
        };
        let file = m.rsplit('/').next().unwrap_or(m).to_string();
        out.push((file, node));
    }
    Ok(out)
}

/// Writes the payload disk: a ustar archive of `files` (plain names, in the given order),
/// each 0644 root-owned with mtime `sd`; the tar's end blocks make it a 512-byte multiple.
pub fn write_payload_disk<W: Write>(
    out: W,
    files: &[(String, PathBuf)],
    sd: SourceDate,
) -> anyhow::Result<W> {
    let mut b = tar::Builder::new(out);
    for (name, path) in files {
        let f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let len = f.metadata()?.len();
        let mut h = tar::Header::new_ustar();
        h.set_path(name)?;
        h.set_size(len);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(sd.secs());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, f).with_context(|| format!("writing {name} into the payload disk"))?;
    }
    Ok(b.into_inner()?)
}

/// Is this process the verifier initramfs's `/init`?
pub fn is_verifier_invocation() -> bool {
    std::process::id() == 1 && std::env::args_os().next().is_some_and(|a| a == "/init")
}

/// Entry point of `/init` in the verifier initramfs. Never returns on success (it executes
/// the payload's init); on failure it reports and powers off.
pub fn boot_verify_main() -> std::process::ExitCode {
    let start = Instant::now();
    let err = match boot_verify(start) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let reason = format!("{err:#}").replace('\n', " ");
    println!("cairn-verifier: refused: {reason}");
    println!("CAIRN_EXIT=1");
    let _ = io::stdout().flush();
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    std::process::ExitCode::from(1)
}

enum Never {}

fn boot_verify(start: Instant) -> anyhow::Result<Never> {
    use nix::mount::{MsFlags, mount};
    println!("cairn-verifier: starting");
    for d in ["/proc", "/sys", "/dev", "/newroot", "/payload"] {
        let _ = fs::create_dir_all(d);
    }
    let none: Option<&str> = None;
    mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), none).context("mounting /proc")?;
    mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), none).context("mounting /sys")?;
    mount(Some("devtmpfs"), "/dev", Some("devtmpfs"), MsFlags::empty(), none)
        .context("mounting /dev")?;
    for m in MODULES {
        let file = m.rsplit('/').next().unwrap_or(m);
        let path = Path::new(MODULES_DIR).join(file);
        let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => bail!("loading kernel module {file}: {e}"),
        }
    }
    let disk = Path::new("/dev/vda");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !disk.exists() {
        if Instant::now() > deadline {
            bail!("no payload disk: /dev/vda did not appear within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let payload = Path::new("/payload");
    mount(Some("tmpfs"), payload, Some("tmpfs"), MsFlags::empty(), Some("mode=0700"))
        .context("mounting a tmpfs for the payload")?;
    let names = read_payload(disk, payload).context("reading the payload disk /dev/vda")?;
    let image = names
        .iter()
        .find(|n| {
            n.ends_with(".tar")
                && !crate::verify::ATTESTATION_SUFFIXES.iter().any(|s| n.ends_with(s))
        })
        .cloned()
        .context("the payload disk holds no NAME.tar")?;
    let read_ms = start.elapsed().as_millis();

    // The trust anchors of the initramfs.
    let policy_text = fs::read_to_string(POLICY_PATH).context("reading the embedded policy")?;
    let policy = crate::policy::parse(POLICY_PATH, &policy_text)?
        .resolve(POLICY_PATH, Path::new("/etc/cairn"))?;
    let mut keys = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(KEYS_DIR)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let key = crate::sign::keys::PublicKey::read_pem_file(&e.path())
            .with_context(|| format!("reading embedded key {}", e.path().display()))?;
        keys.push((e.file_name().to_string_lossy().into_owned(), key));
    }
    // The guest's clock (the RTC, which QEMU sets to the host's time) dates key windows.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let req = crate::verify::Request {
        target: crate::verify::Target::Dir(payload.to_path_buf()),
        attestations: Vec::new(),
        bundles: Vec::new(),
        keys,
        policy,
        upstream_bundles: None,
        at: crate::policy::Timestamp::from_secs(now),
    };
    let outcome = crate::verify::verify(&req).map_err(|e| anyhow::anyhow!("{e}"))?;
    let verified = match outcome.verdict {
        Ok(v) => v,
        Err(rejected) => bail!("{}", rejected.reason),
    };
    let digest = verified
        .get()
        .artifacts
        .iter()
        .find(|(n, _)| *n == image)
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    println!("cairn-verifier: verified {image} {digest}");
    let verify_ms = start.elapsed().as_millis();

    let newroot = Path::new("/newroot");
    mount(Some("tmpfs"), newroot, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))
        .context("mounting the new root")?;
    unpack_root(&payload.join(&image), newroot).context("unpacking the verified payload")?;
    let _ = nix::mount::umount2(payload, nix::mount::MntFlags::MNT_DETACH);
    for m in ["/proc", "/sys", "/dev"] {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
    if !newroot.join(PAYLOAD_CAIRN).is_file() {
        bail!("the verified payload has no /{PAYLOAD_CAIRN} to run as its init");
    }
    nix::unistd::chdir(newroot).context("entering the new root")?;
    mount(Some("."), "/", none, MsFlags::MS_MOVE, none).context("moving the new root over /")?;
    nix::unistd::chroot(".").context("chroot into the new root")?;
    nix::unistd::chdir("/").context("chdir /")?;
    println!(
        "cairn-verifier: verify took {} ms (read {} ms, verify {} ms, switch_root at {} ms)",
        verify_ms,
        read_ms,
        verify_ms - read_ms,
        start.elapsed().as_millis()
    );
    let _ = io::stdout().flush();
    let prog = CString::new(format!("/{PAYLOAD_CAIRN}"))?;
    let args = [prog.clone(), CString::new("internal")?, CString::new("init")?];
    let e = nix::unistd::execv(&prog, &args).unwrap_err();
    bail!("executing the payload's init /{PAYLOAD_CAIRN}: {e}")
}

/// Copies the payload disk's tar members into `dir`. Hostile input: only regular files
/// with plain names, no duplicates, bounded count and size.
fn read_payload(disk: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
    let f = File::open(disk)?;
    let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
    let mut names = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("the payload holds a member that is not a regular file");
        }
        let raw = entry.path_bytes().into_owned();
        let name =
            String::from_utf8(raw).map_err(|_| anyhow::anyhow!("a member name is not UTF-8"))?;
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || name == ".."
            || name.contains('\0')
        {
            bail!("the payload holds a member with a bad name {name:?}");
        }
        if names.contains(&name) {
            bail!("the payload holds {name} twice");
        }
        if names.len() >= MAX_MEMBERS {
            bail!("the payload holds more than {MAX_MEMBERS} members");
        }
        let size = entry.size();
        if size > MAX_MEMBER_SIZE {
            bail!("payload member {name} is too large ({size} bytes)");
        }
        let mut out = File::create(dir.join(&name))?;
        let copied = io::copy(&mut (&mut entry).take(size), &mut out)?;
        if copied != size {
            bail!("payload member {name} is truncated");
        }
        names.push(name);
    }
    Ok(names)
}

/// Unpacks the verified root filesystem tar into `root`, keeping modes and owners and
/// refusing `..` and absolute names.
fn unpack_root(tar_path: &Path, root: &Path) -> anyhow::Result<()> {
    let f = File::open(tar_path)?;
    let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path.is_absolute()
            || path.components().any(|c| matches!(c, std::path::Component::ParentDir))
        {
            bail!("the image holds a bad path {}", path.display());
        }
        entry.unpack_in(root)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_check_reads_program_headers() {
        let exe = fs::read("/proc/self/exe").unwrap();
        // Test binaries are dynamically linked unless built with crt-static.
        assert!(is_static_elf(&exe).is_ok());
        assert!(is_static_elf(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn payload_disk_is_deterministic_and_sector_sized() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.tar"), b"abc").unwrap();
        let files = vec![("a.tar".to_string(), d.path().join("a.tar"))];
        let one = write_payload_disk(Vec::new(), &files, SourceDate::ZERO).unwrap();
        let two = write_payload_disk(Vec::new(), &files, SourceDate::ZERO).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.len() % 512, 0);
        let got = read_payload_from_bytes(&one);
        assert_eq!(got, ["a.tar"]);
    }

    fn read_payload_from_bytes(bytes: &[u8]) -> Vec<String> {
        let d = tempfile::tempdir().unwrap();
        let disk = d.path().join("disk");
        fs::write(&disk, bytes).unwrap();
        let out = d.path().join("out");
        fs::create_dir(&out).unwrap();
        read_payload(&disk, &out).unwrap()
    }
}
