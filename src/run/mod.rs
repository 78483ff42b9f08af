//! `cairn run`: boot a built image in QEMU, like `linuxkit run qemu`.
//!
//! This module owns three pure pieces and one impure one:
//! - [`Outputs::find`] names the files a build wrote for `OUT/NAME` (kernel+initrd, or
//!   verified-boot, which adds `NAME-payload.img`);
//! - [`RunPlan::argv`] turns what to boot into the `qemu-system-x86_64` argument vector;
//! - [`ConsoleScan`] watches the guest console for a kernel panic and for an explicit exit
//!   status line;
//! - [`process::boot`] spawns QEMU, forwards its console to a writer, enforces the timeout
//!   and maps the way QEMU ended to an [`Outcome`].
//!
//! # How the guest's exit status reaches the caller
//!
//! | guest does | QEMU exits | `cairn run` exits |
//! |---|---|---|
//! | writes N (0..=127) to I/O port 0xf4 (`isa-debug-exit`) | `(N << 1) \| 1` | N |
//! | prints a console line `CAIRN_EXIT=N` (0..=255), then powers off | 0 | N |
//! | powers off | 0 | 0 |
//! | panics (`panic=-1` reboots at once, `-no-reboot` turns that into an exit) | 0 | [`EXIT_GUEST_PANIC`] (125) |
//! | nothing before `--timeout` | killed | [`EXIT_TIMEOUT`] (124) |
//!
//! A kernel panic is recognized by the kernel's `Kernel panic - not syncing` console line. A
//! guest writing 0 to the debug port makes QEMU exit 1, which is also QEMU's status for its
//! own errors (a bad disk file, say): exit 1 counts as "guest wrote 0" only if the guest had
//! printed something on the console, and as a QEMU failure otherwise. Guests that can, report
//! success by powering off. The Debian cloud kernel has no `/dev/port`, so a guest without
//! port I/O of its own (busybox, a Rust binary without `unsafe`) uses the console line.

pub mod process;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// `cairn run`'s exit status when the guest did not finish within the timeout.
pub const EXIT_TIMEOUT: u8 = 124;
/// `cairn run`'s exit status when the guest kernel panicked.
pub const EXIT_GUEST_PANIC: u8 = 125;
/// `cairn run`'s exit status when QEMU itself failed (cairn's usual error status).
pub const EXIT_QEMU_FAILED: u8 = 2;

/// The console line a guest prints to set `cairn run`'s exit status: `CAIRN_EXIT=<0..=255>`.
pub const EXIT_MARKER: &str = "CAIRN_EXIT=";

/// What the kernel prints when it panics.
const PANIC_LINE: &str = "Kernel panic - not syncing";

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input: the build outputs for the prefix are not all there.
    #[error("no bootable outputs at {prefix}: missing {}", missing.join(", "))]
    MissingOutputs { prefix: String, missing: Vec<String> },
    /// Environment: an output exists but could not be read.
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Bad input: the cmdline file is not UTF-8.
    #[error("{} is not UTF-8", path.display())]
    CmdlineNotUtf8 { path: PathBuf },
    /// Environment: no QEMU to run.
    #[error(
        "{name} not found on PATH\n\nInstall qemu-system-x86 (on Debian 12 from bookworm-backports; see README), or pass --qemu PATH."
    )]
    QemuNotFound { name: String },
}

/// The files `cairn build` wrote for one image, found by their `OUT/NAME` prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    /// `NAME-kernel`.
    pub kernel: PathBuf,
    /// `NAME-initrd.img`.
    pub initrd: PathBuf,
    /// `NAME-cmdline`.
    pub cmdline: PathBuf,
    /// `NAME-payload.img`, present for verified-boot outputs: a raw disk.
    pub payload: Option<PathBuf>,
}

impl Outputs {
    /// The outputs named by `prefix` (`OUT/NAME`). The kernel, initrd and cmdline must all
    /// exist as files; the payload disk is optional. The error lists every missing file.
    pub fn find(prefix: &Path) -> Result<Outputs, RunError> {
        let with = |suffix: &str| {
            let mut s = prefix.as_os_str().to_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        let (kernel, initrd, cmdline) = (with("-kernel"), with("-initrd.img"), with("-cmdline"));
        let missing: Vec<String> = [&kernel, &initrd, &cmdline]
            .into_iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(RunError::MissingOutputs { prefix: prefix.display().to_string(), missing });
        }
        let payload = Some(with("-payload.img")).filter(|p| p.is_file());
        Ok(Outputs { kernel, initrd, cmdline, payload })
    }

    /// The kernel command line the build recorded, without surrounding whitespace.
    pub fn read_cmdline(&self) -> Result<String, RunError> {
        let bytes = fs::read(&self.cmdline)
            .map_err(|source| RunError::Read { path: self.cmdline.clone(), source })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| RunError::CmdlineNotUtf8 { path: self.cmdline.clone() })?;
        Ok(text.trim().to_string())
    }
}

