//! The guest side of verified boot: cairn as PID 1 named `/init` in the verifier
//! initramfs, checking the payload before any of it runs.
//!
//! [`boot_verify_main`] mounts /proc, /sys, /dev, loads the modules, reads `/dev/vda` as a
//! tar (hostile input: plain names only, bounded sizes), runs [`crate::verify::verify`] (the
//! code of `cairn verify`) on it with the embedded policy and keys at the guest's clock
//! (the RTC), and on success unpacks `NAME.tar` into a tmpfs, moves it over `/` (as
//! busybox `switch_root` does: the initramfs contents stay in memory, unreachable) and
//! executes `/sbin/cairn internal init`. On any failure it prints one line
//! `cairn-verifier: refused: REASON`, then `CAIRN_EXIT=1`, and powers off.
//!
//! The layout it reads is written by [`crate::emit::verified_boot`] (see README
//! "Verified boot").

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::emit::verified_boot::{
    KEYS_DIR, MODULES, MODULES_DIR, PAYLOAD_CAIRN, POLICY_PATH, module_file_name,
};
use crate::output_name::OutputName;

/// Bounds on the (hostile until verified) payload disk.
const MAX_MEMBERS: usize = 16;
const MAX_MEMBER_SIZE: u64 = 8 << 30;

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
        let file = module_file_name(m);
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
/// with plain names, no duplicates, bounded count and size. Public for the fuzz targets.
#[doc(hidden)]
pub fn read_payload(disk: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
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
        if OutputName::parse(&name).is_err() {
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
    use crate::emit::verified_boot::write_payload_disk;
    use crate::source_date::SourceDate;

    fn read_payload_from_bytes(bytes: &[u8]) -> anyhow::Result<Vec<String>> {
        let d = tempfile::tempdir().unwrap();
        let disk = d.path().join("disk");
        fs::write(&disk, bytes).unwrap();
        let out = d.path().join("out");
        fs::create_dir(&out).unwrap();
        read_payload(&disk, &out)
    }

    #[test]
    fn reads_what_the_build_writes() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.tar"), b"abc").unwrap();
        let files = vec![("a.tar".to_string(), d.path().join("a.tar"))];
        let disk = write_payload_disk(Vec::new(), &files, SourceDate::ZERO).unwrap();
        assert_eq!(read_payload_from_bytes(&disk).unwrap(), ["a.tar"]);
    }

    #[test]
    fn refuses_hidden_and_nested_members() {
        for bad in [".hidden", "dir/a.tar"] {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_ustar();
            h.set_path(bad).unwrap();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            let disk = b.into_inner().unwrap();
            let err = read_payload_from_bytes(&disk).unwrap_err();
            assert!(err.to_string().contains("bad name"), "{bad}: {err}");
        }
    }
}
