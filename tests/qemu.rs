//! `cairn run` and real boots in QEMU (TCG) of images built from Debian packages.
//!
//! The boot tests need `qemu-system-x86_64` and the Debian kernel and busybox-static .debs
//! that `.ci/qemu-setup` fetches into `target/boot-debs/` (or `$CAIRN_BOOT_DEBS`). Without
//! QEMU they skip loudly, or fail when `CAIRN_REQUIRE_QEMU=1` (as CI sets it). Without the
//! .debs (apt could not fetch them) they skip loudly. A .deb whose sha256 differs from the
//! one pinned in `tests/boot/versions` (Debian moved on to a newer point release) is used
//! anyway, with a loud note.
//!
//! All boots share one store and one build (imports and builds of a 27 MB kernel package
//! take tens of seconds in a debug build) and run one at a time, so the boot times they print
//! mean something on a small CI machine.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::util::{self, Cairn, TestDir, repo};

/// What the example's /init prints once it runs.
const MARKER: &str = "CAIRN-BOOT-OK";

/// Whether QEMU is installed; see [`util::Tool::missing`] when it is not.
pub(crate) fn have_qemu(test: &str) -> bool {
    util::QEMU.found(test)
}

/// The fetched Debian packages.
pub(crate) struct Debs {
    /// Both have the sha256 pinned in tests/boot/versions.
    as_pinned: bool,
    pub(crate) kernel: PathBuf,
    /// `6.1.0-56-cloud-amd64` from `linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb`.
    pub(crate) kernel_release: String,
    pub(crate) busybox: PathBuf,
}

fn debs_dir() -> PathBuf {
    std::env::var_os("CAIRN_BOOT_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/boot-debs"))
}

/// The one .deb in `dir`, if there is exactly one.
fn only_deb(dir: &Path) -> Option<PathBuf> {
    let debs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    match <[PathBuf; 1]>::try_from(debs) {
        Ok([deb]) => Some(deb),
        Err(_) => None,
    }
}

/// `KEY=VALUE` lines of tests/boot/versions.
fn pinned(key: &str) -> String {
    let text = fs::read_to_string(repo().join("tests/boot/versions")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("tests/boot/versions has no {key}"))
        .to_string()
}

pub(crate) fn find_debs(test: &str) -> Option<Debs> {
    let dir = debs_dir();
    let (Some(kernel), Some(busybox)) =
        (only_deb(&dir.join("kernel")), only_deb(&dir.join("busybox")))
    else {
        util::BOOT_DEBS.missing(
            test,
            &format!("no .debs in {}/{{kernel,busybox}}/: apt could not fetch them", dir.display()),
        );
        return None;
    };
    let name = kernel.file_name().unwrap().to_string_lossy().into_owned();
    let kernel_release = name
        .strip_prefix("linux-image-")
        .and_then(|n| n.split('_').next())
        .map(|r| r.trim_end_matches("-unsigned").to_string())
        .unwrap_or_else(|| panic!("unexpected kernel package file name {name}"));
    let mut as_pinned = true;
    for (deb, key) in [(&kernel, "KERNEL_SHA256"), (&busybox, "BUSYBOX_SHA256")] {
        let (got, want) = (util::sha256_file(deb), pinned(key));
        as_pinned &= got == want;
        if got == want {
            eprintln!("using {} (sha256 {got}, as pinned)", deb.display());
        } else {
            eprintln!(
                "\n*** NOTE: {} has sha256 {got}, not the {want} pinned in tests/boot/versions \
                 (Debian has moved on?): booting it anyway ***\n",
                deb.display()
            );
        }
    }
    Some(Debs { as_pinned, kernel, kernel_release, busybox })
}

/// The imported packages, the example spec rewritten to name them, and its kernel+initrd
/// build, shared by every boot test.
struct Built {
    /// `OUT/NAME` for `cairn run`.
    prefix: PathBuf,
}

pub(crate) fn cairn_in(dir: &Path) -> Cairn {
    Cairn::new(dir)
        .env("CAIRN_STORE", dir.join("store"))
        .env("HOME", dir)
        .env("TMPDIR", dir.join("tmp"))
}

/// The `name` an import printed (`NAME\tDIGEST` lines), for the only line.
pub(crate) fn imported_name(out: &util::Outcome) -> String {
    let stdout = out.stdout();
    let line =
        stdout.lines().next().unwrap_or_else(|| panic!("import printed nothing{}", out.report()));
    line.split('\t').next().unwrap().to_string()
}

