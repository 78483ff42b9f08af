//! `cairn fetch`: every image a lock pins, from its registry into the store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::lock::Lockfile;
use crate::registry::Progress;

use super::GlobalArgs;
use super::pull::RegistryArgs;

/// Bring every image SPEC.lock pins into the store from its registry.
///
/// Each image is fetched by the digests in the lock, from the registry repository the lock
/// recorded (else the one its reference names), and verified; blobs the store already has
/// are not transferred, so an interrupted fetch resumes. `cairn build --locked` then needs
/// no network. (`cairn lock` itself pulls what it resolves on a registry; fetch is for
/// another machine, or a store that was cleaned, given only the spec and its lock.)
///
/// Examples:
///   cairn fetch examples/hello.yml
///   cairn fetch app.yml --registry-ca corp-ca.pem && cairn build app.yml --locked -o out/
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The spec whose lock (SPEC.lock) to fetch.
    pub spec: PathBuf,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut lock_path = args.spec.clone().into_os_string();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let bytes = std::fs::read(&lock_path)
        .with_context(|| format!("reading lock {}", lock_path.display()))?;
    let lock = Lockfile::parse(&lock_path.display().to_string(), &bytes)?;
    let options = args.registry.options()?;
    let store = global.open_store()?;
    let progress = Progress::for_stderr(global.quiet);
    let fetched = crate::registry::fetch_lock(&store, &lock, &options, &progress)
        .with_context(|| format!("fetching the images of {}", lock_path.display()))?;
    if !global.quiet {
        for f in fetched {
            super::outln!("{}\t{} blobs\t{} bytes", f.reference, f.blobs_fetched, f.bytes_fetched)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
