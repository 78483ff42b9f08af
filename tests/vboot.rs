//! Verified boot. Without QEMU: a `-f verified-boot` build's payload disk and verifier
//! initramfs hold what the verifier needs, from a synthetic kernel image. End to end in QEMU
//! (TCG): a good payload boots to its onboot container and service; a flipped byte, an
//! untrusted signer and a denied package are refused by the verifier initramfs before any
//! payload code runs.
//!
//! The QEMU tests need what tests/qemu.rs needs (QEMU and the Debian .debs; skips loudly
//! without them) plus a statically linked cairn for the verifier: `$CAIRN_VERIFIER_BINARY`,
//! else the tests build one (`cargo build --release --target x86_64-unknown-linux-gnu` with
//! `-C target-feature=+crt-static`, into `$CARGO_TARGET_DIR` or `target/`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::qemu::{cairn_in, find_debs, have_qemu, imported_name};
use cairn::emit::verified_boot::MODULES;
use cairn::testkit::parse_newc;

use crate::util::{self, TestDir, hash_tree, repo, tar_entries, tar_file};

const ONBOOT: &str = "ONBOOT-MARKER";
const SERVICE: &str = "SERVICE-STARTED";
const REFUSED: &str = "cairn-verifier: refused: ";

/// The statically linked cairn the verifier and the payload run.
fn verifier_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_VERIFIER_BINARY") {
        return PathBuf::from(p);
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let start = Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(repo())
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .args(["build", "--release", "--target", "x86_64-unknown-linux-gnu", "--bin", "cairn"])
        .status()
        .expect("running cargo to build the static verifier");
    assert!(status.success(), "building the static verifier failed");
    eprintln!("built the static verifier in {:.1} s", start.elapsed().as_secs_f64());
    target_dir.join("x86_64-unknown-linux-gnu/release/cairn")
}

struct Built {
    dir: PathBuf,
}

fn spec(kernel_ref: &str, release: &str, busybox_ref: &str) -> String {
    format!(
        r#"kernel:
  image: {kernel_ref}
  binary: boot/vmlinuz-{release}
  tar: none
  cmdline: "console=ttyS0"
init:
  - {busybox_ref}
onboot:
  - name: marker
    image: {busybox_ref}
    command: ["/bin/busybox", "echo", "{ONBOOT}"]
services:
  - name: svc
    image: {busybox_ref}
    command: ["/bin/busybox", "echo", "{SERVICE}"]
"#
    )
}

/// Imports, keys, and four builds: good, good with a flipped byte, signed by an untrusted
/// key, and verified under a policy that denies busybox-static.
fn build() -> Option<Built> {
    let debs = find_debs("vboot")?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vboot");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("tmp")).unwrap();
    let verifier = verifier_binary();
    eprintln!("verifier binary: {} bytes", fs::metadata(&verifier).unwrap().len());
    let start = Instant::now();
    let kernel_ref = imported_name(&cairn_in(&dir).arg("import").arg(&debs.kernel).ok());
    let busybox_ref = imported_name(&cairn_in(&dir).arg("import").arg(&debs.busybox).ok());
    fs::write(dir.join("vb.yml"), spec(&kernel_ref, &debs.kernel_release, &busybox_ref)).unwrap();
    fs::write(
        dir.join("deny.yaml"),
        "require:\n  provenance: true\npackages:\n  deny:\n    - name: busybox-static\n      versions: \"*\"\n",
    )
    .unwrap();
    cairn_in(&dir).args(["lock", "vb.yml"]).ok();
    cairn_in(&dir).args(["keygen", "--out", "fleet"]).ok();
    cairn_in(&dir).args(["keygen", "--out", "other"]).ok();
    let build = |out: &str, extra: &[&str]| {
        cairn_in(&dir)
            .args(["build", "vb.yml", "--locked", "-f", "verified-boot", "-o", out])
            .arg("--verifier-binary")
            .arg(&verifier)
            .args(extra)
            .ok();
    };
    build("good", &["--sign-key", "fleet.key"]);
    // The verifier trusts fleet.pub only; the payload is signed by other.key.
    build("untrusted", &["--sign-key", "other.key", "--boot-key", "fleet.pub"]);
    build("denied", &["--sign-key", "fleet.key", "--boot-policy", "deny.yaml"]);
    fs::create_dir_all(dir.join("flipped")).unwrap();
    for f in ["vb-kernel", "vb-cmdline", "vb-initrd.img", "vb-payload.img"] {
        fs::copy(dir.join("good").join(f), dir.join("flipped").join(f)).unwrap();
    }
    // NAME.tar is the payload disk's first member: its data starts at byte 512.
    let disk = dir.join("flipped/vb-payload.img");
    let mut bytes = fs::read(&disk).unwrap();
    assert_eq!(&bytes[..6], b"vb.tar");
    bytes[512 + 100_000] ^= 0x01;
    fs::write(&disk, bytes).unwrap();
    eprintln!(
        "imported and built the verified-boot images in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Some(Built { dir })
}

fn built(test: &str) -> Option<&'static Built> {
    static BUILT: OnceLock<Option<Built>> = OnceLock::new();
    if !have_qemu(test) {
        return None;
    }
    BUILT.get_or_init(build).as_ref()
}

