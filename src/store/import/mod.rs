//! `cairn import`: bring images into the store from files.
//!
//! The input kind is detected, not declared:
//! - a directory with `oci-layout`: an OCI image layout; every blob reachable from its
//!   `index.json` is copied and verified;
//! - a tar (optionally gzip, zstd or xz compressed) holding `oci-layout`: an OCI archive;
//! - a tar holding `manifest.json`: a `docker save` archive, converted to OCI manifests;
//! - an `ar` archive (`!<arch>\n`): a Debian package, see [`super::deb`];
//! - any other tar: a root filesystem, stored as the single layer of a new image;
//! - any other directory: a root filesystem, written as a deterministic tar layer.
//!
//! Everything is staged in a private directory of the store and verified before the first
//! blob moves into `blobs/`, and names are tagged only after that: a failed import leaves
//! nothing behind.
//!
//! # Determinism of directory imports
//! A directory becomes a tar whose bytes depend only on the names, file contents, symlink
//! targets and executable bits in the tree: entries are sorted by name (bytewise) and walked
//! depth first; owner and group are 0 with no names; directories are 0755, files are 0755 if
//! any execute bit is set and 0644 otherwise; every mtime is `source_date`; hard links are
//! stored as separate files. The same tree checked out anywhere (any umask, any checkout
//! order or time) gives the same layer digest. Devices, sockets and FIFOs are refused.
//!
//! Images cairn writes itself (directory, tar and `.deb` imports, `docker save` conversion)
//! have no `created` time, so their digests depend only on their content.
//!
//! Each kind has its own file: `oci` (layout directory and archive), `docker`
//! (`docker save`) and `rootfs` (root filesystems and `.deb` packages, each written as a
//! one-layer image). `archive` stages the members of image archives.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use super::deb::DebError;
use super::{
    BlobWriter, BoundedCopyError, FsError, Staging, Store, StoreError, StoreLock, copy_bounded,
    desc_digest,
};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::source_date::SourceDate;

mod archive;
mod docker;
mod oci;
mod rootfs;

/// How imports behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// The mtime of every entry in layers cairn writes from a directory.
    pub source_date: SourceDate,
    /// Largest blob (after decompression, for inputs cairn decompresses) accepted.
    pub max_blob_size: u64,
    /// The architecture (GOARCH) recorded for root filesystem imports and `Architecture: all`
    /// packages, which carry none of their own.
    pub architecture: String,
}

impl ImportOptions {
    /// Defaults: 8 GiB blobs, `amd64`.
    pub fn new(source_date: SourceDate) -> ImportOptions {
        ImportOptions {
            source_date,
            max_blob_size: 8 * 1024 * 1024 * 1024,
            architecture: "amd64".to_string(),
        }
    }
}

/// One name an import tagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The full normalized name (`registry/repo:tag`).
    pub name: ImageRef,
    /// The top descriptor (manifest or index) the name points at.
    pub descriptor: Descriptor,
    pub digest: Digest,
}

/// Why an import failed. Every variant carries the input, but no message repeats it: the
/// caller names what it imported (the CLI says `importing X: …`), and a message that named
/// it again printed `importing X: X: …`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input is malformed or hostile.
    #[error("{reason}")]
    Input { input: PathBuf, reason: String },
    /// The input is neither a tar archive, a `.deb` nor an image layout.
    #[error("not a tar archive, .deb or image layout: {source}")]
    NotAnImage { input: PathBuf, source: io::Error },
    /// The input is a tar archive that breaks off or is damaged after its first member.
    #[error("the tar archive is truncated or corrupt: {source}")]
    CorruptTar { input: PathBuf, source: io::Error },
    /// The input (or a tar inside it) ends without its end-of-archive blocks.
    #[error("{NO_END_MARKER}")]
    NoEndMarker { input: PathBuf },
    /// A member of an image archive has a name that cannot be used.
    #[error("{source}")]
    MemberName { input: PathBuf, source: MemberNameError },
    /// The input does not say what to call the image.
    #[error("{reason}; pass a name with --name")]
    NameRequired { input: PathBuf, reason: String },
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { input: PathBuf, what: String, limit: u64 },
    #[error("{source}")]
    Deb {
        input: PathBuf,
        #[source]
        source: DebError,
    },
    /// The store refused something (digest mismatch, bad manifest, I/O in the store…).
    #[error("{source}")]
    Store {
        input: PathBuf,
        #[source]
        source: StoreError,
    },
    /// Reading the input itself failed.
    #[error("cannot {action} it: {source}")]
    ReadInput {
        input: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// A file inside the input (a directory import's entry, a staged file) failed.
    #[error(transparent)]
    Io(#[from] FsError),
}

/// Why an archive member's name cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberNameError {
    #[error("member name {0:?} is not UTF-8")]
    NotUtf8(Vec<u8>),
    #[error("member {0:?} has an absolute path")]
    Absolute(String),
    #[error("member {0:?} has a `..` component")]
    DotDot(String),
}

