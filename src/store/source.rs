//! Where a blob the store lacks comes from: the seam for a second source of blobs.
//!
//! Today every blob arrives through `cairn import`, so the only source is [`Offline`],
//! which has nothing to give. A registry client implements [`BlobSource`] next; the store
//! still hashes every byte it is given, so a source is trusted for nothing.

use std::io::Write;

use crate::digest::Digest;

use super::{Store, StoreError};

/// Something that can produce a blob by its digest (a registry, another store).
pub trait BlobSource {
    /// Writes the blob `digest` of `size` bytes into `into`. The store verifies the digest
    /// and size afterwards; an error here leaves nothing in the store.
    fn fetch_blob(
        &self,
        digest: &Digest,
        size: u64,
        into: &mut dyn Write,
    ) -> Result<(), StoreError>;
}

/// No source beyond the store itself: a missing blob stays missing (an offline build).
pub struct Offline;

impl BlobSource for Offline {
    fn fetch_blob(&self, digest: &Digest, _: u64, _: &mut dyn Write) -> Result<(), StoreError> {
        Err(StoreError::Unsupported {
            what: format!("blob {digest}"),
            reason: "it is not in the store and no source to fetch it from is configured".into(),
        })
    }
}

impl Store {
    /// Makes sure the blob `digest` of `size` bytes is in the store, fetching it from
    /// `source` when it is missing. A blob already present is not fetched again.
    pub fn fill_blob(
        &self,
        digest: &Digest,
        size: u64,
        source: &dyn BlobSource,
    ) -> Result<(), StoreError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut w = self.blob_writer()?;
        source.fetch_blob(digest, size, &mut w)?;
        let what = format!("blob {digest} from its source");
        let (_, got) = w.finish(Some(digest), &what)?;
        if got != size {
            // The digest matched, so the announced size was wrong; the blob is still sound.
            return Err(StoreError::invalid(what, format!("expected {size} bytes, got {got}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(&'static [u8]);
    impl BlobSource for Bytes {
        fn fetch_blob(&self, _: &Digest, _: u64, into: &mut dyn Write) -> Result<(), StoreError> {
            into.write_all(self.0).map_err(|e| StoreError::invalid("test", e.to_string()))
        }
    }

    #[test]
    fn fills_a_missing_blob_and_checks_it() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let good = Digest::of(b"hello");
        assert!(store.fill_blob(&good, 5, &Offline).is_err());
        store.fill_blob(&good, 5, &Bytes(b"hello")).unwrap();
        assert_eq!(store.read_blob(&good, 5).unwrap(), b"hello");
        // Present now: the source is not asked again.
        store.fill_blob(&good, 5, &Offline).unwrap();
        let other = Digest::of(b"other");
        assert!(matches!(
            store.fill_blob(&other, 5, &Bytes(b"lies!")),
            Err(StoreError::Mismatch { .. })
        ));
        assert!(!store.has_blob(&other));
    }
}
