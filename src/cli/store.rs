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
            let report =
                store.gc(dry_run).with_context(|| format!("collecting garbage in {root}"))?;
            let verb = if report.dry_run { "would remove" } else { "removed" };
            for d in &report.removed {
                println!("{verb}\t{d}");
            }
            if !global.quiet {
                eprintln!(
                    "cairn: {verb} {} blobs ({} bytes) and {} stale temporary files; kept {} blobs",
                    report.removed.len(),
                    report.freed_bytes,
                    report.removed_temp.len(),
                    report.kept
                );
            }
        }
        StoreCommand::Fsck => {
            let report = store.fsck().with_context(|| format!("checking store {root}"))?;
            for (expected, actual) in &report.corrupt {
                println!("corrupt\t{expected}\tcontent hashes to {actual}");
            }
            for d in &report.missing {
                println!("missing\t{d}");
            }
            for p in &report.problems {
                println!("problem\t{p}");
            }
            if !report.is_ok() {
                eprintln!(
                    "cairn: store {root} has problems: {} corrupt, {} missing, {} other",
                    report.corrupt.len(),
                    report.missing.len(),
                    report.problems.len()
                );
                return Ok(ExitCode::from(super::EXIT_REJECTED));
            }
            if !global.quiet {
                eprintln!("cairn: store {root} is consistent ({} blobs checked)", report.checked);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
