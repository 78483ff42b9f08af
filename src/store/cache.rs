//! The store's index of cached build outputs (see `crate::build::cache` for what is cached
//! and when it is reused).
//!
//! Layout: `<root>/cache/<key hex>.json`, one entry per build key. An entry lists the
//! outputs of one build and every file they consist of (an OCI layout output is a
//! directory of files) by sha256 and size; the files' contents are ordinary blobs in
//! `blobs/sha256/`, so they are deduplicated with everything else, rehashed by `fsck`, and
//! kept by `gc` only while a live entry refers to them.
//!
//! An entry is written (atomically, under the store lock) only after all its blobs are in
//! place, so a reader never finds an entry whose blobs were not written. `gc` drops entries
//! not used for [`CACHE_MAX_AGE`], entries that are broken, and (`--drop-cache`) all of
//! them; a dropped entry's blobs are then unreferenced and removed like any other.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreLock};
use crate::digest::Digest;

/// The version of the entry format and of the key's contents; an entry of another schema
/// is never used (and `gc` drops it).
pub const CACHE_SCHEMA: u32 = 1;

/// `gc` drops entries that no build wrote or reused for this long.
pub const CACHE_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

const CACHE_DIR: &str = "cache";

/// Largest entry file read.
const MAX_ENTRY: u64 = 4 * 1024 * 1024;

/// One cached build: its outputs and the files they are made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheEntry {
    pub schema: u32,
    /// The key the entry is filed under.
    pub key: Digest,
    /// The build's outputs as it reported them, in order.
    pub outputs: Vec<CachedOutput>,
    /// Directories to create, relative to the output directory, parents first.
    pub dirs: Vec<String>,
    /// Every file of the outputs, relative to the output directory.
    pub files: Vec<CachedFile>,
}

/// An output as the build reports it (for an OCI layout: the manifest's digest and size).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CachedOutput {
    pub rel_path: String,
    pub digest: Digest,
    pub size: u64,
}

/// One file of the outputs: its content is the blob `digest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CachedFile {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    /// Permission bits (0o644 or 0o755).
    pub mode: u32,
}

impl CacheEntry {
    /// Why the entry cannot be used as it stands, if it cannot: another schema, another
    /// key, a path that is not a plain relative path, a mode other than 0o644/0o755.
    pub fn defect(&self, key: &Digest) -> Option<String> {
        if self.schema != CACHE_SCHEMA {
            return Some(format!("schema {} (this cairn uses {CACHE_SCHEMA})", self.schema));
        }
        if self.key != *key {
            return Some(format!("it is filed under {key} but names {}", self.key));
        }
        let paths = self.dirs.iter().chain(self.files.iter().map(|f| &f.path));
        if let Some(p) = paths.chain(self.outputs.iter().map(|o| &o.rel_path)).find(|p| !plain(p)) {
            return Some(format!("path {p:?} is not a plain relative path"));
        }
        if let Some(f) = self.files.iter().find(|f| f.mode != 0o644 && f.mode != 0o755) {
            return Some(format!("{}: mode {:o}", f.path, f.mode));
        }
        None
    }

    fn blobs(&self) -> impl Iterator<Item = &Digest> {
        self.files.iter().map(|f| &f.digest)
    }
}

/// A relative path of normal components only.
fn plain(p: &str) -> bool {
    !p.is_empty() && Path::new(p).components().all(|c| matches!(c, Component::Normal(_)))
}

/// What `gc` does with cache entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheGc {
    /// Keep entries used within [`CACHE_MAX_AGE`] whose blobs are all present.
    KeepRecent,
    /// Drop every entry.
    DropAll,
}

/// One entry file as `gc` and `fsck` see it.
pub(super) struct ListedEntry {
    pub path: PathBuf,
    /// The entry, or why it cannot be read.
    pub entry: Result<CacheEntry, String>,
    pub age: Duration,
}

impl Store {
    fn cache_dir(&self) -> PathBuf {
        self.root.join(CACHE_DIR)
    }

    fn cache_entry_path(&self, key: &Digest) -> PathBuf {
        self.cache_dir().join(format!("{}.json", key.hex()))
    }

