//! The content-addressed blob store: an OCI image layout on disk.
//!
//! Layout of `root`:
//! - `oci-layout`: `{"imageLayoutVersion":"1.0.0"}`
//! - `index.json`: an OCI image index; every entry carries the annotation
//!   `org.opencontainers.image.ref.name` with the full normalized name (`registry/repo:tag`).
//! - `blobs/sha256/<hex>`: the blobs, each named by the SHA-256 of its content.
//! - `.tmp/`: temporary files and import staging directories (removed by [`Store::gc`]).
//! - `cache/<key>.json`: cached build outputs, whose files are blobs (see `cache`).
//!
//! Every write is verified and atomic: content is streamed to a temporary file inside the
//! store while it is hashed, fsynced and renamed into place, so a blob file either is complete
//! and matches its name or does not exist. Every read is verified too: [`BlobReader`] rehashes
//! the content and fails at end of file when it does not match its name, and
//! [`Store::read_blob`] checks the digest before returning the bytes.
//!
//! Concurrency: blob writes from several processes are safe (same content, atomic renames).
//! `index.json` updates, an import's move of its blobs into `blobs/` and naming them, and
//! `gc` run under the store's lock (see `lock`), so concurrent writers lose nothing.
//! Temporary names carry their creator's PID so that leftovers of killed processes are
//! found by `fsck` and removed by `gc`.
//!
//! Reading images ([`Store::resolve_image`]) accepts the OCI and Docker v2 media types;
//! importing images from files is in [`import`].
//!
//! This file holds the store itself and its verified blob I/O. Naming images (`index.json`,
//! tags and resolving an image for a platform) is in `index`, the store's rules for media
//! types and descriptors (defined in [`crate::oci`]) in `media`, the walk of everything reachable from the index in `walk`, and the staging
//! area imports write into in `staging`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::digest::{Digest, Hasher};

mod cache;
pub mod deb;
mod fsck;
pub mod import;
mod index;
mod lock;
mod media;
mod staging;
mod walk;

pub use crate::canonical_json::to_vec as canonical_json;
pub use crate::oci::Compression;
pub use cache::{CACHE_MAX_AGE, CACHE_SCHEMA, CacheEntry, CacheGc, CachedFile, CachedOutput};
pub use fsck::{FsckReport, GcReport};
pub use index::{Layer, ResolvedImage};
pub use lock::StoreLock;
pub(crate) use lock::{is_dead_temp, temp_owner, temp_prefix};
pub(crate) use media::{check_size, classify};
pub use media::{desc_digest, make_descriptor};
pub(crate) use staging::Staging;
pub(crate) use walk::{Walk, walk};

/// Largest manifest, index or image config the store reads into memory.
pub const MAX_JSON_BLOB: u64 = 4 * 1024 * 1024;

/// Temporary files older than this are removed by [`Store::gc`]; younger ones may belong to a
/// concurrent writer.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

const TMP_DIR: &str = ".tmp";

/// Kinds of temporary names in `.tmp` (see [`temp_prefix`]).
const TEMP_WRITE: &str = "write";
const TEMP_BLOB: &str = "blob";
const TEMP_IMPORT: &str = "import";
const TEMP_KINDS: &[&str] = &[TEMP_WRITE, TEMP_BLOB, TEMP_IMPORT];

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A reference or blob is not in the store.
    #[error("{what} is not in the store {root} (add it with `cairn import`)")]
    NotFound { what: String, root: PathBuf },
    /// A blob on disk does not hash to its name.
    #[error(
        "blob {digest} is corrupt: its content hashes to {actual} ({path}); run `cairn store fsck`"
    )]
    Corrupt { digest: Digest, actual: Digest, path: PathBuf },
    /// Content offered to the store does not match the digest it was announced with.
    #[error("{what}: expected digest {expected} but the content hashes to {actual}")]
    Mismatch { what: String, expected: Digest, actual: Digest },
    /// A blob or file has content the store cannot accept (bad JSON, wrong size, too large…).
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// Well-formed content the store does not handle (media type, platform…).
    #[error("unsupported {what}: {reason}")]
    Unsupported { what: String, reason: String },
    /// The file system failed.
    #[error(transparent)]
    Io(#[from] FsError),
}

/// A file-system call that failed: what it was doing, on which path, and why. Shared by
/// the store's and the import's errors.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io(FsError { action, path, source })
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid { what: what.into(), reason: reason.into() }
    }
}

/// Parses an index, manifest or config blob of `media_type` the way the store's walks (gc,
/// fsck, imports) do and returns the descriptors it refers to. Public for the fuzz targets.
#[doc(hidden)]
pub fn blob_children(
    bytes: &[u8],
    media_type: &str,
) -> Result<Vec<oci_spec::image::Descriptor>, StoreError> {
    walk::children(bytes, classify(media_type)?, &Digest::of(bytes))
}