/// Imports `source` into `store` and returns the names tagged. `name` overrides (or
/// supplies) the name when the input holds exactly one image.
pub fn import(
    store: &Store,
    source: &Path,
    name: Option<&ImageRef>,
    opts: &ImportOptions,
) -> Result<Vec<Imported>, ImportError> {
    let cx = Cx { store, input: source, name, opts };
    let meta = fs::metadata(source).map_err(cx.read_input("read"))?;
    let staging = Staging::new(store).map_err(cx.st())?;
    if meta.is_dir() {
        if source.join("oci-layout").exists() {
            return cx.oci_layout_dir(staging);
        }
        return cx.rootfs_dir(staging);
    }
    if !meta.is_file() {
        return Err(cx.bad("not a regular file or directory"));
    }
    let mut magic = Vec::with_capacity(8);
    File::open(source)
        .map_err(cx.read_input("open"))?
        .take(8)
        .read_to_end(&mut magic)
        .map_err(cx.read_input("read"))?;
    if magic.starts_with(b"!<arch>\n") {
        return cx.deb(staging);
    }
    // Decompress into the staging area when compressed: the tar is then read from there (and,
    // for a root filesystem, is already the layer blob).
    let compression = sniff_compression(&magic);
    let (tar_path, staged_layer) = match compression {
        None => (source.to_path_buf(), None),
        Some(c) => {
            let f = File::open(source).map_err(cx.read_input("open"))?;
            let dec = decoder(c, f).map_err(|e| cx.bad(format!("cannot decompress: {e}")))?;
            let mut w = staging.writer().map_err(cx.st())?;
            cx.copy_limited(dec, &mut w, "decompressed input")?;
            let (d, _) = w.finish(None, "decompressed input").map_err(cx.st())?;
            let path = staging.dir.path().join(d.hex());
            (path, Some(d))
        }
    };
    match cx.classify_tar(&tar_path)? {
        TarKind::OciArchive => cx.oci_archive(staging, &tar_path),
        TarKind::DockerSave => cx.docker_save(staging, &tar_path),
        TarKind::Rootfs => cx.rootfs_tar(staging, &tar_path, staged_layer),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImportError {
    let path = path.to_path_buf();
    move |source| ImportError::Io(FsError { action, path, source })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compressed {
    Gzip,
    Zstd,
    Xz,
}

fn sniff_compression(magic: &[u8]) -> Option<Compressed> {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Some(Compressed::Gzip)
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compressed::Zstd)
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Compressed::Xz)
    } else {
        None
    }
}

fn decoder<'a>(c: Compressed, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compressed::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compressed::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Compressed::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
    })
}

enum TarKind {
    OciArchive,
    DockerSave,
    Rootfs,
}

/// The shared state of one import.
struct Cx<'a> {
    store: &'a Store,
    input: &'a Path,
    /// The name given to the import (`--name`), if any.
    name: Option<&'a ImageRef>,
    opts: &'a ImportOptions,
}

impl<'a> Cx<'a> {
    fn bad(&self, reason: impl Into<String>) -> ImportError {
        ImportError::Input { input: self.input.to_path_buf(), reason: reason.into() }
    }

    fn st(&self) -> impl Fn(StoreError) -> ImportError + use<'_, 'a> {
        |source| ImportError::Store { input: self.input.to_path_buf(), source }
    }

    fn need_name(&self, reason: impl Into<String>) -> ImportError {
        ImportError::NameRequired { input: self.input.to_path_buf(), reason: reason.into() }
    }

    /// For an I/O error on the input itself, which the message calls "it".
    fn read_input(&self, action: &'static str) -> impl FnOnce(io::Error) -> ImportError {
        let input = self.input.to_path_buf();
        move |source| ImportError::ReadInput { input, action, source }
    }

    fn member_name(&self) -> impl Fn(MemberNameError) -> ImportError + use<'_, 'a> {
        |source| ImportError::MemberName { input: self.input.to_path_buf(), source }
    }

    fn no_end_marker(&self) -> ImportError {
        ImportError::NoEndMarker { input: self.input.to_path_buf() }
    }

