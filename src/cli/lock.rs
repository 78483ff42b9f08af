//! `cairn lock`: pin every input of a spec by sha256.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::build::LoadedSpec;
use crate::diag::Rejection;
use crate::lock as stage;

use super::GlobalArgs;

/// Resolve every image and source file of a spec and write SPEC.lock.
///
/// Images are resolved in the store (index, then the linux/amd64 manifest, its config
/// and layers); `files[].source` paths, relative to the spec's directory, are hashed.
/// The lock also records the spec's digest and the source date epoch used.
///
/// Examples:
///   cairn lock examples/hello.yml            # writes examples/hello.yml.lock
///   cairn lock examples/hello.yml --check    # exit 1 if the lock is missing or stale
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The spec file (LinuxKit YAML).
    pub spec: PathBuf,

    /// Do not write; exit 1 if the lock would change.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = LoadedSpec::read(&args.spec)?;
    let store = global.open_store()?;
    let env_sd = super::env_source_date()?;
    let lock = stage::resolve(&loaded.spec, loaded.digest, loaded.dir(), &store, env_sd)
        .with_context(|| format!("locking {}", loaded.path.display()))?;
    let rendered = lock.render();
    let lock_path = loaded.lock_path();
    if args.check {
        let current = std::fs::read(&lock_path).ok();
        if current.as_deref() != Some(&rendered[..]) {
            return Err(Rejection::new(format!(
                "{} is {}\n\nRun `cairn lock {}` to update it.",
                lock_path.display(),
                if current.is_some() { "stale" } else { "missing" },
                loaded.path.display()
            ))
            .into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    crate::atomic::write_atomic(&lock_path, &rendered)
        .with_context(|| format!("writing lock {}", lock_path.display()))?;
    if !global.quiet {
        eprintln!(
            "cairn: locked {} images and {} files in {}",
            lock.images.len(),
            lock.files.len(),
            lock_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
