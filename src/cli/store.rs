//! `cairn store`: look after the content store.

use std::process::ExitCode;

use anyhow::Context;

use crate::store::CacheGc;

use super::GlobalArgs;

/// Inspect and maintain the content store (an OCI image layout).
///
/// Examples:
///   cairn store ls
///   cairn store fsck && cairn store gc --dry-run
///   cairn --store /srv/cairn-store store ls
#[derive(Debug, clap::Subcommand)]
#[command(verbatim_doc_comment)]
pub enum StoreCommand {
    /// List the images the store names, with their digests.
    ///
    /// Output: one line per image, NAME<TAB>DIGEST, sorted by name.
    ///
    /// Examples:
    ///   cairn store ls
    ///   CAIRN_STORE=/srv/cairn-store cairn store ls
    #[command(verbatim_doc_comment)]
    Ls,
    /// Delete blobs no named image or build cache entry refers to.
    ///
    /// Walks every index and manifest reachable from the store's index.json; deletes
    /// nothing if any of them is missing or corrupt (run `cairn store fsck`). Drops build
    /// cache entries unused for 14 days or broken (all of them with --drop-cache), then
    /// the blobs only they held.
    ///
    /// Examples:
    ///   cairn store gc --dry-run
    ///   cairn store gc
    ///   cairn store gc --drop-cache
    #[command(verbatim_doc_comment)]
    Gc {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Drop every cached build output, however recent.
        #[arg(long)]
        drop_cache: bool,
    },
    /// Re-hash every blob and check every named image is complete; exit 1 on any problem.
    ///
    /// Prints one line per problem: corrupt<TAB>DIGEST, missing<TAB>DIGEST or
    /// problem<TAB>TEXT; and leftover<TAB>PATH for each temporary file of a killed process
    /// (garbage `cairn store gc` removes, not a problem).
    ///
    /// Examples:
    ///   cairn store fsck
    ///   cairn store fsck || echo "store needs repair"
    #[command(verbatim_doc_comment)]
    Fsck,
}

pub fn run(cmd: StoreCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let root = store.root().display().to_string();
    match cmd {
        StoreCommand::Ls => {
            let images = store.images().with_context(|| format!("listing store {root}"))?;
            for (name, desc) in images {
                super::outln!("{}\t{}", name, desc.digest())?;
            }
        }
        StoreCommand::Gc { dry_run, drop_cache } => {
            let cache = if drop_cache { CacheGc::DropAll } else { CacheGc::KeepRecent };
            let report = store
                .gc_with(dry_run, cache)
                .with_context(|| format!("collecting garbage in {root}"))?;
            let verb = if report.dry_run { "would remove" } else { "removed" };
            for d in &report.removed {
                super::outln!("{verb}\t{d}")?;
            }
            if !global.quiet {
                eprintln!(
                    "cairn: {verb} {} blobs ({} bytes), {} stale temporary files and {} build cache entries; kept {} blobs",
                    report.removed.len(),
                    report.freed_bytes,
                    report.removed_temp.len(),
                    report.dropped_cache_entries,
                    report.kept
                );
            }
        }
        StoreCommand::Fsck => {
            let report = store.fsck().with_context(|| format!("checking store {root}"))?;
            for (expected, actual) in &report.corrupt {
                super::outln!("corrupt\t{expected}\tcontent hashes to {actual}")?;
            }
            for d in &report.missing {
                super::outln!("missing\t{d}")?;
            }
            for p in &report.problems {
                super::outln!("problem\t{p}")?;
            }
            for p in &report.leftovers {
                println!("leftover\t{}", p.display());
            }
            if !report.is_ok() {
                return Err(crate::diag::Rejection::new(format!(
                    "store {root} has problems: {} corrupt, {} missing, {} other",
                    report.corrupt.len(),
                    report.missing.len(),
                    report.problems.len()
                ))
                .into());
            }
            if !global.quiet {
                eprintln!(
                    "cairn: store {root} is consistent ({} blobs and {} build cache entries checked)",
                    report.checked, report.cache_entries
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