fn boot(b: &Built, which: &str) -> util::Outcome {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let out = cairn_in(&b.dir)
        .arg("run")
        .arg(Path::new(which).join("vb"))
        .args(["--mem", "1024", "--timeout", "120"])
        .run();
    eprintln!("cairn run {which}: {:.1} s, exit {:?}", start.elapsed().as_secs_f64(), out.code());
    for l in out.stdout().lines().filter(|l| l.contains("cairn-verifier:")) {
        eprintln!("guest: {l}");
    }
    out
}

fn refused_line(out: &util::Outcome) -> String {
    let stdout = out.stdout();
    let line = stdout.lines().find(|l| l.contains(REFUSED));
    line.unwrap_or_else(|| panic!("no refusal on the console{}", out.report())).to_string()
}

fn assert_no_payload_ran(out: &util::Outcome) {
    let stdout = out.stdout();
    for m in [ONBOOT, SERVICE, "cairn-init"] {
        assert!(!stdout.contains(m), "{m} on the console{}", out.report());
    }
}

#[test]
fn vboot_good_image_boots_to_onboot_and_service() {
    let Some(b) = built("vboot_good_image_boots_to_onboot_and_service") else { return };
    let out = boot(b, "good").expect_code(0);
    out.stdout_has(&[
        "cairn-verifier: verified vb.tar sha256:",
        "cairn-verifier: verify took ",
        ONBOOT,
        SERVICE,
    ]);
}

#[test]
fn vboot_flipped_byte_is_refused() {
    let Some(b) = built("vboot_flipped_byte_is_refused") else { return };
    let out = boot(b, "flipped").expect_code(1);
    let line = refused_line(&out);
    assert!(line.contains("vb.tar") && line.contains("sha256"), "{line}");
    assert_no_payload_ran(&out);
}

#[test]
fn vboot_untrusted_signer_is_refused() {
    let Some(b) = built("vboot_untrusted_signer_is_refused") else { return };
    let out = boot(b, "untrusted").expect_code(1);
    refused_line(&out);
    assert_no_payload_ran(&out);
}

#[test]
fn vboot_denied_package_is_refused() {
    let Some(b) = built("vboot_denied_package_is_refused") else { return };
    let out = boot(b, "denied").expect_code(1);
    let line = refused_line(&out);
    assert!(line.contains("busybox-static"), "{line}");
    assert_no_payload_ran(&out);
}

// ---------------------------------------------------------------------------------------
// The verified-boot build, without QEMU

