//! The content-addressed blob store: an OCI image layout on disk.
//!
//! Layout of `root`:
//! - `oci-layout`: `{"imageLayoutVersion":"1.0.0"}`
//! - `index.json`: an OCI image index; every entry carries the annotation
//!   `org.opencontainers.image.ref.name` with the full normalized name (`registry/repo:tag`).
//! - `blobs/sha256/<hex>`: the blobs, each named by the SHA-256 of its content.
//! - `.tmp/`: temporary files and import staging directories (removed by [`Store::gc`]).
//!
//! Every write is verified and atomic: content is streamed to a temporary file inside the
//! store while it is hashed, fsynced and renamed into place, so a blob file either is complete
//! and matches its name or does not exist. Every read is verified too: [`BlobReader`] rehashes
//! the content and fails at end of file when it does not match its name, and
//! [`Store::read_blob`] checks the digest before returning the bytes.
//!
//! Concurrency: blob writes from several processes are safe (same content, atomic renames).
//! `index.json` updates are atomic but not locked: two concurrent `tag` calls may lose one
//! of the two updates.
//!
//! Reading images ([`Store::resolve_image`]) accepts the OCI and Docker v2 media types;
//! importing images from files is in [`import`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::Serialize;

use crate::digest::{Digest, Hasher};
use crate::reference::ImageRef;

pub mod deb;
mod fsck;
pub mod import;

pub use fsck::{FsckReport, GcReport};

/// Largest manifest, index or image config the store reads into memory.
pub const MAX_JSON_BLOB: u64 = 4 * 1024 * 1024;

/// The annotation holding an image name in `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Temporary files older than this are removed by [`Store::gc`]; younger ones may belong to a
/// concurrent writer.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const TMP_DIR: &str = ".tmp";

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

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
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io { action, path, source }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid { what: what.into(), reason: reason.into() }
    }
}

/// Compression of a layer blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What a media type says a blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Index,
    Manifest,
    Config,
    Layer(Compression),
    /// Any other media type: kept as an opaque blob, never interpreted.
    Other,
}

/// Classifies a media type. Layers that must not be redistributed are an error: cairn only
/// builds from content it holds.
pub(crate) fn classify(media_type: &str) -> Result<Kind, StoreError> {
    Ok(match media_type {
        MT_OCI_INDEX | MT_DOCKER_LIST => Kind::Index,
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => Kind::Manifest,
        MT_OCI_CONFIG | MT_DOCKER_CONFIG => Kind::Config,
        MT_OCI_LAYER => Kind::Layer(Compression::None),
        MT_OCI_LAYER_GZIP | MT_DOCKER_LAYER_GZIP => Kind::Layer(Compression::Gzip),
        MT_OCI_LAYER_ZSTD => Kind::Layer(Compression::Zstd),
        mt if mt.contains("nondistributable") || mt.contains("foreign") => {
            return Err(StoreError::Unsupported {
                what: format!("layer media type {mt:?}"),
                reason: "foreign/non-distributable layers are not stored; cairn builds only from content it holds".into(),
            });
        }
        _ => Kind::Other,
    })
}

/// One layer of a resolved image, in application order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    pub media_type: String,
}

