//! A spec as read from disk, with the paths the build derives from it (its directory, its
//! lock file) and its lock.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::lock::{LockError, Lockfile};
use crate::spec::{self, Spec, SpecError};

/// Why a spec or its lock could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    #[error("reading spec {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("reading spec {}: not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("reading lock {}: {source}", path.display())]
    ReadLock { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Lock(#[from] LockError),
}

/// A spec file, parsed, with the digest of its bytes.
pub struct LoadedSpec {
    pub path: PathBuf,
    pub text: String,
    pub spec: Spec,
    pub digest: Digest,
}

impl LoadedSpec {
    pub fn read(path: &Path) -> Result<LoadedSpec, SpecFileError> {
        let bytes = std::fs::read(path)
            .map_err(|source| SpecFileError::Read { path: path.to_path_buf(), source })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| SpecFileError::NotUtf8 { path: path.to_path_buf() })?;
        let spec = spec::parse(&path.display().to_string(), &text)?;
        let digest = Digest::of(text.as_bytes());
        Ok(LoadedSpec { path: path.to_path_buf(), text, spec, digest })
    }

    /// The directory `files[].source` paths are relative to.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// `SPEC.lock`, beside the spec.
    pub fn lock_path(&self) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(".lock");
        PathBuf::from(s)
    }

    /// The spec's file name as the provenance records it (no directories: where the spec
    /// sits on the build machine is not a build input).
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// The existing lock file, if there is one.
    pub fn read_lock(&self) -> Result<Option<Lockfile>, SpecFileError> {
        let path = self.lock_path();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Lockfile::parse(&path.display().to_string(), &bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SpecFileError::ReadLock { path, source }),
        }
    }
}