    /// The entry filed under `key`: `Ok(None)` when there is none; an error when it cannot
    /// be read or used (see [`CacheEntry::defect`]).
    pub fn cache_entry(&self, key: &Digest) -> Result<Option<CacheEntry>, StoreError> {
        let path = self.cache_entry_path(key);
        let bytes = match read_entry_file(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read cache entry", &path)(e)),
        };
        let what = || format!("cache entry {}", path.display());
        let entry: CacheEntry = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::invalid(what(), e.to_string()))?;
        match entry.defect(key) {
            Some(reason) => Err(StoreError::invalid(what(), reason)),
            None => Ok(Some(entry)),
        }
    }

    /// Files `entry` under its key, replacing any entry there. Every blob it names must
    /// be in the store: the caller puts them first and holds the lock, so `gc` cannot
    /// remove them in between.
    pub fn put_cache_entry(&self, entry: &CacheEntry, _lock: &StoreLock) -> Result<(), StoreError> {
        if let Some(reason) = entry.defect(&entry.key) {
            return Err(StoreError::invalid("cache entry", reason));
        }
        if let Some(d) = entry.blobs().find(|d| !self.has_blob(d)) {
            return Err(StoreError::NotFound {
                what: format!("blob {d} of a cache entry"),
                root: self.root.clone(),
            });
        }
        let dir = self.cache_dir();
        fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        let mut bytes = serde_json::to_vec_pretty(entry)
            .map_err(|e| StoreError::invalid("cache entry", e.to_string()))?;
        bytes.push(b'\n');
        self.write_atomic(&format!("{CACHE_DIR}/{}.json", entry.key.hex()), &bytes)
    }

    /// Marks the entry as used now, so `gc` keeps it. Best effort.
    pub fn touch_cache_entry(&self, key: &Digest) {
        if let Ok(f) = fs::File::options().write(true).open(self.cache_entry_path(key)) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Removes the entry filed under `key`, if any.
    pub fn remove_cache_entry(&self, key: &Digest, _lock: &StoreLock) -> Result<(), StoreError> {
        let path = self.cache_entry_path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StoreError::io("remove cache entry", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every file in `cache/`, sorted, with its entry or why it cannot be used.
    pub(super) fn cache_entries(&self) -> Result<Vec<ListedEntry>, StoreError> {
        let dir = self.cache_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("list", &dir)(e)),
        };
        let now = SystemTime::now();
        let mut listed = Vec::new();
        for e in entries {
            let e = e.map_err(StoreError::io("list", &dir))?;
            let path = e.path();
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            let key = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(Digest::from_hex);
            let entry = match key {
                None => Err("it is not named <sha256 hex>.json".to_string()),
                Some(key) => read_entry_file(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<CacheEntry>(&b).map_err(|e| e.to_string())
                    })
                    .and_then(|entry| match entry.defect(&key) {
                        Some(reason) => Err(reason),
                        None => Ok(entry),
                    }),
            };
            listed.push(ListedEntry { path, entry, age });
        }
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listed)
    }

    /// Under the lock: drops the entries `policy` says go, and returns the blobs the
    /// remaining ones keep alive and how many entries were dropped.
    pub(super) fn gc_cache(
        &self,
        policy: CacheGc,
        dry_run: bool,
        _lock: &StoreLock,
    ) -> Result<(BTreeSet<Digest>, usize), StoreError> {
        let mut keep = BTreeSet::new();
        let mut dropped = 0;
        for listed in self.cache_entries()? {
            let live = match &listed.entry {
                Ok(entry) => {
                    policy == CacheGc::KeepRecent
                        && listed.age < CACHE_MAX_AGE
                        && entry.blobs().all(|d| self.has_blob(d))
                }
                Err(_) => false,
            };
            match (&listed.entry, live) {
                (Ok(entry), true) => keep.extend(entry.blobs().copied()),
                _ => {
                    dropped += 1;
                    if !dry_run {
                        match fs::remove_file(&listed.path) {
                            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                                return Err(StoreError::io("remove cache entry", &listed.path)(e));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok((keep, dropped))
    }

    /// `fsck`'s findings about the cache: entries that cannot be read or name missing blobs.
    pub(super) fn fsck_cache(&self) -> Result<(usize, Vec<String>), StoreError> {
        let mut problems = Vec::new();
        let listed = self.cache_entries()?;
        for l in &listed {
            let name = l.path.display();
            match &l.entry {
                Err(reason) if reason.starts_with("schema ") => {} // an older cairn's: gc drops it
                Err(reason) => problems.push(format!(
                    "cache entry {name} is unusable ({reason}); `cairn store gc` drops it"
                )),
                Ok(entry) => {
                    for f in entry.files.iter().filter(|f| !self.has_blob(&f.digest)) {
                        problems.push(format!(
                            "cache entry {name}: blob {} of {} is missing; `cairn store gc` drops the entry",
                            f.digest, f.path
                        ));
                    }
                }
            }
        }
        Ok((listed.len(), problems))
    }
}

fn read_entry_file(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(path)?.take(MAX_ENTRY + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ENTRY {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the entry is too large"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        (dir, store)
    }

    fn entry(store: &Store, files: &[(&str, &[u8])]) -> CacheEntry {
        let files = files
            .iter()
            .map(|(path, bytes)| CachedFile {
                path: path.to_string(),
                digest: store.put_bytes(bytes).unwrap(),
                size: bytes.len() as u64,
                mode: 0o644,
            })
            .collect::<Vec<_>>();
        CacheEntry {
            schema: CACHE_SCHEMA,
            key: Digest::of(b"key"),
            outputs: files
                .iter()
                .map(|f| CachedOutput { rel_path: f.path.clone(), digest: f.digest, size: f.size })
                .collect(),
            dirs: Vec::new(),
            files,
        }
    }

    #[test]
    fn entries_round_trip_and_defects_are_refused() {
        let (_d, store) = new_store();
        let key = Digest::of(b"key");
        assert_eq!(store.cache_entry(&key).unwrap(), None);
        let e = entry(&store, &[("x.tar", b"tar")]);
        store.put_cache_entry(&e, &store.lock().unwrap()).unwrap();
        assert_eq!(store.cache_entry(&key).unwrap(), Some(e.clone()));
        assert_eq!(store.cache_entry(&Digest::of(b"other")).unwrap(), None);

        for (what, bad) in [
            ("parent", CacheEntry { dirs: vec!["../up".into()], ..e.clone() }),
            ("absolute", CacheEntry { dirs: vec!["/etc".into()], ..e.clone() }),
            ("empty", CacheEntry { dirs: vec![String::new()], ..e.clone() }),
            ("schema", CacheEntry { schema: CACHE_SCHEMA + 1, ..e.clone() }),
            ("key", CacheEntry { key: Digest::of(b"other"), ..e.clone() }),
        ] {
            assert!(bad.defect(&key).is_some(), "{what}");
        }
        let mut setuid = e.clone();
        setuid.files[0].mode = 0o4755;
        assert!(setuid.defect(&key).is_some());
        // An entry naming a blob the store lacks is not filed.
        let mut missing = e.clone();
        missing.files[0].digest = Digest::of(b"absent");
        assert!(store.put_cache_entry(&missing, &store.lock().unwrap()).is_err());
    }

    #[test]
    fn gc_keeps_the_blobs_of_live_entries_only() {
        let (_d, store) = new_store();
        let e = entry(&store, &[("a", b"first"), ("b", b"second")]);
        store.put_cache_entry(&e, &store.lock().unwrap()).unwrap();
        let loose = store.put_bytes(b"loose").unwrap();
        let report = store.gc(false).unwrap();
        assert_eq!(report.removed, vec![loose]);
        assert_eq!(report.dropped_cache_entries, 0);
        let fsck = store.fsck().unwrap();
        assert!(fsck.is_ok(), "{fsck:?}");
        assert_eq!(fsck.cache_entries, 1);

        // A missing blob: fsck reports the entry, gc drops it and the other blob.
        fs::remove_file(store.blob_path(&e.files[0].digest)).unwrap();
        assert!(!store.fsck().unwrap().is_ok());
        let report = store.gc(false).unwrap();
        assert_eq!(report.dropped_cache_entries, 1);
        assert_eq!(report.removed, vec![e.files[1].digest]);
        assert!(store.fsck().unwrap().is_ok());

        // --drop-cache drops a sound, fresh entry.
        let e = entry(&store, &[("a", b"again")]);
        store.put_cache_entry(&e, &store.lock().unwrap()).unwrap();
        assert_eq!(store.gc_with(true, CacheGc::DropAll).unwrap().dropped_cache_entries, 1);
        assert!(store.cache_entry(&e.key).unwrap().is_some(), "a dry run dropped it");
        store.gc_with(false, CacheGc::DropAll).unwrap();
        assert_eq!(store.cache_entry(&e.key).unwrap(), None);
        assert!(!store.has_blob(&e.files[0].digest));
    }
}