/// A single-platform image: its manifest, parsed config and layers, all present in the store.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The image index the manifest was picked from, when the top was an index.
    pub index: Option<Digest>,
    pub manifest: Digest,
    pub config: Digest,
    pub config_json: ImageConfiguration,
    pub layers: Vec<Layer>,
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
            store.write_atomic("oci-layout", OCI_LAYOUT.as_bytes())?;
        }
        for dir in [store.blob_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        }
        if !store.root.join("index.json").exists() {
            store.write_index(&[])?;
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

    /// Points `name` (its tag; any digest in it is ignored) at `desc`, replacing an existing
    /// entry with the same name. The blob must be in the store with the size `desc` claims.
    pub fn tag(&self, name: &ImageRef, desc: &Descriptor) -> Result<(), StoreError> {
        let d = desc_digest(desc)?;
        let size = self.blob_size(&d)?;
        if size != desc.size() {
            return Err(StoreError::invalid(
                format!("descriptor for {d}"),
                format!("it claims {} bytes but the blob has {size}", desc.size()),
            ));
        }
        let full = name.without_digest().to_string();
        let mut entries: Vec<(String, Descriptor)> =
            self.images()?.into_iter().filter(|(n, _)| *n != full).collect();
        let unnamed = self.unnamed_entries()?;
        let mut annotations = desc.annotations().clone().unwrap_or_default();
        annotations.insert(ANNOTATION_REF_NAME.to_string(), full.clone());
        let mut entry = desc.clone();
        entry.set_annotations(Some(annotations));
        entries.push((full, entry));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut all: Vec<Descriptor> = entries.into_iter().map(|(_, d)| d).collect();
        all.extend(unnamed);
        self.write_index(&all)
    }

    /// Removes the name `name` from `index.json`. Returns whether it was there.
    pub fn untag(&self, name: &ImageRef) -> Result<bool, StoreError> {
        let full = name.without_digest().to_string();
        let named = self.images()?;
        let before = named.len();
        let mut all: Vec<Descriptor> =
            named.into_iter().filter(|(n, _)| *n != full).map(|(_, d)| d).collect();
        let removed = all.len() != before;
        all.extend(self.unnamed_entries()?);
        if removed {
            self.write_index(&all)?;
        }
        Ok(removed)
    }

    /// Finds the descriptor for a reference: by digest when it has one, else by name and tag.
    pub fn resolve(&self, r: &ImageRef) -> Result<Descriptor, StoreError> {
        if let Some(d) = r.digest() {
            if !self.has_blob(d) {
                return Err(StoreError::NotFound {
                    what: format!("image {r}"),
                    root: self.root.clone(),
                });
            }
            let bytes = self.read_blob(d, MAX_JSON_BLOB)?;
            let media_type = sniff_media_type(&bytes).ok_or_else(|| {
                StoreError::invalid(
                    format!("blob {d} (for {r})"),
                    "it is not an image manifest or index",
                )
            })?;
            return make_descriptor(&media_type, d, bytes.len() as u64);
        }
        let full = r.without_digest().to_string();
        self.images()?.into_iter().find(|(n, _)| *n == full).map(|(_, d)| d).ok_or_else(|| {
            StoreError::NotFound { what: format!("image {full}"), root: self.root.clone() }
        })
    }

    /// Every named image in `index.json`, sorted by name.
    pub fn images(&self) -> Result<Vec<(String, Descriptor)>, StoreError> {
        let mut out: Vec<(String, Descriptor)> = self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| {
                let name = d.annotations().as_ref()?.get(ANNOTATION_REF_NAME)?.clone();
                Some((name, d.clone()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn unnamed_entries(&self) -> Result<Vec<Descriptor>, StoreError> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .filter(|d| {
                d.annotations().as_ref().is_none_or(|a| !a.contains_key(ANNOTATION_REF_NAME))
            })
            .cloned()
            .collect())
    }

    pub(crate) fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.root.join("index.json");
        let mut bytes = Vec::new();
        File::open(&path)
            .map_err(StoreError::io("open", &path))?
            .take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut bytes)
            .map_err(StoreError::io("read", &path))?;
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(StoreError::invalid(path.display().to_string(), "larger than 4 MiB"));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::invalid(path.display().to_string(), e.to_string()))
    }

    fn write_index(&self, manifests: &[Descriptor]) -> Result<(), StoreError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Index<'a> {
            schema_version: u32,
            media_type: &'a str,
            manifests: &'a [Descriptor],
        }
        let bytes =
            canonical_json(&Index { schema_version: 2, media_type: MT_OCI_INDEX, manifests })
                .map_err(|e| StoreError::invalid("index.json", e.to_string()))?;
        self.write_atomic("index.json", &bytes)
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        fs::create_dir_all(&tmp).map_err(StoreError::io("create directory", &tmp))?;
        let mut f = tempfile::Builder::new()
            .prefix("write-")
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

    /// Reads and parses a JSON blob named by a descriptor, checking the descriptor's size.
    pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        desc: &Descriptor,
        what: &str,
    ) -> Result<(Digest, T), StoreError> {
        let d = desc_digest(desc)?;
        let bytes = self.read_blob(&d, MAX_JSON_BLOB)?;
        check_size(desc, &d, bytes.len() as u64)?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::invalid(format!("{what} {d}"), e.to_string()))?;
        Ok((d, value))
    }

    /// Picks the manifest for `platform` (`(os, architecture)`) under `top` and returns the
    /// image with its config and layers, checking that every blob is present.
    pub fn resolve_image(
        &self,
        top: &Descriptor,
        platform: (&str, &str),
    ) -> Result<ResolvedImage, StoreError> {
        let (os, arch) = platform;
        let top_digest = desc_digest(top)?;
        let (index, manifest_desc) = match classify(top.media_type().as_ref())? {
            Kind::Index => {
                let (_, idx): (_, ImageIndex) = self.read_json(top, "image index")?;
                let mut available = Vec::new();
                let mut found = None;
                for m in idx.manifests() {
                    match m.platform() {
                        Some(p) => {
                            let (pos, parch) = (p.os().to_string(), p.architecture().to_string());
                            if pos == os && parch == arch && found.is_none() {
                                found = Some(m.clone());
                            }
                            available.push(format!("{pos}/{parch}"));
                        }
                        None => available.push("(no platform)".into()),
                    }
                }
                let m = found.ok_or_else(|| StoreError::Unsupported {
                    what: format!("image index {top_digest}"),
                    reason: format!(
                        "it has no manifest for platform {os}/{arch} (available: {})",
                        available.join(", ")
                    ),
                })?;
                (Some(top_digest), m)
            }
            Kind::Manifest => (None, top.clone()),
            _ => {
                return Err(StoreError::Unsupported {
                    what: format!("media type {:?} of {top_digest}", top.media_type().to_string()),
                    reason: "expected an image manifest or index (OCI or Docker v2)".into(),
                });
            }
        };
        let mt = manifest_desc.media_type().to_string();
        if classify(&mt)? != Kind::Manifest {
            return Err(StoreError::Unsupported {
                what: format!("media type {mt:?} of {}", manifest_desc.digest()),
                reason: "expected an image manifest (nested indexes are not supported)".into(),
            });
        }
        let (manifest, m): (_, ImageManifest) = self.read_json(&manifest_desc, "image manifest")?;
        let cmt = m.config().media_type().to_string();
        if classify(&cmt)? != Kind::Config {
            return Err(StoreError::Unsupported {
                what: format!("config media type {cmt:?} in manifest {manifest}"),
                reason: "expected an OCI or Docker image config".into(),
            });
        }
        let (config, config_json): (_, ImageConfiguration) =
            self.read_json(m.config(), "image config")?;
        let (cos, carch) = (config_json.os().to_string(), config_json.architecture().to_string());
        if cos != os || carch != arch {
            return Err(StoreError::Unsupported {
                what: format!("image {manifest}"),
                reason: format!("it is for platform {cos}/{carch}, not {os}/{arch}"),
            });
        }
        let mut layers = Vec::new();
        for l in m.layers() {
            let lmt = l.media_type().to_string();
            let d = desc_digest(l)?;
            let Kind::Layer(compression) = classify(&lmt)? else {
                return Err(StoreError::Unsupported {
                    what: format!("layer media type {lmt:?} of {d} in manifest {manifest}"),
                    reason: "expected a tar layer (uncompressed, gzip or zstd)".into(),
                });
            };
            check_size(l, &d, self.blob_size(&d)?)?;
            layers.push(Layer { digest: d, size: l.size(), compression, media_type: lmt });
        }
        if layers.len() != config_json.rootfs().diff_ids().len() {
            return Err(StoreError::invalid(
                format!("image config {config}"),
                format!(
                    "it lists {} diff_ids for {} layers",
                    config_json.rootfs().diff_ids().len(),
                    layers.len()
                ),
            ));
        }
        Ok(ResolvedImage { index, manifest, config, config_json, layers })
    }
}

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
            .prefix("import-")
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
    pub(crate) fn commit(self, keep: &BTreeSet<Digest>) -> Result<(), StoreError> {
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
        Ok(())
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
            .prefix("blob-")
            .tempfile_in(tmp_dir)
            .map_err(StoreError::io("create a temporary file in", tmp_dir))?;
        Ok(BlobWriter { file, hasher: Hasher::new(), target_dir })
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

/// The cairn digest of a descriptor. Only sha256 is supported.
pub fn desc_digest(desc: &Descriptor) -> Result<Digest, StoreError> {
    Digest::parse(desc.digest().as_ref()).map_err(|e| StoreError::Unsupported {
        what: format!("descriptor digest {:?}", desc.digest().to_string()),
        reason: e.to_string(),
    })
}

pub(crate) fn check_size(desc: &Descriptor, d: &Digest, actual: u64) -> Result<(), StoreError> {
    if desc.size() != actual {
        return Err(StoreError::invalid(
            format!("descriptor for {d}"),
            format!("it claims {} bytes but the blob has {actual}", desc.size()),
        ));
    }
    Ok(())
}

/// Builds a descriptor.
pub fn make_descriptor(media_type: &str, d: &Digest, size: u64) -> Result<Descriptor, StoreError> {
    let od: oci_spec::image::Digest =
        d.to_string().parse().map_err(|e: oci_spec::OciSpecError| {
            StoreError::invalid(format!("digest {d}"), e.to_string())
        })?;
    Ok(Descriptor::new(MediaType::from(media_type), size, od))
}

/// The media type of a manifest or index JSON blob: its `mediaType` field, or guessed from
/// its shape when the field is absent (allowed by the OCI spec).
pub(crate) fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let obj = v.as_object()?;
    if let Some(mt) = obj.get("mediaType").and_then(|m| m.as_str()) {
        return Some(mt.to_string());
    }
    if obj.contains_key("manifests") {
        Some(MT_OCI_INDEX.to_string())
    } else if obj.contains_key("config") && obj.contains_key("layers") {
        Some(MT_OCI_MANIFEST.to_string())
    } else {
        None
    }
}

