//! `cairn store`: look after the content store.

use std::process::ExitCode;

use anyhow::Context;

use super::GlobalArgs;

/// Inspect and maintain the content store.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// List the images the store names, with their digests.
    Ls,
    /// Delete blobs no named image refers to.
    ///
    /// Example: cairn store gc --dry-run
    Gc {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every blob and check every named image is complete; exit 1 on any problem.
    Fsck,
}

pub fn run(cmd: StoreCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let root = store.root().display().to_string();
    match cmd {
        StoreCommand::Ls => {
            let images = store.images().with_context(|| format!("listing store {root}"))?;
            for (name, desc) in images {
                println!("{}\t{}", name, desc.digest());
            }
        }
        StoreCommand::Gc { dry_run } => {
            let report = store.gc(dry_run).with_context(|| format!("collecting garbage in {root}"))?;
            if !global.quiet {
                eprintln!("cairn: {report}");
            }
        }
        StoreCommand::Fsck => {
            let report = store.fsck().with_context(|| format!("checking store {root}"))?;
            if !report.is_clean() {
                eprintln!("cairn: store {root} has problems:\n{report}");
                return Ok(ExitCode::from(super::EXIT_REJECTED));
            }
            if !global.quiet {
                eprintln!("cairn: store {root} is consistent: {report}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
