//! `cairn lock`: pin every input of a spec by sha256.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::build::LoadedSpec;
use crate::diag::Rejection;
use crate::lock::{self as stage, Lockfile, Resolver};
use crate::registry::{Progress, StoreThenRegistry};

use super::GlobalArgs;
use super::pull::RegistryArgs;

/// Resolve every image and source file of a spec and write SPEC.lock.
///
/// Images are resolved in the store (index, then the linux/amd64 manifest, its config
/// and layers). An image the store does not have is resolved on its registry (tag ->
/// digest, index -> linux/amd64 manifest) and pulled into the store, verified, so that
/// `cairn build --locked` needs no network afterwards; the lock then records the
/// repository it came from. With --offline the network is never used and an image
/// missing from the store is an error naming it. `files[].source` paths, relative to the
/// spec's directory, are hashed. The lock also records the spec's digest and the source
/// date epoch used.
///
/// Examples:
///   cairn lock examples/hello.yml            # writes examples/hello.yml.lock
///   cairn lock examples/hello.yml --check    # exit 1 if the lock is missing or stale
///   cairn lock app.yml --offline             # only what `cairn import`/`pull` stored
///   cairn lock app.yml --insecure-registry registry.lan:5000
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The spec file (LinuxKit YAML).
    pub spec: PathBuf,

    /// Do not write; exit 1 if the lock would change.
    #[arg(long)]
    pub check: bool,

    /// Never use the network: resolve in the store only.
    #[arg(long)]
    pub offline: bool,

    /// Also allow `files[].source` paths under DIR, outside the spec's directory
    /// (repeatable). Without it a spec reads only files under its own directory.
    #[arg(long, value_name = "DIR")]
    pub allow_source_outside: Vec<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = LoadedSpec::read(&args.spec)?;
    let store = global.open_store()?;
    let env_sd = super::env_source_date()?;
    let lock_path = loaded.lock_path();
    // The lock being replaced, if readable: images at the same digest keep its record of
    // their registry repository.
    let previous = std::fs::read(&lock_path)
        .ok()
        .and_then(|b| Lockfile::parse(&lock_path.display().to_string(), &b).ok());
    let options = args.registry.options()?;
    let progress = Progress::for_stderr(global.quiet);
    let online = StoreThenRegistry { store: &store, options: &options, progress: &progress };
    let resolver: &dyn Resolver = if args.offline { &store } else { &online };
    let lock = stage::resolve(
        &loaded.spec,
        loaded.digest,
        stage::SourceRoots { spec_dir: loaded.dir(), allowed_outside: &args.allow_source_outside },
        resolver,
        env_sd,
        previous.as_ref(),
    )
    .with_context(|| format!("locking {}", loaded.path.display()))?;
    let rendered = lock.render();
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