/// A minimal static ELF64 file: an x86-64 executable header and one PT_LOAD program header,
/// no PT_INTERP. Enough for the build's static check; it never runs here.
fn minimal_static_elf() -> Vec<u8> {
    let mut e = vec![0u8; 64 + 56];
    e[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e[20..24].copy_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    e[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    e[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e
}

const VB_SPEC: &str = "kernel:
  image: cairn.example/vb-kernel:1
  tar: none
  cmdline: \"console=ttyS0\"
init:
  - cairn.example/hello-init:1
services:
  - name: greeter
    image: cairn.example/hello-app:1
    command: [\"/bin/hello\"]
";

/// The modules of the synthetic kernel image: `(path under lib/modules/, contents)`.
fn synthetic_modules() -> Vec<(String, Vec<u8>)> {
    MODULES
        .iter()
        .map(|m| (format!("6.1.0-test/kernel/{m}"), format!("not really {m}\n").into_bytes()))
        .collect()
}

#[test]
fn vboot_build_writes_the_payload_disk_and_the_verifier_initramfs() {
    let t = TestDir::new("vboot-build");
    // The verifier: the real static cairn when there is one, else a minimal static ELF.
    let verifier = match std::env::var_os("CAIRN_VERIFIER_BINARY") {
        Some(p) => PathBuf::from(p),
        None => t.write("verifier", minimal_static_elf()),
    };
    let verifier_bytes = fs::read(&verifier).unwrap();
    // A kernel image: a placeholder kernel and the modules the verifier loads, plus one it
    // does not.
    t.write("kernel/kernel", "not really a kernel\n");
    for (rel, bytes) in synthetic_modules() {
        t.write(Path::new("kernel/lib/modules").join(rel), bytes);
    }
    t.write("kernel/lib/modules/6.1.0-test/kernel/fs/ext4/ext4.ko", "not loaded\n");
    t.cairn()
        .arg("import")
        .arg(t.join("kernel"))
        .args(["--name", "cairn.example/vb-kernel:1"])
        .ok();
    t.import_hello();
    t.write("vb.yml", VB_SPEC);
    t.cairn().args(["lock", "vb.yml"]).ok();
    t.cairn().args(["keygen", "--out", "fleet"]).ok();
    let build = |out: &str, verifier: &Path| {
        t.cairn()
            .args(["build", "vb.yml", "--locked", "-f", "verified-boot", "--sign-key", "fleet.key"])
            .arg("--verifier-binary")
            .arg(verifier)
            .args(["-o", out])
            .run()
    };
    build("out", &verifier).expect_code(0);
    let out = t.join("out");

    // The boot part: kernel and cmdline as kernel+initrd writes them.
    assert_eq!(fs::read(out.join("vb-kernel")).unwrap(), b"not really a kernel\n");
    assert_eq!(fs::read_to_string(out.join("vb-cmdline")).unwrap(), "console=ttyS0");

    // The payload disk: a plain tar, NAME.tar first, then the attestations (the same bytes
    // as next to it in out/), sector-sized.
    let disk = fs::read(out.join("vb-payload.img")).unwrap();
    assert_eq!(disk.len() % 512, 0);
    let members = tar_entries(&disk);
    let names: Vec<&str> = members.iter().map(|e| e.path.as_str()).collect();
    let attestations = [
        "vb.spdx.json",
        "vb.cdx.json",
        "vb.provenance.json",
        "vb.intoto.jsonl",
        "vb.sigstore.json",
    ];
    assert_eq!(names[0], "vb.tar", "{names:?}");
    assert_eq!(
        names[1..].iter().copied().collect::<std::collections::BTreeSet<_>>(),
        attestations.into_iter().collect(),
        "payload members"
    );
    for e in &members {
        assert_eq!((e.kind, e.mode, e.uid, e.gid), (b'0', 0o644, 0, 0), "{e:?}");
    }
    for a in attestations {
        assert_eq!(tar_file(&disk, a).unwrap(), fs::read(out.join(a)).unwrap(), "{a}");
    }
    // NAME.tar is the root filesystem with cairn at /sbin/cairn, without the boot part.
    let root = tar_file(&disk, "vb.tar").unwrap();
    assert_eq!(tar_file(&root, "sbin/cairn").as_deref(), Some(&verifier_bytes[..]));
    assert!(tar_file(&root, "sbin/init").is_some(), "the hello init is in vb.tar");
    for boot in ["boot/kernel", "boot/cmdline"] {
        assert!(tar_file(&root, boot).is_none(), "{boot} is in vb.tar");
    }
    // Unpacked, the payload is a directory `cairn verify` accepts with the build's key.
    let payload = t.mkdir("payload");
    for name in &names {
        fs::write(payload.join(name), tar_file(&disk, name).unwrap()).unwrap();
    }
    t.cairn().arg("verify").arg(&payload).args(["--key", "fleet.pub"]).ok();

    // The verifier initramfs: gzip cpio newc with /init, the policy, the key, the modules.
    let mut cpio = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&fs::read(out.join("vb-initrd.img")).unwrap()[..]),
        &mut cpio,
    )
    .unwrap();
    let entries = parse_newc(&cpio);
    let file = |name: &str| {
        let e = entries.iter().find(|e| e.name == name);
        let e = e.unwrap_or_else(|| panic!("{name} not in the initramfs"));
        assert_eq!(e.mode & 0o170000, 0o100000, "{name} is not a regular file");
        (e.mode & 0o7777, e.data.clone())
    };
    assert_eq!(file("init"), (0o755, verifier_bytes.clone()));
    assert_eq!(file("etc/cairn/policy.yaml"), (0o644, b"require:\n  provenance: true\n".to_vec()));
    let key = fs::read_to_string(t.join("fleet.pub")).unwrap();
    let (_, got) = file("etc/cairn/keys/build-key.pub");
    assert_eq!(String::from_utf8(got).unwrap().trim(), key.trim(), "the trusted key");
    let mut want_files: Vec<String> =
        ["init", "etc/cairn/policy.yaml", "etc/cairn/keys/build-key.pub"].map(String::from).into();
    for (rel, bytes) in synthetic_modules() {
        let name = format!("lib/modules/{}", rel.rsplit('/').next().unwrap());
        assert_eq!(file(&name), (0o644, bytes), "{name}");
        want_files.push(name);
    }
    let mut files: Vec<String> =
        entries.iter().filter(|e| e.mode & 0o170000 == 0o100000).map(|e| e.name.clone()).collect();
    files.sort();
    want_files.sort();
    assert_eq!(files, want_files, "regular files of the initramfs");
    assert!(entries.iter().all(|e| (e.uid, e.gid) == (0, 0)), "owner 0:0");

    // The same build again: the same bytes.
    build("again", &verifier).expect_code(0);
    assert_eq!(hash_tree(&out), hash_tree(&t.join("again")));
    // A dynamically linked verifier is refused.
    build("dynamic", Path::new(util::CAIRN)).stderr_has(&["is dynamically linked"]);
}
