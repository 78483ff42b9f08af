//! Store maintenance: garbage collection and consistency checks.
//!
//! Both walk the graph reachable from `index.json` (indexes → manifests → config and
//! layers) and look at the cache entries (see `cache`), whose blobs count as referenced. `gc` refuses to run when that walk finds a problem, because a missing or broken
//! manifest hides which layers are still needed; `fsck` reports every problem it finds.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use super::cache::CacheGc;
use super::{
    MAX_JSON_BLOB, STALE_TEMP_AGE, Store, StoreError, TEMP_KINDS, is_dead_temp, temp_owner, walk,
};
use crate::digest::{Digest, HashingReader};

/// What [`Store::gc`] removed (or would remove, with `dry_run`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub dry_run: bool,
    /// Unreachable blobs, sorted.
    pub removed: Vec<Digest>,
    /// Bytes in those blobs.
    pub freed_bytes: u64,
    /// Stale temporary files and staging directories.
    pub removed_temp: Vec<PathBuf>,
    /// Blobs still referenced (by an image or a cache entry).
    pub kept: usize,
    /// Cache entries dropped: unused for too long, broken, or all of them (see
    /// [`CacheGc`]).
    pub dropped_cache_entries: usize,
}

/// What [`Store::fsck`] found. [`FsckReport::is_ok`] tells whether the store is sound.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// Blob files checked.
    pub checked: usize,
    /// Blobs whose content does not hash to their name: (name, actual digest).
    pub corrupt: Vec<(Digest, Digest)>,
    /// Blobs referenced from `index.json` (directly or not) that are absent.
    pub missing: Vec<Digest>,
    /// Other problems: unparsable manifests, size mismatches, unsupported media types,
    /// files in `blobs/sha256` that are not named by a digest.
    pub problems: Vec<String>,
    /// Temporary files and staging directories left by killed processes, sorted. Garbage
    /// that `gc` removes, not damage: they do not make the store unsound.
    pub leftovers: Vec<PathBuf>,
    /// Cache entries checked.
    pub cache_entries: usize,
}

impl FsckReport {
    pub fn is_ok(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.problems.is_empty()
    }
}