/// Serializes with object keys sorted (serde_json's `Value` map is a `BTreeMap` unless the
/// `preserve_order` feature is on; `canonical_json_sorts_keys` guards that), so `HashMap`
/// fields in oci-spec types cannot make the bytes depend on hash order.
pub fn canonical_json<T: Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&serde_json::to_value(v)?)
}

/// The descriptors a blob refers to (children of an index or manifest), parsed leniently
/// for walking the store.
pub(crate) fn children(
    bytes: &[u8],
    kind: Kind,
    d: &Digest,
) -> Result<Vec<Descriptor>, StoreError> {
    match kind {
        Kind::Index => {
            let idx: ImageIndex = serde_json::from_slice(bytes)
                .map_err(|e| StoreError::invalid(format!("image index {d}"), e.to_string()))?;
            Ok(idx.manifests().clone())
        }
        Kind::Manifest => {
            let m: ImageManifest = serde_json::from_slice(bytes)
                .map_err(|e| StoreError::invalid(format!("image manifest {d}"), e.to_string()))?;
            let mut out = vec![m.config().clone()];
            out.extend(m.layers().iter().cloned());
            Ok(out)
        }
        Kind::Config => {
            serde_json::from_slice::<ImageConfiguration>(bytes)
                .map_err(|e| StoreError::invalid(format!("image config {d}"), e.to_string()))?;
            Ok(Vec::new())
        }
        _ => Ok(Vec::new()),
    }
}

