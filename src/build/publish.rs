//! Outputs appear only when the whole build succeeded: everything is written into a
//! staging directory inside the output directory, then moved into place with one rename
//! per output.

use std::path::{Path, PathBuf};

use crate::emit::Output;

/// Why the outputs could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("creating output directory {}: {source}", dir.display())]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("writing to output directory {}: {source}", dir.display())]
    Staging { dir: PathBuf, source: std::io::Error },
    #[error(
        "writing {}: a directory of that name exists and is not an earlier cairn OCI output; remove it or choose another --name",
        path.display()
    )]
    NotOurs { path: PathBuf },
    #[error("replacing {}: {source}", path.display())]
    Replace { path: PathBuf, source: std::io::Error },
    #[error("writing {}: {source}", path.display())]
    Rename { path: PathBuf, source: std::io::Error },
}

/// A staging directory (`.cairn-build-*`, hidden, so never an output name) inside `out`;
/// removed with everything left in it when dropped.
pub fn staging_dir(out: &Path) -> Result<tempfile::TempDir, PublishError> {
    std::fs::create_dir_all(out)
        .map_err(|source| PublishError::CreateDir { dir: out.to_path_buf(), source })?;
    tempfile::Builder::new()
        .prefix(".cairn-build-")
        .tempdir_in(out)
        .map_err(|source| PublishError::Staging { dir: out.to_path_buf(), source })
}

/// Moves finished outputs from the staging directory into place, each with one rename.
/// Every destination is checked before anything is moved, so a refusal leaves the output
/// directory as it was.
pub fn publish(staging: &Path, out: &Path, outputs: &[Output]) -> Result<(), PublishError> {
    for o in outputs {
        let to = out.join(&o.rel_path);
        // Only an earlier OCI layout output may be replaced; any other directory is the user's.
        if to.is_dir() && !(staging.join(&o.rel_path).is_dir() && to.join("oci-layout").is_file()) {
            return Err(PublishError::NotOurs { path: to });
        }
    }
    for o in outputs {
        let from = staging.join(&o.rel_path);
        let to = out.join(&o.rel_path);
        if to.is_dir() {
            // A directory cannot be replaced by one rename: move the old one aside into the
            // staging directory, which is deleted afterwards.
            let old = staging.join(format!("{}.old", o.rel_path));
            std::fs::rename(&to, &old)
                .map_err(|source| PublishError::Replace { path: to.clone(), source })?;
        }
        std::fs::rename(&from, &to).map_err(|source| PublishError::Rename { path: to, source })?;
    }
    Ok(())
}
