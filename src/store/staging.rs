//! The staging area of an import: blobs written into a private directory of the store and
//! moved into `blobs/` all together once the import has been verified.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use super::{
    BlobReader, BlobWriter, Store, StoreError, StoreLock, TEMP_IMPORT, open_blob_at, read_blob_at,
    sync_dir, temp_prefix,
};
use crate::digest::Digest;

/// Blobs written into a private directory inside the store and moved into `blobs/` only by
/// [`Staging::commit`]. Dropped without commit (an import that failed), the directory and
/// everything in it is removed: nothing partial reaches the store.
pub(crate) struct Staging<'a> {
    store: &'a Store,
    pub(crate) dir: tempfile::TempDir,
}

impl<'a> Staging<'a> {
    pub(crate) fn new(store: &'a Store) -> Result<Staging<'a>, StoreError> {
        let tmp = store.tmp_dir();
        fs::create_dir_all(&tmp).map_err(StoreError::io("create directory", &tmp))?;
        let dir = tempfile::Builder::new()
            .prefix(&temp_prefix(TEMP_IMPORT))
            .tempdir_in(&tmp)
            .map_err(StoreError::io("create a staging directory in", &tmp))?;
        Ok(Staging { store, dir })
    }

    pub(crate) fn writer(&self) -> Result<BlobWriter, StoreError> {
        BlobWriter::new(self.dir.path(), self.dir.path().to_path_buf())
    }

    /// Where a blob is: staged, or already in the store.
    fn path(&self, d: &Digest) -> Option<PathBuf> {
        let staged = self.dir.path().join(d.hex());
        if staged.is_file() {
            return Some(staged);
        }
        let stored = self.store.blob_path(d);
        stored.is_file().then_some(stored)
    }

    pub(crate) fn size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.path(d)?).ok().map(|m| m.len())
    }

    pub(crate) fn open(&self, d: &Digest) -> Result<BlobReader, StoreError> {
        let path = self.path(d).unwrap_or_else(|| self.store.blob_path(d));
        open_blob_at(&path, d, &self.store.root)
    }

    pub(crate) fn read(&self, d: &Digest, max_len: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.path(d).unwrap_or_else(|| self.store.blob_path(d));
        read_blob_at(&path, d, max_len, &self.store.root)
    }

    /// Moves the staged blobs among `keep` into the store (each rename is atomic; blobs the
    /// store already has are left alone). Fails if one of them is neither staged nor stored.
    /// Returns the store's lock, taken before the first move: hold it until the blobs are
    /// named, or a concurrent `gc` would see them unreachable and delete them.
    pub(crate) fn commit(self, keep: &BTreeSet<Digest>) -> Result<StoreLock, StoreError> {
        let lock = self.store.lock()?;
        let blob_dir = self.store.blob_dir();
        for d in keep {
            let target = blob_dir.join(d.hex());
            if target.is_file() {
                continue;
            }
            let staged = self.dir.path().join(d.hex());
            if !staged.is_file() {
                return Err(StoreError::NotFound {
                    what: format!("blob {d}"),
                    root: self.store.root.clone(),
                });
            }
            fs::rename(&staged, &target).map_err(StoreError::io("move staged blob to", &target))?;
        }
        sync_dir(&blob_dir);
        Ok(lock)
    }
}