impl Store {
    /// Lists the blob files: (digest, size) pairs, and paths not named by a digest.
    #[allow(clippy::type_complexity)]
    fn list_blobs(&self) -> Result<(Vec<(Digest, u64)>, Vec<PathBuf>), StoreError> {
        let dir = self.blob_dir();
        let mut blobs = Vec::new();
        let mut strays = Vec::new();
        for entry in fs::read_dir(&dir).map_err(StoreError::io("list", &dir))? {
            let entry = entry.map_err(StoreError::io("list", &dir))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Collected by a concurrent `gc` since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("stat", &path)(e)),
            };
            match entry.file_name().to_str().and_then(Digest::from_hex) {
                Some(d) if meta.is_file() => blobs.push((d, meta.len())),
                _ => strays.push(path),
            }
        }
        blobs.sort();
        strays.sort();
        Ok((blobs, strays))
    }

    fn walk_store(&self) -> Result<super::Walk, StoreError> {
        let index = self.read_index()?;
        Ok(walk(
            index.manifests(),
            |d| fs::metadata(self.blob_path(d)).ok().filter(|m| m.is_file()).map(|m| m.len()),
            |d| self.read_blob(d, MAX_JSON_BLOB),
        ))
    }

    /// Entries of `.tmp` nobody is writing any more: those whose creating process is gone,
    /// and those without an owner in their name (older versions) older than an hour.
    fn leftover_temps(&self) -> Vec<PathBuf> {
        let now = SystemTime::now();
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return Vec::new() };
        let mut stale: Vec<PathBuf> = entries
            .flatten()
            .filter(|entry| {
                let path = entry.path();
                if is_dead_temp(&path, TEMP_KINDS) {
                    return true;
                }
                let owned = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| TEMP_KINDS.iter().any(|k| temp_owner(n, k).is_some()));
                !owned
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age >= STALE_TEMP_AGE)
            })
            .map(|entry| entry.path())
            .collect();
        stale.sort();
        stale
    }

    /// [`Store::gc_with`] keeping recently used cache entries.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport, StoreError> {
        self.gc_with(dry_run, CacheGc::KeepRecent)
    }

    /// Deletes blobs not reachable from `index.json` or a kept cache entry, and leftover
    /// temporary files (see `leftover_temps`); drops cache entries as `cache` says. Refuses
    /// (and deletes nothing) when a reachable manifest or index is missing or broken. Runs
    /// under the store's lock, so an import naming its blobs, or a build filing its cached
    /// outputs, is never caught between moving them into place and naming them.
    pub fn gc_with(&self, dry_run: bool, cache: CacheGc) -> Result<GcReport, StoreError> {
        let lock = self.lock()?;
        let w = self.walk_store()?;
        if !w.missing.is_empty() || !w.problems.is_empty() {
            let mut reasons: Vec<String> =
                w.missing.iter().map(|d| format!("blob {d} is referenced but missing")).collect();
            reasons.extend(w.problems);
            return Err(StoreError::invalid(
                format!("store {}", self.root.display()),
                format!(
                    "garbage collection needs an intact store; run `cairn store fsck`: {}",
                    reasons.join("; ")
                ),
            ));
        }
        let (cached, dropped) = self.gc_cache(cache, dry_run, &lock)?;
        let mut report =
            GcReport { dry_run, dropped_cache_entries: dropped, ..GcReport::default() };
        let (blobs, _) = self.list_blobs()?;
        for (d, size) in blobs {
            if w.reachable.contains_key(&d) || cached.contains(&d) {
                report.kept += 1;
                continue;
            }
            if !dry_run {
                let path = self.blob_path(&d);
                fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
            }
            report.removed.push(d);
            report.freed_bytes += size;
        }
        for path in self.leftover_temps() {
            if !dry_run {
                let r =
                    if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                match r {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io("remove", &path)(e)),
                }
            }
            report.removed_temp.push(path);
        }
        Ok(report)
    }

    /// Rehashes every blob and checks that everything reachable from `index.json` exists,
    /// has the size its descriptor claims, and parses. Safe beside concurrent imports and
    /// `gc`: a blob collected while being checked was unreachable, not missing.
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let mut report = FsckReport::default();
        let (blobs, strays) = self.list_blobs()?;
        let mut corrupt = BTreeSet::new();
        for (d, _) in &blobs {
            let path = self.blob_path(d);
            let file = match fs::File::open(&path) {
                Ok(f) => f,
                // Collected by a concurrent `gc`: no longer reachable, so not a problem (the
                // walk below reports a reachable blob that is missing).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("open", &path)(e)),
            };
            let mut r = HashingReader::new(file);
            io::copy(&mut r, &mut io::sink()).map_err(StoreError::io("read", &path))?;
            let (actual, _) = r.finish();
            report.checked += 1;
            if actual != *d {
                report.corrupt.push((*d, actual));
                corrupt.insert(*d);
            }
        }
        report.problems.extend(
            strays.iter().map(|p| format!("{} is not named by a sha256 digest", p.display())),
        );
        // Under the lock, so that a concurrent re-tag and `gc` cannot remove blobs of an
        // image between reading the index and walking it (which would look missing). A
        // store that cannot be locked (read-only) has no concurrent writer to fear.
        let lock = self.lock().ok();
        let w = self.walk_store()?;
        drop(lock);
        report.missing = w.missing.into_iter().collect();
        // A corrupt reachable JSON blob is already listed under `corrupt`.
        report.problems.extend(w.problems.into_iter().filter(|p| !p.contains("is corrupt")));
        report.leftovers = self.leftover_temps();
        let (entries, problems) = self.fsck_cache()?;
        report.cache_entries = entries;
        report.problems.extend(problems);
        Ok(report)
    }
}