/// The handle on a store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating the layout if the directory is missing or empty.
    /// A non-empty directory without `oci-layout`, or with an `oci-layout` this store does
    /// not understand, is refused.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(root).map_err(StoreError::io("create store directory", root))?;
        let layout = root.join("oci-layout");
        match fs::read(&layout) {
            Ok(bytes) => {
                #[derive(serde::Deserialize)]
                struct Layout {
                    #[serde(rename = "imageLayoutVersion")]
                    version: String,
                }
                let parsed: Layout = serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::invalid(
                        format!("store layout file {}", layout.display()),
                        e.to_string(),
                    )
                })?;
                if parsed.version != "1.0.0" {
                    return Err(StoreError::Unsupported {
                        what: format!("store layout file {}", layout.display()),
                        reason: format!(
                            "imageLayoutVersion {:?} (only 1.0.0 is known)",
                            parsed.version
                        ),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // `.tmp` alone is what an interrupted first open leaves behind.
                let foreign = fs::read_dir(root)
                    .map_err(StoreError::io("list", root))?
                    .filter_map(Result::ok)
                    .any(|e| e.file_name() != TMP_DIR);
                // A concurrent first open may have made the layout since we looked: check it.
                if foreign && layout.exists() {
                    return Store::open(root);
                }
                if foreign {
                    return Err(StoreError::invalid(
                        format!("store directory {}", root.display()),
                        "it is not empty and has no oci-layout file; refusing to turn it into a store",
                    ));
                }
            }
            Err(e) => return Err(StoreError::io("read", &layout)(e)),
        }
        let store = Store { root: root.to_path_buf() };
        // oci-layout first: once it exists, the directory is recognizably a store.
        if !layout.exists() {
            store.write_atomic("oci-layout", crate::oci::LAYOUT_FILE.as_bytes())?;
        }
        for dir in [store.blob_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        }
        if !store.root.join("index.json").exists() {
            // Under the lock, or a concurrent first open could empty an index just written.
            let _lock = store.lock()?;
            if !store.root.join("index.json").exists() {
                store.write_index(&[])?;
            }
        }
        Ok(store)
    }

    /// `$CAIRN_STORE` when set and not empty, else `<cache dir>/cairn/store`.
    pub fn default_root() -> Option<PathBuf> {
        match std::env::var_os("CAIRN_STORE") {
            Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
            _ => dirs::cache_dir().map(|d| d.join("cairn").join("store")),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    /// The file a blob lives in (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blob_dir().join(d.hex())
    }

    /// Streams `r` into the store. Returns its digest and size. With `expected`, content that
    /// hashes differently is an error and leaves nothing behind. A blob already present is not
    /// rewritten.
    pub fn put_blob(
        &self,
        mut r: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let mut w = BlobWriter::new(&self.tmp_dir(), self.blob_dir())?;
        let tmp_path = w.file.path().to_path_buf();
        io::copy(&mut r, &mut w).map_err(StoreError::io("write blob from input to", &tmp_path))?;
        w.finish(expected, "blob")
    }

    /// Stores a byte slice and returns its digest.
    pub fn put_bytes(&self, b: &[u8]) -> Result<Digest, StoreError> {
        Ok(self.put_blob(b, None)?.0)
    }

    /// A writer into the store: write the content, then [`BlobWriter::finish`].
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        BlobWriter::new(&self.tmp_dir(), self.blob_dir())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a blob for a verified streaming read.
    pub fn open_blob(&self, d: &Digest) -> Result<BlobReader, StoreError> {
        open_blob_at(&self.blob_path(d), d, &self.root)
    }

    /// Reads a whole blob of at most `max_len` bytes and verifies it.
    pub fn read_blob(&self, d: &Digest, max_len: u64) -> Result<Vec<u8>, StoreError> {
        read_blob_at(&self.blob_path(d), d, max_len, &self.root)
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        fs::create_dir_all(&tmp).map_err(StoreError::io("create directory", &tmp))?;
        let mut f = tempfile::Builder::new()
            .prefix(&temp_prefix(TEMP_WRITE))
            .tempfile_in(&tmp)
            .map_err(StoreError::io("create a temporary file in", &tmp))?;
        let target = self.root.join(name);
        f.write_all(bytes).map_err(StoreError::io("write", f.path()))?;
        f.as_file().sync_all().map_err(StoreError::io("sync", f.path()))?;
        f.persist(&target).map_err(|e| StoreError::io("replace", &target)(e.error))?;
        sync_dir(&self.root);
        Ok(())
    }

    fn blob_size(&self, d: &Digest) -> Result<u64, StoreError> {
        let path = self.blob_path(d);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(StoreError::invalid(path.display().to_string(), "not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound { what: format!("blob {d}"), root: self.root.clone() })
            }
            Err(e) => Err(StoreError::io("stat", &path)(e)),
        }
    }
}

/// Writes one blob: hashes while writing to a temporary file, then renames into place.
/// Dropped without [`BlobWriter::finish`], it leaves nothing behind.
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Hasher,
    target_dir: PathBuf,
}

