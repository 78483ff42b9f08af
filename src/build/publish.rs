//! Outputs appear only when the whole build succeeded, and a set of outputs replaces the
//! previous set as a whole: everything is written into a staging directory inside the output
//! directory, then moved into place with one rename per output.
//!
//! Under an `flock` on the output directory, the staging directory first gets a commit mark
//! (the list of its outputs, synced); from then on its set is complete and decided. A
//! process killed during the renames leaves a committed staging directory behind: the next
//! publish into the directory (or the next build starting there) finishes those renames
//! before anything else, so the directory goes from the previous set to the new one and
//! never stays a mix of both. An uncommitted staging directory of a dead process is only
//! garbage and is removed. Every output file was synced before the mark was written, so no
//! name ever refers to a partial file.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::emit::Output;
use crate::store::{is_dead_temp, temp_prefix};
use crate::tree::{NodeKind, Tree};

/// Why the outputs could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("creating output directory {}: {source}", dir.display())]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("writing to output directory {}: {source}", dir.display())]
    Staging { dir: PathBuf, source: std::io::Error },
    #[error(
        "not enough space in output directory {}: the outputs need about {need} bytes, {available} are available",
        dir.display()
    )]
    NoSpace { dir: PathBuf, need: u64, available: u64 },
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

/// Inside a staging directory: the names of its outputs, one per line, written when the
/// set is complete. Its presence means "put these in place".
const COMMIT_MARK: &str = ".commit";

/// A staging directory (`.cairn-build-<pid>-*`, hidden, so never an output name) inside
/// `out`; removed with everything left in it when dropped. Interrupted publishes into `out`
/// are finished first, and staging directories of other dead builds removed.
pub fn staging_dir(out: &Path) -> Result<tempfile::TempDir, PublishError> {
    std::fs::create_dir_all(out)
        .map_err(|source| PublishError::CreateDir { dir: out.to_path_buf(), source })?;
    drop(lock_and_recover(out)?);
    tempfile::Builder::new()
        .prefix(&temp_prefix(STAGING_KIND))
        .tempdir_in(out)
        .map_err(|source| PublishError::Staging { dir: out.to_path_buf(), source })
}

/// Refuses to write the outputs of `tree` into `staging` (inside `out`) when its filesystem
/// has less free space than the uncompressed tree takes in a tar (contents plus a header per
/// entry): an estimate, not a bound, so a build fails at once with a clear message rather
/// than after filling the disk.
pub fn ensure_space(staging: &Path, out: &Path, tree: &Tree) -> Result<(), PublishError> {
    let need = tree
        .iter()
        .map(|(_, node)| match &node.kind {
            NodeKind::File(c) => 512 + c.len().div_ceil(512) * 512,
            _ => 512,
        })
        .fold(1024u64, u64::saturating_add);
    let staging_err = |source| PublishError::Staging { dir: out.to_path_buf(), source };
    let dir = File::open(staging).map_err(staging_err)?;
    let stat = nix::sys::statvfs::fstatvfs(&dir).map_err(|e| staging_err(e.into()))?;
    let available = stat.blocks_available().saturating_mul(stat.fragment_size());
    if need > available {
        return Err(PublishError::NoSpace { dir: out.to_path_buf(), need, available });
    }
    Ok(())
}

/// Moves finished outputs from the staging directory into place, each with one rename.
/// Every destination is checked before anything is moved, so a refusal leaves the output
/// directory as it was.
pub fn publish(staging: &Path, out: &Path, outputs: &[Output]) -> Result<(), PublishError> {
    let names: Vec<&str> = outputs.iter().map(|o| o.rel_path.as_str()).collect();
    publish_names(staging, out, &names)
}

