//! Atomic file replacement: a reader sees the old file or the new one, never a mix.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::store::{is_dead_temp, temp_prefix};

/// The kind of a temporary file's name: `.cairn-tmp-<pid>-<random>`.
const TEMP_KIND: &str = ".cairn-tmp";

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path` and
/// syncs the directory. The file gets mode 0644 (never use this for private keys).
/// On error nothing is left behind; the temporary files of killed processes found beside
/// `path` are removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    // The temporary file starts 0600; outputs are world-readable whatever the umask.
    let tmp = write_temp(dir, bytes, 0o644)?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Not every file system can sync a directory; the rename itself is done.
    let _ = sync_dir(dir);
    Ok(())
}

/// Like [`write_atomic`], but creates `path` with `mode` and never replaces it: an error of
/// kind `AlreadyExists` when it exists. The content is never readable under a looser mode,
/// and `path` never names a partial file.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path);
    let tmp = write_temp(dir, bytes, mode)?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    let _ = sync_dir(dir);
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A synced temporary file in `dir` (created 0600, then given `mode`) holding `bytes`.
fn write_temp(dir: &Path, bytes: &[u8], mode: u32) -> io::Result<tempfile::NamedTempFile> {
    remove_dead_temps(dir);
    let mut tmp = tempfile::Builder::new().prefix(&temp_prefix(TEMP_KIND)).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Syncs a directory, making the renames into it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Best effort: a leftover that cannot be removed must not fail the write.
fn remove_dead_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_dead_temp(&path, &[TEMP_KIND]) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn removes_temp_files_of_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!("{TEMP_KIND}-2000000000-abc"));
        let live = dir.path().join(format!("{}xyz", temp_prefix(TEMP_KIND)));
        std::fs::write(&dead, "half").unwrap();
        std::fs::write(&live, "in progress").unwrap();
        write_atomic(&dir.path().join("f"), b"x").unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
    }

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_new(&p, b"one", 0o600).unwrap();
        let e = write_new(&p, b"two", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