impl BlobWriter {
    pub(crate) fn new(tmp_dir: &Path, target_dir: PathBuf) -> Result<BlobWriter, StoreError> {
        fs::create_dir_all(tmp_dir).map_err(StoreError::io("create directory", tmp_dir))?;
        let file = tempfile::Builder::new()
            .prefix(&temp_prefix(TEMP_BLOB))
            .tempfile_in(tmp_dir)
            .map_err(StoreError::io("create a temporary file in", tmp_dir))?;
        Ok(BlobWriter { file, hasher: Hasher::new(), target_dir })
    }

    /// The temporary file the blob is written to (for error messages).
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    /// Verifies against `expected` (if any), syncs and renames the blob into place.
    /// `what` names the content in a mismatch error.
    pub fn finish(
        self,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64), StoreError> {
        let size = self.hasher.len();
        let digest = self.hasher.finish();
        if let Some(e) = expected
            && *e != digest
        {
            return Err(StoreError::Mismatch {
                what: what.to_string(),
                expected: *e,
                actual: digest,
            });
        }
        let target = self.target_dir.join(digest.hex());
        if target.is_file() {
            return Ok((digest, size));
        }
        self.file.as_file().sync_all().map_err(StoreError::io("sync", self.file.path()))?;
        self.file
            .persist(&target)
            .map_err(|e| StoreError::io("rename blob into", &target)(e.error))?;
        sync_dir(&self.target_dir);
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Why [`copy_bounded`] stopped before the end of its input.
pub(crate) enum BoundedCopyError {
    Read(io::Error),
    Write(io::Error),
    /// The input holds more than the limit.
    Limit,
}

/// Copies `r` to `w` and returns the byte count, refusing more than `limit` bytes: the
/// guard against decompression bombs that `.deb` members and imported blobs share.
pub(crate) fn copy_bounded(
    mut r: impl Read,
    w: &mut dyn Write,
    limit: u64,
) -> Result<u64, BoundedCopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BoundedCopyError::Read(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(BoundedCopyError::Limit);
        }
        w.write_all(buf.get(..n).unwrap_or_default()).map_err(BoundedCopyError::Write)?;
    }
}

/// A verified streaming read of one blob. At end of file, content that does not hash to the
/// blob's name is an `InvalidData` error naming the blob. Consumers that stop early (a tar
/// reader stops at the end-of-archive marker) call [`BlobReader::finish`] to check the rest.
pub struct BlobReader {
    file: File,
    state: ReadState,
    digest: Digest,
    size: u64,
    path: PathBuf,
}

enum ReadState {
    Reading(Hasher),
    Verified,
    Corrupt(String),
}

impl BlobReader {
    /// The size of the blob file when it was opened.
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    /// Reads what is left and verifies the whole blob.
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let hasher = match &mut self.state {
            ReadState::Reading(h) => h,
            ReadState::Verified => return Ok(0),
            ReadState::Corrupt(msg) => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg.clone()));
            }
        };
        let n = self.file.read(buf)?;
        if n > 0 || buf.is_empty() {
            hasher.update(buf.get(..n).unwrap_or(buf));
            return Ok(n);
        }
        let h = std::mem::take(hasher);
        let actual = h.finish();
        if actual == self.digest {
            self.state = ReadState::Verified;
            return Ok(0);
        }
        let msg = format!(
            "blob {} is corrupt: its content hashes to {actual} ({})",
            self.digest,
            self.path.display()
        );
        self.state = ReadState::Corrupt(msg.clone());
        Err(io::Error::new(io::ErrorKind::InvalidData, msg))
    }
}

fn open_blob_at(path: &Path, d: &Digest, root: &Path) -> Result<BlobReader, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound {
                what: format!("blob {d}"),
                root: root.to_path_buf(),
            });
        }
        Err(e) => return Err(StoreError::io("open", path)(e)),
    };
    let size = file.metadata().map_err(StoreError::io("stat", path))?.len();
    Ok(BlobReader {
        file,
        state: ReadState::Reading(Hasher::new()),
        digest: *d,
        size,
        path: path.to_path_buf(),
    })
}

fn read_blob_at(path: &Path, d: &Digest, max_len: u64, root: &Path) -> Result<Vec<u8>, StoreError> {
    let r = open_blob_at(path, d, root)?;
    if r.size > max_len {
        return Err(StoreError::invalid(
            format!("blob {d}"),
            format!(
                "it has {} bytes, more than the limit of {max_len} for this kind of blob",
                r.size
            ),
        ));
    }
    let mut bytes = Vec::new();
    r.file.take(max_len + 1).read_to_end(&mut bytes).map_err(StoreError::io("read", path))?;
    if bytes.len() as u64 > max_len {
        return Err(StoreError::invalid(
            format!("blob {d}"),
            format!("it grew past {max_len} bytes while read"),
        ));
    }
    let actual = Digest::of(&bytes);
    if actual != *d {
        return Err(StoreError::Corrupt { digest: *d, actual, path: path.to_path_buf() });
    }
    Ok(bytes)
}

/// Best effort: make a rename durable. Not every file system supports syncing directories.
fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
pub(crate) mod tests;
