//! `cairn lock`: pin every input of a spec by sha256.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::digest::Digest;
use crate::lock::{self as stage, Lockfile};
use crate::spec::{self, Spec};

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

/// A spec as read from disk.
pub struct LoadedSpec {
    pub path: PathBuf,
    pub text: String,
    pub spec: Spec,
    pub digest: Digest,
}

impl LoadedSpec {
    pub fn read(path: &Path) -> anyhow::Result<LoadedSpec> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading spec {}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("reading spec {}: not valid UTF-8", path.display()))?;
        let spec = spec::parse(&path.display().to_string(), &text)?;
        let digest = Digest::of(text.as_bytes());
        Ok(LoadedSpec { path: path.to_path_buf(), text, spec, digest })
    }

    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    pub fn lock_path(&self) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(".lock");
        PathBuf::from(s)
    }

    /// The existing lock file, if there is one.
    pub fn read_lock(&self) -> anyhow::Result<Option<Lockfile>> {
        let path = self.lock_path();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Lockfile::parse(&path.display().to_string(), &bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading lock {}", path.display())),
        }
    }
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
            eprintln!(
                "cairn: {} is {}\n\nRun `cairn lock {}` to update it.",
                lock_path.display(),
                if current.is_some() { "stale" } else { "missing" },
                loaded.path.display()
            );
            return Ok(ExitCode::from(super::EXIT_REJECTED));
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
