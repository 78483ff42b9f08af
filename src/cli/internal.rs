//! `cairn internal …`: hidden commands the image itself runs (not for users).
//!
//! - `cairn internal init`: PID 1 of a cairn payload (see [`crate::init`]).
//! - `cairn internal run-bundle DIR`: runs one OCI bundle with the built-in runner.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum InternalCommand {
    /// Run as the payload's init (PID 1): mount, onboot, services, onshutdown, power off.
    Init {
        /// Directory holding onboot/, services/, onshutdown/.
        #[arg(long, value_name = "DIR", default_value = "/containers")]
        containers: PathBuf,
        /// Do not mount /proc, /sys, /dev… nor set the hostname (for tests).
        #[arg(long)]
        no_mount: bool,
    },
    /// Run one OCI runtime bundle (config.json + runtime.json) and become its process.
    RunBundle {
        /// The bundle directory.
        #[arg(value_name = "DIR")]
        bundle: PathBuf,
        /// Second stage, inside the new PID namespace (spawned by the first).
        #[arg(long, hide = true)]
        stage2: bool,
    },
}

pub fn run(cmd: InternalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        InternalCommand::Init { containers, no_mount } => {
            crate::init::run_init(crate::init::InitOptions { containers, mount_system: !no_mount })
        }
        InternalCommand::RunBundle { bundle, stage2 } => crate::init::run_bundle(&bundle, stage2),
    }
}