/// How QEMU runs guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM when it looks usable (see [`Accel::detect`]), else TCG.
    Auto,
    /// Hardware virtualization; QEMU falls back to TCG when KVM cannot start.
    Kvm,
    /// Software emulation (works everywhere, slower).
    Tcg,
}

impl Accel {
    /// Resolves `Auto`: KVM only when `/dev/kvm` opens read-write *and* the CPU flags in
    /// `/proc/cpuinfo` include `vmx` or `svm`. Some sandboxes expose a `/dev/kvm` on a CPU
    /// without them, where KVM starts but a guest makes no progress; TCG is the safe choice.
    pub fn detect(kvm_opens: bool, cpuinfo: &str) -> Accel {
        let virt = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        if kvm_opens && virt { Accel::Kvm } else { Accel::Tcg }
    }

    /// [`Accel::detect`] on this machine.
    pub fn detect_host() -> Accel {
        let kvm_opens = fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Accel::detect(kvm_opens, &cpuinfo)
    }
}

/// Everything that decides the QEMU command line, in the order [`RunPlan::argv`] uses it.
/// Building it touches no files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPlan {
    pub qemu: PathBuf,
    /// A resolved accelerator: [`Accel::Auto`] is treated as [`Accel::Tcg`].
    pub accel: Accel,
    pub mem_mib: u32,
    pub cpus: u32,
    /// The kernel and initrd to boot, and the verified-boot payload disk, which is
    /// attached first (`/dev/vda`), read-only.
    pub outputs: Outputs,
    /// The image's own kernel command line (the contents of `NAME-cmdline`).
    pub cmdline: String,
    /// Extra kernel arguments from `--append`, added last so they win.
    pub append: Option<String>,
    /// Further disks from `--disk`, in order after the payload (`/dev/vdb`, …).
    pub disks: Vec<PathBuf>,
}

impl RunPlan {
    /// The kernel command line: the image's, then `console=ttyS0` and `panic=-1` unless the
    /// image already sets a console or a panic timeout, then `--append`.
    pub fn kernel_cmdline(&self) -> String {
        let has = |key: &str| self.cmdline.split_whitespace().any(|w| w.starts_with(key));
        let mut words: Vec<&str> = self.cmdline.split_whitespace().collect();
        if !has("console=ttyS0") {
            words.push("console=ttyS0");
        }
        if !has("panic=") {
            words.push("panic=-1");
        }
        if let Some(extra) = &self.append {
            words.extend(extra.split_whitespace());
        }
        words.join(" ")
    }

    /// The full argument vector, program first.
    pub fn argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![self.qemu.clone().into()];
        let mut push = |args: &[&str]| v.extend(args.iter().map(OsString::from));
        push(&["-nographic", "-no-reboot"]);
        match self.accel {
            Accel::Kvm => push(&["-accel", "kvm", "-accel", "tcg"]),
            Accel::Tcg | Accel::Auto => push(&["-accel", "tcg"]),
        }
        push(&["-m", &self.mem_mib.to_string(), "-smp", &self.cpus.to_string()]);
        push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        v.extend(["-kernel".into(), self.outputs.kernel.clone().into_os_string()]);
        v.extend(["-initrd".into(), self.outputs.initrd.clone().into_os_string()]);
        v.extend(["-append".into(), self.kernel_cmdline().into()]);
        if let Some(payload) = &self.outputs.payload {
            v.push("-drive".into());
            v.push(drive(payload, "readonly=on"));
        }
        for disk in &self.disks {
            v.push("-drive".into());
            v.push(drive(disk, ""));
        }
        v
    }
}

/// A `-drive` value for a virtio disk: `file=PATH,format=F,if=virtio[,EXTRA]`, with commas
/// in the path doubled (QEMU's escape) and the format `qcow2` for `.qcow2` files, else raw.
fn drive(path: &Path, extra: &str) -> OsString {
    let mut file = Vec::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        file.push(b);
        if b == b',' {
            file.push(b',');
        }
    }
    let format = if path.extension() == Some(OsStr::new("qcow2")) { "qcow2" } else { "raw" };
    let mut s = OsString::from("file=");
    s.push(OsString::from_vec(file));
    s.push(format!(",format={format},if=virtio"));
    if !extra.is_empty() {
        s.push(",");
        s.push(extra);
    }
    s
}

/// Looks for `name` in the directories of `path` (a `PATH` value): the first executable
/// regular file.
pub fn find_in_path(name: &str, path: Option<&OsStr>) -> Result<PathBuf, RunError> {
    use std::os::unix::fs::PermissionsExt;
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .ok_or_else(|| RunError::QemuNotFound { name: name.to_string() })
}

