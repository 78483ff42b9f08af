//! Outputs appear only when the whole build succeeded: everything is written into a
//! staging directory inside the output directory, then moved into place with one rename
//! per output.

use std::path::{Path, PathBuf};

use crate::emit::Output;
use crate::store::{is_dead_temp, temp_prefix};

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

/// The kind of a staging directory's name: `.cairn-build-<pid>-<random>`.
const STAGING_KIND: &str = ".cairn-build";

/// A staging directory (`.cairn-build-<pid>-*`, hidden, so never an output name) inside
/// `out`; removed with everything left in it when dropped. Staging directories in `out` of
/// builds that were killed (their process is gone) are removed first.
pub fn staging_dir(out: &Path) -> Result<tempfile::TempDir, PublishError> {
    std::fs::create_dir_all(out)
        .map_err(|source| PublishError::CreateDir { dir: out.to_path_buf(), source })?;
    remove_dead_staging(out);
    tempfile::Builder::new()
        .prefix(&temp_prefix(STAGING_KIND))
        .tempdir_in(out)
        .map_err(|source| PublishError::Staging { dir: out.to_path_buf(), source })
}

/// Removes the staging directories of dead builds from `out`. Best effort: one that cannot
/// be removed is only garbage, and must not fail this build.
fn remove_dead_staging(out: &Path) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_dead_temp(&path, &[STAGING_KIND]) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
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
