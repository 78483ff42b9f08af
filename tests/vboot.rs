//! Verified boot end to end in QEMU (TCG): a good payload boots to its onboot container and
//! service; a flipped byte, an untrusted signer and a denied package are refused by the
//! verifier initramfs before any payload code runs.
//!
//! Needs what tests/qemu.rs needs (QEMU and the Debian .debs; skips loudly without them)
//! plus a statically linked cairn for the verifier: `$CAIRN_VERIFIER_BINARY`, else the tests
//! build one (`cargo build --release --target x86_64-unknown-linux-gnu` with
//! `-C target-feature=+crt-static`, into `$CARGO_TARGET_DIR` or `target/`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::qemu::{cairn_in, find_debs, have_qemu, imported_name};
use crate::util::{self, repo};

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