/// What a walk of the reachable graph found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Every reachable digest with the size its descriptor claims.
    pub reachable: BTreeMap<Digest, u64>,
    /// Reachable digests with no blob.
    pub missing: BTreeSet<Digest>,
    /// Everything else that is wrong, one sentence each (naming the blob).
    pub problems: Vec<String>,
}

/// Walks everything reachable from `roots`. `size_of` gives a blob's size (None: missing);
/// `read` reads a JSON blob verified. Problems are collected, the walk does not stop.
pub(crate) fn walk(
    roots: &[Descriptor],
    mut size_of: impl FnMut(&Digest) -> Option<u64>,
    mut read: impl FnMut(&Digest) -> Result<Vec<u8>, StoreError>,
) -> Walk {
    let mut w = Walk::default();
    let mut queue: Vec<Descriptor> = roots.to_vec();
    let mut visited = BTreeSet::new();
    while let Some(desc) = queue.pop() {
        let d = match desc_digest(&desc) {
            Ok(d) => d,
            Err(e) => {
                w.problems.push(e.to_string());
                continue;
            }
        };
        let mt = desc.media_type().to_string();
        if !visited.insert((d, mt.clone())) {
            continue;
        }
        w.reachable.insert(d, desc.size());
        let kind = match classify(&mt) {
            Ok(k) => k,
            Err(e) => {
                w.problems.push(e.to_string());
                continue;
            }
        };
        match size_of(&d) {
            None => {
                w.missing.insert(d);
                continue;
            }
            Some(s) if s != desc.size() => {
                w.problems.push(format!(
                    "descriptor for {d} claims {} bytes but the blob has {s}",
                    desc.size()
                ));
                continue;
            }
            Some(_) => {}
        }
        if matches!(kind, Kind::Index | Kind::Manifest | Kind::Config) {
            match read(&d).and_then(|b| children(&b, kind, &d)) {
                Ok(c) => queue.extend(c),
                Err(e) => w.problems.push(e.to_string()),
            }
        }
    }
    w
}

#[cfg(test)]
pub(crate) mod tests;