    /// Looks at the member names of the tar at `path` (the input, or the input
    /// decompressed), headers only.
    fn classify_tar(&self, path: &Path) -> Result<TarKind, ImportError> {
        let not_tar = |source| ImportError::NotAnImage { input: self.input.to_path_buf(), source };
        let file = File::open(path).map_err(not_tar)?;
        let mut ar = tar::Archive::new(EndOfArchive::new(io::BufReader::new(file)));
        let mut any = false;
        let mut docker = false;
        for entry in ar.entries().map_err(not_tar)? {
            let entry = match entry {
                Ok(e) => e,
                Err(source) if any => {
                    return Err(ImportError::CorruptTar {
                        input: self.input.to_path_buf(),
                        source,
                    });
                }
                Err(e) => return Err(not_tar(e)),
            };
            any = true;
            let raw = entry.path_bytes();
            let name = raw.strip_prefix(b"./").unwrap_or(&raw);
            if name == b"oci-layout" {
                return Ok(TarKind::OciArchive);
            }
            docker |= name == b"manifest.json";
        }
        if !any {
            return Err(not_tar(io::Error::new(io::ErrorKind::InvalidData, "it has no entries")));
        }
        if !ar.into_inner().ended_properly() {
            return Err(self.no_end_marker());
        }
        Ok(if docker { TarKind::DockerSave } else { TarKind::Rootfs })
    }

    /// Copies at most `opts.max_blob_size` bytes; read errors are input errors.
    fn copy_limited(
        &self,
        r: impl Read,
        w: &mut BlobWriter,
        what: &str,
    ) -> Result<u64, ImportError> {
        let staged = w.path().to_path_buf();
        copy_bounded(r, w, self.opts.max_blob_size).map_err(|e| match e {
            BoundedCopyError::Read(e) => self.bad(format!("reading {what}: {e}")),
            BoundedCopyError::Limit => ImportError::TooLarge {
                input: self.input.to_path_buf(),
                what: what.to_string(),
                limit: self.opts.max_blob_size,
            },
            BoundedCopyError::Write(e) => self.st()(StoreError::io("write", &staged)(e)),
        })
    }

    fn stage_bytes(&self, staging: &Staging, bytes: &[u8]) -> Result<(Digest, u64), ImportError> {
        let mut w = staging.writer().map_err(self.st())?;
        let staged = w.path().to_path_buf();
        w.write_all(bytes).map_err(|e| self.st()(StoreError::io("write", &staged)(e)))?;
        w.finish(None, "generated JSON").map_err(self.st())
    }

    /// Stages the manifest of a single-platform image made of `config` and `layers`.
    fn stage_manifest(
        &self,
        staging: &Staging,
        config: Descriptor,
        layers: Vec<Descriptor>,
    ) -> Result<(Digest, u64), ImportError> {
        let bytes = crate::oci::manifest(config, layers)
            .and_then(|m| crate::oci::to_json("image manifest", &m))
            .map_err(|e| self.st()(e.into()))?;
        self.stage_bytes(staging, &bytes)
    }

    /// Names the committed images; `lock` (from [`Staging::commit`]) keeps `gc` away until
    /// they are named.
    fn tag_all(
        &self,
        lock: &StoreLock,
        tagged: Vec<(ImageRef, Descriptor)>,
    ) -> Result<Vec<Imported>, ImportError> {
        let mut out = Vec::new();
        for (name, desc) in tagged {
            self.store.tag_locked(lock, &name, &desc).map_err(self.st())?;
            let digest = desc_digest(&desc).map_err(self.st())?;
            out.push(Imported { name, descriptor: desc, digest });
        }
        Ok(out)
    }
}

/// Reads a whole tar archive, checking every header and that every entry's data is all there.
/// Wraps the reader a `tar::Archive` reads from and notes whether it ran into the end of
/// the input. The archive stops at its first all-zero header block without reading further,
/// so an archive that ends by running out of bytes instead was cut short, perhaps between
/// two members, which no entry-level check can see.
pub(super) struct EndOfArchive<R> {
    inner: R,
    hit_eof: bool,
}

impl<R: Read> EndOfArchive<R> {
    pub(super) fn new(inner: R) -> Self {
        EndOfArchive { inner, hit_eof: false }
    }

    /// Whether the archive ended with its end-of-archive marker.
    pub(super) fn ended_properly(&self) -> bool {
        !self.hit_eof
    }
}

impl<R: Read> Read for EndOfArchive<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof = true;
        }
        Ok(n)
    }
}

pub(super) const NO_END_MARKER: &str =
    "the archive is truncated: it ends without its end-of-archive blocks";

fn validate_tar(r: impl Read) -> io::Result<()> {
    let mut ar = tar::Archive::new(EndOfArchive::new(io::BufReader::new(r)));
    let mut count = 0u64;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let expected = entry.header().entry_size()?;
        let n = io::copy(&mut entry, &mut io::sink())?;
        if n != expected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "entry {:?} is truncated: its header says {expected} bytes, {n} follow",
                    String::from_utf8_lossy(&entry.path_bytes())
                ),
            ));
        }
        count += 1;
    }
    if count == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "it has no entries"));
    }
    if !ar.into_inner().ended_properly() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, NO_END_MARKER));
    }
    Ok(())
}