/// Writes `files` (name, content) into `out` as one set: a reader sees all the previous
/// versions or all the new ones (see the module documentation).
pub fn publish_files(out: &Path, files: &[(String, &[u8])]) -> Result<(), PublishError> {
    let staging = staging_dir(out)?;
    for (name, bytes) in files {
        let path = staging.path().join(name);
        crate::atomic::write_atomic(&path, bytes)
            .map_err(|source| PublishError::Rename { path: out.join(name), source })?;
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    publish_names(staging.path(), out, &names)
}

fn publish_names(staging: &Path, out: &Path, names: &[&str]) -> Result<(), PublishError> {
    let _lock = lock_and_recover(out)?;
    for name in names {
        let to = out.join(name);
        // Only an earlier OCI layout output may be replaced; any other directory is the user's.
        if to.is_dir() && !(staging.join(name).is_dir() && to.join("oci-layout").is_file()) {
            return Err(PublishError::NotOurs { path: to });
        }
    }
    let staging_err = |source| PublishError::Staging { dir: out.to_path_buf(), source };
    let mut mark = names.join("\n");
    mark.push('\n');
    crate::atomic::write_atomic(&staging.join(COMMIT_MARK), mark.as_bytes())
        .map_err(staging_err)?;
    move_into_place(staging, out, names)?;
    // Best effort, as not every file system can sync a directory: the renames are done.
    let _ = crate::atomic::sync_dir(out);
    Ok(())
}

/// Renames each of `names` still in `staging` to `out`; names already moved are skipped, so
/// an interrupted run can be finished by running it again.
fn move_into_place(staging: &Path, out: &Path, names: &[&str]) -> Result<(), PublishError> {
    for name in names {
        let from = staging.join(name);
        if from.symlink_metadata().is_err() {
            continue;
        }
        let to = out.join(name);
        if to.is_dir() {
            // A directory cannot be replaced by one rename: move the old one aside into the
            // staging directory, which is deleted afterwards.
            let old = staging.join(format!("{name}.old"));
            if old.exists() {
                let _ = std::fs::remove_dir_all(&old);
            }
            std::fs::rename(&to, &old)
                .map_err(|source| PublishError::Replace { path: to.clone(), source })?;
        }
        std::fs::rename(&from, &to).map_err(|source| PublishError::Rename { path: to, source })?;
    }
    Ok(())
}

/// Takes the output directory's lock (none on a file system without locks), then finishes
/// the committed publishes of dead builds and removes their other staging directories.
/// Finishing is best effort: what cannot be moved stays in the staging directory for the
/// next attempt.
fn lock_and_recover(out: &Path) -> Result<Option<Flock<File>>, PublishError> {
    let staging_err = |source| PublishError::Staging { dir: out.to_path_buf(), source };
    let mut dir = File::open(out).map_err(staging_err)?;
    let lock = loop {
        match Flock::lock(dir, FlockArg::LockExclusive) {
            Ok(lock) => break Some(lock),
            Err((d, Errno::EINTR)) => dir = d,
            Err((_, Errno::ENOLCK | Errno::EOPNOTSUPP)) => break None,
            Err((_, e)) => return Err(staging_err(e.into())),
        }
    };
    let Ok(entries) = std::fs::read_dir(out) else { return Ok(lock) };
    let mut dead: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_dead_temp(p, &[STAGING_KIND]) && p.is_dir())
        .collect();
    // Oldest commit first, so a later set wins over an earlier one.
    dead.sort_by_key(|p| std::fs::metadata(p.join(COMMIT_MARK)).and_then(|m| m.modified()).ok());
    for staging in dead {
        if let Ok(mark) = std::fs::read_to_string(staging.join(COMMIT_MARK)) {
            let names: Vec<&str> = mark.lines().filter(|n| !n.is_empty()).collect();
            if move_into_place(&staging, out, &names).is_err() {
                continue;
            }
            let _ = crate::atomic::sync_dir(out);
        }
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD_PID: u32 = 2_000_000_000;

    fn dead_staging(out: &Path, tag: &str, files: &[(&str, &str)], committed: bool) -> PathBuf {
        let dir = out.join(format!("{STAGING_KIND}-{DEAD_PID}-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        if committed {
            let mark: String = files.iter().map(|(n, _)| format!("{n}\n")).collect();
            std::fs::write(dir.join(COMMIT_MARK), mark).unwrap();
        }
        dir
    }

    #[test]
    fn a_killed_publish_is_finished_and_an_uncommitted_one_dropped() {
        let out = tempfile::tempdir().unwrap();
        let o = out.path();
        // A build killed after moving `a` of {a, b}: `a` is new, `b` still old.
        std::fs::write(o.join("a"), "new a").unwrap();
        std::fs::write(o.join("b"), "old b").unwrap();
        let committed = dead_staging(o, "x", &[("b", "new b")], true);
        std::fs::write(committed.join(COMMIT_MARK), "a\nb\n").unwrap();
        let uncommitted = dead_staging(o, "y", &[("a", "half"), ("b", "half")], false);
        let live = staging_dir(o).unwrap();
        assert_eq!(std::fs::read_to_string(o.join("a")).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(o.join("b")).unwrap(), "new b");
        assert!(!committed.exists() && !uncommitted.exists());
        assert!(live.path().is_dir());
    }

    #[test]
    fn publish_files_replaces_the_set() {
        let out = tempfile::tempdir().unwrap();
        let o = out.path();
        std::fs::write(o.join("keep"), "user's").unwrap();
        publish_files(o, &[("a".into(), b"1"), ("b".into(), b"2")]).unwrap();
        publish_files(o, &[("a".into(), b"3"), ("b".into(), b"4")]).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(o)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "keep"]);
        assert_eq!(std::fs::read(o.join("a")).unwrap(), b"3");
        assert_eq!(std::fs::read(o.join("b")).unwrap(), b"4");
    }
}