/// Watches console bytes as they stream by, across arbitrary chunk boundaries.
#[derive(Debug, Default)]
pub struct ConsoleScan {
    line: Vec<u8>,
    /// The guest printed at least one byte.
    pub saw_output: bool,
    /// The kernel printed its panic line.
    pub panicked: bool,
    /// The last `CAIRN_EXIT=N` line's N.
    pub exit_marker: Option<u8>,
}

/// Lines longer than this are cut for scanning (the bytes are still forwarded).
const MAX_LINE: usize = 4096;

impl ConsoleScan {
    pub fn feed(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.saw_output = true;
        }
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }

    /// Scans a last line that had no newline.
    pub fn finish(&mut self) {
        if !self.line.is_empty() {
            self.end_line();
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        let line = line.trim_matches(|c: char| c == '\r' || c.is_whitespace());
        if line.contains(PANIC_LINE) {
            self.panicked = true;
        }
        if let Some(n) = line.strip_prefix(EXIT_MARKER).and_then(|n| n.parse::<u8>().ok()) {
            self.exit_marker = Some(n);
        }
        self.line.clear();
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest powered off (status 0) or set a status with `CAIRN_EXIT=N` or the debug port.
    Exited(u8),
    /// The guest kernel panicked.
    Panicked,
    /// The timeout passed; QEMU was killed.
    TimedOut,
    /// QEMU itself failed (its message is on stderr) with this status, or by a signal.
    QemuFailed(Option<i32>),
}

impl Outcome {
    /// Maps QEMU's exit status and what the console showed (see the module docs).
    pub fn from_qemu(code: Option<i32>, console: &ConsoleScan) -> Outcome {
        match code {
            Some(0) if console.panicked => Outcome::Panicked,
            Some(0) => Outcome::Exited(console.exit_marker.unwrap_or(0)),
            Some(1) if console.saw_output => Outcome::Exited(0),
            Some(c) if c & 1 == 1 && (3..=255).contains(&c) => Outcome::Exited((c >> 1) as u8),
            other => Outcome::QemuFailed(other),
        }
    }

    /// `cairn run`'s exit status for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Exited(n) => n,
            Outcome::Panicked => EXIT_GUEST_PANIC,
            Outcome::TimedOut => EXIT_TIMEOUT,
            Outcome::QemuFailed(_) => EXIT_QEMU_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RunPlan {
        RunPlan {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            outputs: Outputs {
                kernel: "out/img-kernel".into(),
                initrd: "out/img-initrd.img".into(),
                cmdline: "out/img-cmdline".into(),
                payload: None,
            },
            cmdline: "console=ttyS0 quiet".into(),
            append: None,
            disks: vec![],
            mem_mib: 512,
            cpus: 1,
            accel: Accel::Tcg,
        }
    }

    fn strings(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_str().unwrap().to_string()).collect()
    }

    #[test]
    fn kernel_initrd_argv() {
        assert_eq!(
            strings(&plan().argv()),
            [
                "/usr/bin/qemu-system-x86_64",
                "-nographic",
                "-no-reboot",
                "-accel",
                "tcg",
                "-m",
                "512",
                "-smp",
                "1",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-kernel",
                "out/img-kernel",
                "-initrd",
                "out/img-initrd.img",
                "-append",
                "console=ttyS0 quiet panic=-1",
            ]
        );
    }

    #[test]
    fn payload_first_and_read_only_then_disks() {
        let base = plan();
        let p = RunPlan {
            outputs: Outputs { payload: Some("out/img-payload.img".into()), ..base.outputs },
            disks: vec!["data,1.img".into(), "scratch.qcow2".into()],
            mem_mib: 1024,
            cpus: 2,
            accel: Accel::Kvm,
            ..base
        };
        let argv = strings(&p.argv());
        let drives: Vec<&str> =
            argv.windows(2).filter(|w| w[0] == "-drive").map(|w| w[1].as_str()).collect();
        assert_eq!(
            drives,
            [
                "file=out/img-payload.img,format=raw,if=virtio,readonly=on",
                "file=data,,1.img,format=raw,if=virtio",
                "file=scratch.qcow2,format=qcow2,if=virtio",
            ]
        );
        let joined = argv.join(" ");
        assert!(joined.contains("-accel kvm -accel tcg"), "{joined}");
        assert!(joined.contains("-m 1024 -smp 2"), "{joined}");
    }

    #[test]
    fn cmdline_adds_console_and_panic_once_and_append_last() {
        let p = RunPlan { cmdline: "root=/dev/vda".into(), ..plan() };
        assert_eq!(p.kernel_cmdline(), "root=/dev/vda console=ttyS0 panic=-1");
        let p = RunPlan {
            cmdline: "console=ttyS0,115200 panic=5\n".into(),
            append: Some("  init=/bin/sh  debug".into()),
            ..plan()
        };
        assert_eq!(p.kernel_cmdline(), "console=ttyS0,115200 panic=5 init=/bin/sh debug");
        let p = RunPlan { cmdline: String::new(), ..plan() };
        assert_eq!(p.kernel_cmdline(), "console=ttyS0 panic=-1");
    }

    #[test]
    fn non_utf8_paths_survive() {
        use std::os::unix::ffi::OsStrExt;
        let p = RunPlan { disks: vec![PathBuf::from(OsStr::from_bytes(b"d\xff,x"))], ..plan() };
        let argv = p.argv();
        assert_eq!(argv.last().unwrap().as_bytes(), b"file=d\xff,,x,format=raw,if=virtio");
    }

    #[test]
    fn accel_detection_needs_device_and_cpu_flags() {
        let vmx = "processor : 0\nflags\t\t: fpu vme vmx sse\n";
        let none = "processor : 0\nflags\t\t: fpu vme sse\n";
        assert_eq!(Accel::detect(true, vmx), Accel::Kvm);
        assert_eq!(Accel::detect(true, "flags : svm"), Accel::Kvm);
        assert_eq!(Accel::detect(true, none), Accel::Tcg);
        assert_eq!(Accel::detect(false, vmx), Accel::Tcg);
    }

    #[test]
    fn outputs_found_by_prefix_and_missing_ones_listed() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("img");
        let err = Outputs::find(&prefix).unwrap_err().to_string();
        for suffix in ["img-kernel", "img-initrd.img", "img-cmdline"] {
            assert!(err.contains(suffix), "{err}");
        }
        for suffix in ["-kernel", "-initrd.img", "-cmdline"] {
            fs::write(dir.path().join(format!("img{suffix}")), "x").unwrap();
        }
        let o = Outputs::find(&prefix).unwrap();
        assert_eq!(o.payload, None);
        assert_eq!(o.initrd, dir.path().join("img-initrd.img"));
        fs::write(dir.path().join("img-payload.img"), "x").unwrap();
        assert_eq!(
            Outputs::find(&prefix).unwrap().payload,
            Some(dir.path().join("img-payload.img"))
        );
        fs::write(dir.path().join("img-cmdline"), "console=ttyS0 \n").unwrap();
        assert_eq!(Outputs::find(&prefix).unwrap().read_cmdline().unwrap(), "console=ttyS0");
    }

    #[test]
    fn console_scan_across_chunks() {
        let mut s = ConsoleScan::default();
        assert!(!s.saw_output);
        s.feed(b"[    1.0] Kernel pan");
        s.feed(b"ic - not syncing: Attempted to kill init!\r\n");
        assert!(s.saw_output && s.panicked);
        let mut s = ConsoleScan::default();
        s.feed(b"CAIRN_EXIT=7\r\nhello\nCAIRN_EX");
        s.feed(b"IT=9");
        assert_eq!(s.exit_marker, Some(7));
        s.finish();
        assert_eq!(s.exit_marker, Some(9));
        let mut s = ConsoleScan::default();
        s.feed(b"echo CAIRN_EXIT=3\nCAIRN_EXIT=300\n");
        assert_eq!(s.exit_marker, None);
    }

    #[test]
    fn outcome_mapping() {
        let quiet = ConsoleScan::default();
        let mut talked = ConsoleScan::default();
        talked.feed(b"hi\n");
        assert_eq!(Outcome::from_qemu(Some(0), &talked), Outcome::Exited(0));
        assert_eq!(Outcome::from_qemu(Some(1), &talked), Outcome::Exited(0));
        assert_eq!(Outcome::from_qemu(Some(1), &quiet), Outcome::QemuFailed(Some(1)));
        assert_eq!(Outcome::from_qemu(Some(3), &talked), Outcome::Exited(1));
        assert_eq!(Outcome::from_qemu(Some(255), &talked), Outcome::Exited(127));
        assert_eq!(Outcome::from_qemu(Some(2), &talked), Outcome::QemuFailed(Some(2)));
        assert_eq!(Outcome::from_qemu(None, &talked), Outcome::QemuFailed(None));
        let mut marked = ConsoleScan::default();
        marked.feed(b"CAIRN_EXIT=42\n");
        assert_eq!(Outcome::from_qemu(Some(0), &marked), Outcome::Exited(42));
        marked.feed(b"Kernel panic - not syncing: boom\n");
        assert_eq!(Outcome::from_qemu(Some(0), &marked), Outcome::Panicked);
        assert_eq!(Outcome::Panicked.exit_code(), 125);
        assert_eq!(Outcome::TimedOut.exit_code(), 124);
        assert_eq!(Outcome::Exited(9).exit_code(), 9);
        assert_eq!(Outcome::QemuFailed(Some(1)).exit_code(), 2);
    }
}
