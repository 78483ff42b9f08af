//! `cairn run`: boot a build's outputs in QEMU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::run::{Accel, Outcome, Outputs, RunPlan, find_in_path, process};

use super::GlobalArgs;

const QEMU: &str = "qemu-system-x86_64";

const RUN_EXIT_CODES: &str = "\
Exit status:
  N    the guest wrote N (0-127) to I/O port 0xf4 (isa-debug-exit), or printed a
       console line CAIRN_EXIT=N (0-255) before powering off
  0    the guest powered off
  124  the guest did not finish within --timeout (QEMU was killed)
  125  the guest kernel panicked
  2    error: missing outputs, QEMU missing or failed";

/// Boot an image in QEMU, with the console on stdout, and exit with the guest's status.
///
/// PREFIX is the output directory and name a build used (OUT/NAME). For kernel+initrd
/// outputs cairn boots NAME-kernel with NAME-initrd.img and the command line in
/// NAME-cmdline. For verified-boot outputs NAME-payload.img is attached too, as the first
/// virtio disk (/dev/vda), read-only. Further --disk files follow it (/dev/vdb, ...).
///
/// QEMU runs with -nographic -no-reboot, console=ttyS0 and panic=-1 on the kernel command
/// line (unless the image sets its own), and an isa-debug-exit device at port 0xf4. On a
/// terminal Ctrl-A x quits. KVM is used only where it looks usable (--accel auto);
/// otherwise QEMU emulates the CPU (TCG), which takes 10-20 s to boot a small image.
///
/// Examples:
///   cairn build examples/boot/boot.yml -o out/ && cairn run out/boot
///   cairn run out/fleet --mem 1024 --timeout 300
///   cairn run out/boot --append "init=/bin/sh" --disk scratch.img
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_long_help = RUN_EXIT_CODES)]
pub struct Args {
    /// The outputs to boot: OUT/NAME as given to `cairn build -o OUT --name NAME`.
    #[arg(value_name = "PREFIX")]
    pub prefix: PathBuf,

    /// The QEMU binary. Default: qemu-system-x86_64 on PATH.
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,

    /// CPU accelerator: kvm when usable (auto), kvm (falls back to tcg), or tcg.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,

    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub mem: u32,

    /// Number of guest CPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u32,

    /// Kill QEMU and exit 124 after this many seconds; 0 waits forever.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,

    /// Extra kernel command-line arguments, added after the image's.
    #[arg(long, value_name = "ARGS")]
    pub append: Option<String>,

    /// Attach a disk image as a virtio drive (raw; qcow2 for *.qcow2); repeat for more.
    #[arg(long = "disk", value_name = "FILE")]
    pub disks: Vec<PathBuf>,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.mem == 0 || args.cpus == 0 {
        anyhow::bail!("--mem and --cpus must be at least 1");
    }
    let outputs = Outputs::find(&args.prefix)?;
    let cmdline = outputs.read_cmdline()?;
    for disk in &args.disks {
        if !disk.is_file() {
            anyhow::bail!("disk image {} does not exist or is not a file", disk.display());
        }
    }
    let qemu = match args.qemu {
        Some(q) => q,
        None => find_in_path(QEMU, std::env::var_os("PATH").as_deref())?,
    };
    let accel = match args.accel {
        Accel::Auto => Accel::detect_host(),
        a => a,
    };
    let plan = RunPlan {
        qemu,
        outputs,
        cmdline,
        append: args.append,
        disks: args.disks,
        mem_mib: args.mem,
        cpus: args.cpus,
        accel,
    };
    let argv = plan.argv();
    if !global.quiet {
        let shown: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy())
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a.into_owned() })
            .collect();
        eprintln!("cairn: running {}", shown.join(" "));
    }
    let timeout = (args.timeout > 0).then(|| Duration::from_secs(args.timeout));
    let outcome = process::boot(&argv, timeout, std::io::stdout())
        .with_context(|| format!("booting {}", args.prefix.display()))?;
    match outcome {
        Outcome::Exited(_) => {}
        Outcome::Panicked => eprintln!("cairn: the guest kernel panicked"),
        Outcome::TimedOut => {
            eprintln!("cairn: the guest did not finish within {} s; QEMU was killed", args.timeout)
        }
        Outcome::QemuFailed(Some(code)) => {
            eprintln!("cairn: {QEMU} failed with exit status {code}")
        }
        Outcome::QemuFailed(None) => eprintln!("cairn: {QEMU} was killed by a signal"),
    }
    Ok(ExitCode::from(outcome.exit_code()))
}