/// examples/boot/boot.yml with its kernel image, kernel binary and busybox lines replaced.
fn boot_spec(kernel_ref: &str, release: &str, busybox_ref: &str) -> String {
    let example = fs::read_to_string(repo().join("examples/boot/boot.yml")).unwrap();
    let mut replaced = [false; 3];
    let lines: Vec<String> = example
        .lines()
        .map(|l| {
            if l.starts_with("  image: cairn.local/deb/linux-image-") {
                replaced[0] = true;
                format!("  image: {kernel_ref}")
            } else if l.starts_with("  binary: boot/vmlinuz-") {
                replaced[1] = true;
                format!("  binary: boot/vmlinuz-{release}")
            } else if l.starts_with("  - cairn.local/deb/busybox-static:") {
                replaced[2] = true;
                format!("  - {busybox_ref}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(replaced, [true; 3], "examples/boot/boot.yml no longer has the expected lines");
    lines.join("\n") + "\n"
}

fn build(debs: &Debs) -> Built {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-boot");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("tmp")).unwrap();
    let start = Instant::now();
    let kernel_ref = imported_name(&cairn_in(&dir).arg("import").arg(&debs.kernel).ok());
    let busybox_ref = imported_name(&cairn_in(&dir).arg("import").arg(&debs.busybox).ok());
    fs::write(dir.join("boot.yml"), boot_spec(&kernel_ref, &debs.kernel_release, &busybox_ref))
        .unwrap();
    if debs.as_pinned {
        // The committed example lock must match what the pinned packages import as.
        cairn_in(&dir).arg("lock").arg(repo().join("examples/boot/boot.yml")).arg("--check").ok();
    }
    cairn_in(&dir).args(["lock", "boot.yml"]).ok();
    cairn_in(&dir).args(["build", "boot.yml", "--locked", "-f", "kernel+initrd", "-o", "out"]).ok();
    eprintln!("imported and built the boot image in {:.1} s", start.elapsed().as_secs_f64());
    Built { prefix: dir.join("out/boot") }
}

/// The shared build, or `None` (after a loud skip) when QEMU or the .debs are missing.
fn built(test: &str) -> Option<&'static Built> {
    static BUILT: OnceLock<Built> = OnceLock::new();
    if !have_qemu(test) {
        return None;
    }
    if let Some(b) = BUILT.get() {
        return Some(b);
    }
    let debs = find_debs(test)?;
    Some(BUILT.get_or_init(|| build(&debs)))
}

/// Runs `cairn run PREFIX ARGS…`, one boot at a time, and prints how long it took.
fn boot(b: &Built, args: &[&str]) -> util::Outcome {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = b.prefix.parent().unwrap().parent().unwrap();
    let start = Instant::now();
    let out = cairn_in(dir).arg("run").arg(&b.prefix).args(args).run();
    eprintln!("cairn run {args:?}: {:.1} s, exit {:?}", start.elapsed().as_secs_f64(), out.code());
    out
}

#[test]
fn boots_busybox_to_the_marker() {
    let Some(b) = built("boots_busybox_to_the_marker") else { return };
    let out = boot(b, &["--timeout", "90"]).expect_code(0);
    out.stdout_has(&[MARKER, "Run /init as init process", "reboot: Power down"]);
    out.stderr_has(&["cairn: running ", "-nographic", "-no-reboot", "panic=-1"]);
    // How long the guest took to reach /init, from its own clock.
    let line = out.stdout().lines().find(|l| l.contains(MARKER)).unwrap().to_string();
    eprintln!("guest: {line}");
}

#[test]
fn guest_exit_status_and_panic_are_reported() {
    let Some(b) = built("guest_exit_status_and_panic_are_reported") else { return };
    let out = boot(b, &["--timeout", "90", "--append", "cairn.test=exit7"]).expect_code(7);
    out.stdout_has(&[MARKER, "CAIRN_EXIT=7"]);
    let out = boot(b, &["--timeout", "90", "--append", "cairn.test=panic"]).expect_code(125);
    out.stdout_has(&[MARKER, "Kernel panic - not syncing"]);
    out.stderr_has(&["cairn: the guest kernel panicked"]);
}

#[test]
fn timeout_kills_qemu_and_exits_124() {
    let Some(b) = built("timeout_kills_qemu_and_exits_124") else { return };
    let start = Instant::now();
    let out = boot(b, &["--timeout", "1"]).expect_code(124);
    out.stderr_has(&["did not finish within 1 s; QEMU was killed"]);
    assert!(!out.stdout().contains(MARKER), "{}", out.report());
    assert!(start.elapsed().as_secs() < 15, "took {:?}", start.elapsed());
}

#[test]
fn run_names_the_missing_outputs() {
    let t = TestDir::new("run-missing");
    t.write("out/img-kernel", "k");
    t.cairn().args(["run", "out/img"]).fails_with(&[
        "no bootable outputs at out/img: missing out/img-initrd.img, out/img-cmdline",
    ]);
}

#[test]
fn run_without_qemu_says_how_to_get_it() {
    let t = TestDir::new("run-noqemu");
    for f in ["img-kernel", "img-initrd.img", "img-cmdline"] {
        t.write(format!("out/{f}"), "x");
    }
    t.cairn().env("PATH", t.join("empty-bin")).args(["run", "out/img"]).fails_with(&[
        "qemu-system-x86_64 not found on PATH",
        "Install qemu-system-x86",
        "README",
    ]);
}
