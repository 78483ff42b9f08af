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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex};
use serde::{Deserialize, Serialize};

use super::deb::{self, DebError};
use super::{
    ANNOTATION_REF_NAME, BlobWriter, MAX_JSON_BLOB, MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD, MT_OCI_MANIFEST, Staging, Store, StoreError, desc_digest, make_descriptor,
    walk,
};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::source_date::SourceDate;

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

/// Why an import failed. Every variant names the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input is malformed or hostile.
    #[error("{input}: {reason}")]
    Input { input: PathBuf, reason: String },
    /// The input does not say what to call the image.
    #[error("{input}: {reason}; pass a name with --name")]
    NameRequired { input: PathBuf, reason: String },
    #[error("{input}: {what} is larger than the limit of {limit} bytes")]
    TooLarge { input: PathBuf, what: String, limit: u64 },
    #[error("{input}: {source}")]
    Deb {
        input: PathBuf,
        #[source]
        source: DebError,
    },
    /// The store refused something (digest mismatch, bad manifest, I/O in the store…).
    #[error("{input}: {source}")]
    Store {
        input: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Imports `source` into `store` and returns the names tagged. `name` overrides (or
/// supplies) the name when the input holds exactly one image.
pub fn import(
    store: &Store,
    source: &Path,
    name: Option<&ImageRef>,
    opts: &ImportOptions,
) -> Result<Vec<Imported>, ImportError> {
    let cx = Cx { store, input: source, opts };
    let meta = fs::metadata(source).map_err(io_err("read", source))?;
    let staging = Staging::new(store).map_err(cx.st())?;
    if meta.is_dir() {
        if source.join("oci-layout").exists() {
            return cx.oci_layout_dir(staging, name);
        }
        return cx.rootfs_dir(staging, name);
    }
    if !meta.is_file() {
        return Err(cx.bad("not a regular file or directory"));
    }
    let mut magic = Vec::with_capacity(8);
    File::open(source)
        .map_err(io_err("open", source))?
        .take(8)
        .read_to_end(&mut magic)
        .map_err(io_err("read", source))?;
    if magic.starts_with(b"!<arch>\n") {
        return cx.deb(staging, name);
    }
    // Decompress into the staging area when compressed: the tar is then read from there (and,
    // for a root filesystem, is already the layer blob).
    let compression = sniff_compression(&magic);
    let (tar_path, staged_layer) = match compression {
        None => (source.to_path_buf(), None),
        Some(c) => {
            let f = File::open(source).map_err(io_err("open", source))?;
            let dec = decoder(c, f).map_err(|e| cx.bad(format!("cannot decompress: {e}")))?;
            let mut w = staging.writer().map_err(cx.st())?;
            cx.copy_limited(dec, &mut w, "decompressed input")?;
            let (d, _) = w.finish(None, "decompressed input").map_err(cx.st())?;
            let path = staging.dir.path().join(d.hex());
            (path, Some(d))
        }
    };
    match classify_tar(&tar_path).map_err(|e| cx.bad(e))? {
        TarKind::OciArchive => cx.oci_archive(staging, &tar_path, name),
        TarKind::DockerSave => cx.docker_save(staging, &tar_path, name),
        TarKind::Rootfs => cx.rootfs_tar(staging, &tar_path, staged_layer, name),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImportError {
    let path = path.to_path_buf();
    move |source| ImportError::Io { action, path, source }
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

/// Looks at the member names of a tar (headers only). The error is a sentence for the user.
fn classify_tar(path: &Path) -> Result<TarKind, String> {
    let not_tar =
        |e: &dyn std::fmt::Display| format!("not a tar archive, .deb or image layout: {e}");
    let file = File::open(path).map_err(|e| not_tar(&e))?;
    let mut ar = tar::Archive::new(io::BufReader::new(file));
    let mut any = false;
    let mut docker = false;
    for entry in ar.entries().map_err(|e| not_tar(&e))? {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if any => return Err(format!("the tar archive is truncated or corrupt: {e}")),
            Err(e) => return Err(not_tar(&e)),
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
        return Err(not_tar(&"it has no entries"));
    }
    Ok(if docker { TarKind::DockerSave } else { TarKind::Rootfs })
}

/// Normalizes an archive member name: relative, no `..`, no empty or `.` components.
fn member_path(raw: &[u8]) -> Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| format!("member name {raw:?} is not UTF-8"))?;
    if s.starts_with('/') {
        return Err(format!("member {s:?} has an absolute path"));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("member {s:?} has a `..` component")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The files of an archive, staged in the store by content digest.
#[derive(Default)]
struct Members {
    files: BTreeMap<String, (Digest, u64)>,
}

/// The shared state of one import.
struct Cx<'a> {
    store: &'a Store,
    input: &'a Path,
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

    /// Copies at most `opts.max_blob_size` bytes; read errors are input errors.
    fn copy_limited(
        &self,
        mut r: impl Read,
        w: &mut BlobWriter,
        what: &str,
    ) -> Result<u64, ImportError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.bad(format!("reading {what}: {e}"))),
            };
            total += n as u64;
            if total > self.opts.max_blob_size {
                return Err(ImportError::TooLarge {
                    input: self.input.to_path_buf(),
                    what: what.to_string(),
                    limit: self.opts.max_blob_size,
                });
            }
            w.write_all(buf.get(..n).unwrap_or_default()).map_err(|e| ImportError::Store {
                input: self.input.to_path_buf(),
                source: StoreError::io("write staged blob for", self.input)(e),
            })?;
        }
    }

    /// Stages every regular file of an archive (links resolved to their targets).
    fn stage_archive(&self, staging: &Staging, tar_path: &Path) -> Result<Members, ImportError> {
        let file = File::open(tar_path).map_err(io_err("open", tar_path))?;
        let mut ar = tar::Archive::new(io::BufReader::new(file));
        let mut m = Members::default();
        let mut links: BTreeMap<String, String> = BTreeMap::new();
        let entries = ar.entries().map_err(|e| self.bad(format!("reading the archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.bad(format!("reading the archive: {e}")))?;
            let path = member_path(&entry.path_bytes()).map_err(|e| self.bad(e))?;
            if path.is_empty() {
                continue;
            }
            if m.files.contains_key(&path) || links.contains_key(&path) {
                return Err(self.bad(format!("member {path:?} appears twice")));
            }
            let header_size = entry
                .header()
                .entry_size()
                .map_err(|e| self.bad(format!("member {path:?}: bad size: {e}")))?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut w = staging.writer().map_err(self.st())?;
                    let n = self.copy_limited(&mut entry, &mut w, &format!("member {path:?}"))?;
                    if n != header_size {
                        return Err(self.bad(format!(
                            "member {path:?} is truncated: its header says {header_size} bytes, {n} follow"
                        )));
                    }
                    let (d, size) = w.finish(None, &path).map_err(self.st())?;
                    m.files.insert(path, (d, size));
                }
                tar::EntryType::Directory => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| self.bad(format!("link {path:?} has no target")))?
                        .into_owned();
                    let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                        if target.starts_with(b"/") {
                            return Err(
                                self.bad(format!("symlink {path:?} points outside the archive"))
                            );
                        }
                        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                        let mut joined = parent.as_bytes().to_vec();
                        joined.push(b'/');
                        joined.extend_from_slice(&target);
                        resolve_dots(&joined).ok_or_else(|| {
                            self.bad(format!("symlink {path:?} points outside the archive"))
                        })?
                    } else {
                        member_path(&target).map_err(|e| self.bad(e))?
                    };
                    links.insert(path, target);
                }
                other => {
                    return Err(self.bad(format!("member {path:?} has unsupported type {other:?}")));
                }
            }
        }
        for (path, target) in &links {
            let mut t = target.clone();
            let mut hops = 0;
            while let Some(next) = links.get(&t) {
                hops += 1;
                if hops > 8 {
                    return Err(self.bad(format!("link {path:?} is part of a loop")));
                }
                t = next.clone();
            }
            let found = m.files.get(&t).copied().ok_or_else(|| {
                self.bad(format!(
                    "link {path:?} points to {target:?}, which is not a file in the archive"
                ))
            })?;
            m.files.insert(path.clone(), found);
        }
        Ok(m)
    }

    fn oci_layout_dir(
        &self,
        staging: Staging,
        name: Option<&ImageRef>,
    ) -> Result<Vec<Imported>, ImportError> {
        let read_small = |file: &str| -> Result<Vec<u8>, ImportError> {
            let path = self.input.join(file);
            let mut bytes = Vec::new();
            File::open(&path)
                .map_err(io_err("open", &path))?
                .take(MAX_JSON_BLOB + 1)
                .read_to_end(&mut bytes)
                .map_err(io_err("read", &path))?;
            if bytes.len() as u64 > MAX_JSON_BLOB {
                return Err(self.bad(format!("{file} is larger than {MAX_JSON_BLOB} bytes")));
            }
            Ok(bytes)
        };
        let layout = read_small("oci-layout")?;
        let index = read_small("index.json")?;
        let index = self.parse_layout(&layout, &index)?;
        // Copy lazily during the walk: only reachable blobs are read, each verified.
        let mut copy_errors = Vec::new();
        let blob_dir = self.input.join("blobs").join("sha256");
        let w = walk(
            index.manifests(),
            |d| {
                if let Some(s) = staging.size(d) {
                    return Some(s);
                }
                let path = blob_dir.join(d.hex());
                let f = File::open(&path).ok()?;
                let r = (|| -> Result<u64, ImportError> {
                    let mut w = staging.writer().map_err(self.st())?;
                    let n = self.copy_limited(f, &mut w, &format!("blob {d}"))?;
                    w.finish(Some(d), &format!("blob file {}", path.display()))
                        .map_err(self.st())?;
                    Ok(n)
                })();
                match r {
                    Ok(n) => Some(n),
                    Err(e) => {
                        copy_errors.push(e.to_string());
                        // Reported below; the size keeps the walk from calling it missing.
                        Some(u64::MAX)
                    }
                }
            },
            |d| staging.read(d, MAX_JSON_BLOB),
        );
        if let Some(e) = copy_errors.into_iter().next() {
            return Err(self.bad(e));
        }
        self.finish_oci(staging, &index, w, name)
    }

    fn oci_archive(
        &self,
        staging: Staging,
        tar_path: &Path,
        name: Option<&ImageRef>,
    ) -> Result<Vec<Imported>, ImportError> {
        let m = self.stage_archive(&staging, tar_path)?;
        for (path, (d, _)) in &m.files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                let named = Digest::from_hex(hex).ok_or_else(|| {
                    self.bad(format!("member {path:?} is not named by a sha256 digest"))
                })?;
                if named != *d {
                    return Err(
                        self.bad(format!("member {path:?} is corrupt: its content hashes to {d}"))
                    );
                }
            }
        }
        let small = |file: &str| -> Result<Vec<u8>, ImportError> {
            let (d, _) =
                m.files.get(file).ok_or_else(|| self.bad(format!("the archive has no {file}")))?;
            staging.read(d, MAX_JSON_BLOB).map_err(self.st())
        };
        let index = self.parse_layout(&small("oci-layout")?, &small("index.json")?)?;
        let w = walk(index.manifests(), |d| staging.size(d), |d| staging.read(d, MAX_JSON_BLOB));
        self.finish_oci(staging, &index, w, name)
    }

    fn parse_layout(&self, layout: &[u8], index: &[u8]) -> Result<ImageIndex, ImportError> {
        #[derive(Deserialize)]
        struct Layout {
            #[serde(rename = "imageLayoutVersion")]
            version: String,
        }
        let l: Layout = serde_json::from_slice(layout)
            .map_err(|e| self.bad(format!("oci-layout is not valid: {e}")))?;
        if !l.version.starts_with("1.") {
            return Err(self.bad(format!("unsupported imageLayoutVersion {:?}", l.version)));
        }
        serde_json::from_slice(index)
            .map_err(|e| self.bad(format!("index.json is not a valid OCI image index: {e}")))
    }

    /// Checks the walk, decides the names, commits the blobs and tags.
    fn finish_oci(
        &self,
        staging: Staging,
        index: &ImageIndex,
        w: super::Walk,
        name: Option<&ImageRef>,
    ) -> Result<Vec<Imported>, ImportError> {
        let mut problems: Vec<String> = w
            .missing
            .iter()
            .map(|d| format!("blob {d} is referenced but not in the input"))
            .collect();
        problems.extend(w.problems);
        if !problems.is_empty() {
            return Err(self.bad(problems.join("; ")));
        }
        let tops = index.manifests();
        if tops.is_empty() {
            return Err(self.bad("index.json lists no images"));
        }
        let mut tagged = Vec::new();
        for top in tops {
            let annotations = top.annotations().as_ref();
            // Docker 25+ writes the bare tag as ref.name and the full name here.
            let containerd_name = annotations.and_then(|a| a.get("io.containerd.image.name"));
            let ref_name =
                annotations.and_then(|a| a.get(ANNOTATION_REF_NAME)).map(
                    |r| match containerd_name {
                        Some(full) if !r.contains('/') && !r.contains(':') => full,
                        _ => r,
                    },
                );
            let image_name = match (name, ref_name) {
                (Some(n), _) if tops.len() == 1 => n.without_digest(),
                (_, Some(r)) if r.contains('/') || r.contains(':') => ImageRef::parse(r)
                    .map_err(|e| self.bad(format!("index.json names an image {r:?}: {e}")))?,
                // A bare tag (what skopeo and others write): the repository comes from --name.
                (Some(n), Some(tag)) => ImageRef::parse(&format!("{}:{tag}", n.name()))
                    .map_err(|e| self.bad(format!("index.json names an image {tag:?}: {e}")))?,
                (None, Some(tag)) => {
                    return Err(self
                        .need_name(format!("index.json names an image only by the tag {tag:?}")));
                }
                (_, None) => {
                    return Err(self.need_name(format!(
                        "image {} in index.json has no {ANNOTATION_REF_NAME} annotation",
                        top.digest()
                    )));
                }
            };
            let mut desc = top.clone();
            desc.set_annotations(None);
            tagged.push((image_name, desc));
        }
        staging.commit(&w.reachable.keys().copied().collect()).map_err(self.st())?;
        self.tag_all(tagged)
    }

    fn tag_all(&self, tagged: Vec<(ImageRef, Descriptor)>) -> Result<Vec<Imported>, ImportError> {
        let mut out = Vec::new();
        for (name, desc) in tagged {
            self.store.tag(&name, &desc).map_err(self.st())?;
            let digest = desc_digest(&desc).map_err(self.st())?;
            out.push(Imported { name, descriptor: desc, digest });
        }
        Ok(out)
    }

    fn docker_save(
        &self,
        staging: Staging,
        tar_path: &Path,
        name: Option<&ImageRef>,
    ) -> Result<Vec<Imported>, ImportError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let m = self.stage_archive(&staging, tar_path)?;
        let member = |p: &str| -> Result<(Digest, u64), ImportError> {
            let norm =
                member_path(p.as_bytes()).map_err(|e| self.bad(format!("manifest.json: {e}")))?;
            m.files.get(&norm).copied().ok_or_else(|| {
                self.bad(format!("manifest.json refers to {p:?}, which is not in the archive"))
            })
        };
        let (md, _) = member("manifest.json")?;
        let entries: Vec<Entry> = serde_json::from_slice(
            &staging.read(&md, MAX_JSON_BLOB).map_err(self.st())?,
        )
        .map_err(|e| self.bad(format!("manifest.json is not a docker save manifest: {e}")))?;
        if entries.is_empty() {
            return Err(self.bad("manifest.json lists no images"));
        }
        let mut keep = BTreeSet::new();
        let mut tagged = Vec::new();
        for e in &entries {
            let (cd, csize) = member(&e.config)?;
            let config: ImageConfiguration =
                serde_json::from_slice(&staging.read(&cd, MAX_JSON_BLOB).map_err(self.st())?)
                    .map_err(|err| {
                        self.bad(format!("image config {:?} is not valid: {err}", e.config))
                    })?;
            let diff_ids = config.rootfs().diff_ids();
            if diff_ids.len() != e.layers.len() {
                return Err(self.bad(format!(
                    "image config {:?} lists {} layers, manifest.json {}",
                    e.config,
                    diff_ids.len(),
                    e.layers.len()
                )));
            }
            let mut layers = Vec::new();
            for (l, diff_id) in e.layers.iter().zip(diff_ids) {
                let (ld, lsize) = member(l)?;
                let mut magic = Vec::new();
                staging
                    .open(&ld)
                    .map_err(self.st())?
                    .take(8)
                    .read_to_end(&mut magic)
                    .map_err(io_err("read", self.input))?;
                let mt = match sniff_compression(&magic) {
                    None => {
                        if diff_id != &ld.to_string() {
                            return Err(self.bad(format!(
                                "layer {l:?} hashes to {ld}, but the image config says {diff_id}"
                            )));
                        }
                        MT_OCI_LAYER
                    }
                    Some(Compressed::Gzip) => MT_OCI_LAYER_GZIP,
                    Some(Compressed::Zstd) => MT_OCI_LAYER_ZSTD,
                    Some(Compressed::Xz) => {
                        return Err(self.bad(format!(
                            "layer {l:?} is xz-compressed, which OCI does not allow"
                        )));
                    }
                };
                keep.insert(ld);
                layers.push(BlobRef { media_type: mt, digest: ld, size: lsize });
            }
            keep.insert(cd);
            let manifest = manifest_json(
                BlobRef { media_type: MT_OCI_CONFIG, digest: cd, size: csize },
                layers,
            );
            let (mdg, msize) = self.stage_bytes(&staging, &manifest)?;
            keep.insert(mdg);
            let desc = make_descriptor(MT_OCI_MANIFEST, &mdg, msize).map_err(self.st())?;
            let names: Vec<ImageRef> = match (name, &e.repo_tags) {
                (Some(n), _) if entries.len() == 1 => vec![n.without_digest()],
                (_, Some(tags)) if !tags.is_empty() => tags
                    .iter()
                    .map(|t| {
                        ImageRef::parse(t)
                            .map(|r| r.without_digest())
                            .map_err(|err| self.bad(format!("manifest.json: {err}")))
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(self.need_name(format!(
                        "image {:?} in manifest.json has no RepoTags",
                        e.config
                    )));
                }
            };
            tagged.extend(names.into_iter().map(|n| (n, desc.clone())));
        }
        staging.commit(&keep).map_err(self.st())?;
        self.tag_all(tagged)
    }

    fn stage_bytes(&self, staging: &Staging, bytes: &[u8]) -> Result<(Digest, u64), ImportError> {
        let mut w = staging.writer().map_err(self.st())?;
        w.write_all(bytes)
            .map_err(|e| self.st()(StoreError::io("write staged blob for", self.input)(e)))?;
        w.finish(None, "generated JSON").map_err(self.st())
    }

    /// Writes config and manifest for a one-layer image, commits and tags it.
    fn single_layer_image(
        &self,
        staging: Staging,
        layer: (Digest, u64),
        platform: (String, Option<String>),
        labels: BTreeMap<String, String>,
        name: ImageRef,
    ) -> Result<Vec<Imported>, ImportError> {
        let config = serde_json::to_vec(&ConfigOut {
            architecture: platform.0,
            variant: platform.1,
            os: "linux",
            config: ConfigInner { labels },
            rootfs: RootFsOut { kind: "layers", diff_ids: vec![layer.0] },
        })
        .map_err(|e| self.bad(format!("cannot serialize the image config: {e}")))?;
        let (cd, csize) = self.stage_bytes(&staging, &config)?;
        let manifest = manifest_json(
            BlobRef { media_type: MT_OCI_CONFIG, digest: cd, size: csize },
            vec![BlobRef { media_type: MT_OCI_LAYER, digest: layer.0, size: layer.1 }],
        );
        let (md, msize) = self.stage_bytes(&staging, &manifest)?;
        staging.commit(&[layer.0, cd, md].into_iter().collect()).map_err(self.st())?;
        let desc = make_descriptor(MT_OCI_MANIFEST, &md, msize).map_err(self.st())?;
        self.tag_all(vec![(name.without_digest(), desc)])
    }

    fn rootfs_tar(
        &self,
        staging: Staging,
        tar_path: &Path,
        staged: Option<Digest>,
        name: Option<&ImageRef>,
    ) -> Result<Vec<Imported>, ImportError> {
        let name = name.ok_or_else(|| self.need_name("a rootfs import needs --name"))?;
        let file = File::open(tar_path).map_err(io_err("open", tar_path))?;
        validate_tar(file).map_err(|e| self.bad(format!("not a valid tar archive: {e}")))?;
        let layer = match staged {
            Some(d) => (d, staging.size(&d).unwrap_or(0)),
            None => {
                let mut w = staging.writer().map_err(self.st())?;
                let f = File::open(tar_path).map_err(io_err("open", tar_path))?;
                self.copy_limited(f, &mut w, "the tar")?;
                w.finish(None, "rootfs tar").map_err(self.st())?
            }
        };
        let arch = (self.opts.architecture.clone(), None);
        self.single_layer_image(staging, layer, arch, BTreeMap::new(), name.clone())
    }

    fn rootfs_dir(
        &self,
        staging: Staging,
        name: Option<&ImageRef>,
    ) -> Result<Vec<Imported>, ImportError> {
        let name = name.ok_or_else(|| self.need_name("a rootfs import needs --name"))?;
        let w = staging.writer().map_err(self.st())?;
        let mut builder = tar::Builder::new(w);
        let mut budget = self.opts.max_blob_size;
        self.append_dir(&mut builder, self.input, &mut PathBuf::new(), &mut budget)?;
        let w = builder.into_inner().map_err(io_err("write the layer for", self.input))?;
        let layer = w.finish(None, "rootfs layer").map_err(self.st())?;
        let arch = (self.opts.architecture.clone(), None);
        self.single_layer_image(staging, layer, arch, BTreeMap::new(), name.clone())
    }

    /// Appends the children of `dir` (at `rel` inside the layer), sorted, depth first.
    fn append_dir(
        &self,
        b: &mut tar::Builder<BlobWriter>,
        dir: &Path,
        rel: &mut PathBuf,
        budget: &mut u64,
    ) -> Result<(), ImportError> {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(dir)
            .map_err(io_err("list", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("list", dir))?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        let mtime = self.opts.source_date.secs();
        for n in names {
            let path = dir.join(&n);
            rel.push(&n);
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            let ft = meta.file_type();
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(mtime);
            h.set_size(0);
            let werr = io_err("write the layer entry for", &path);
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                let mut with_slash = rel.clone().into_os_string();
                with_slash.push("/");
                b.append_data(&mut h, Path::new(&with_slash), io::empty()).map_err(werr)?;
                self.append_dir(b, &path, rel, budget)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("read link", &path))?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                b.append_link(&mut h, &*rel, &target).map_err(werr)?;
            } else if ft.is_file() {
                let size = meta.len();
                *budget = budget.checked_sub(size).ok_or_else(|| ImportError::TooLarge {
                    input: self.input.to_path_buf(),
                    what: "the directory's content".into(),
                    limit: self.opts.max_blob_size,
                })?;
                let exec = meta.permissions().mode() & 0o111 != 0;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if exec { 0o755 } else { 0o644 });
                h.set_size(size);
                let f = File::open(&path).map_err(io_err("open", &path))?;
                // Exactly `size` bytes: a file that changes while read must not corrupt the tar.
                let exact = ExactLen { inner: f.take(size), remaining: size };
                b.append_data(&mut h, &*rel, exact).map_err(werr)?;
            } else {
                return Err(self.bad(format!(
                    "{} is a device, socket or FIFO, which a root filesystem import does not take",
                    path.display()
                )));
            }
            rel.pop();
        }
        Ok(())
    }

    fn deb(&self, staging: Staging, name: Option<&ImageRef>) -> Result<Vec<Imported>, ImportError> {
        let f = File::open(self.input).map_err(io_err("open", self.input))?;
        let mut w = staging.writer().map_err(self.st())?;
        let control = deb::extract(f, &mut w, self.opts.max_blob_size)
            .map_err(|source| ImportError::Deb { input: self.input.to_path_buf(), source })?;
        let (ld, lsize) = w.finish(None, "data.tar").map_err(self.st())?;
        validate_tar(staging.open(&ld).map_err(self.st())?)
            .map_err(|e| self.bad(format!("data.tar is not a valid tar archive: {e}")))?;
        let platform = deb::oci_platform(&control.architecture, &self.opts.architecture)
            .ok_or_else(|| {
                self.bad(format!("unknown Debian architecture {:?}", control.architecture))
            })?;
        let name = match name {
            Some(n) => n.clone(),
            None => {
                let n = deb::default_name(&control);
                ImageRef::parse(&n)
                    .map_err(|e| self.bad(format!("cannot derive a name from the package: {e}")))?
            }
        };
        let labels: BTreeMap<String, String> = [
            ("dev.cairn.deb.package", control.package.clone()),
            ("dev.cairn.deb.version", control.version.clone()),
            ("dev.cairn.deb.architecture", control.architecture.clone()),
            ("dev.cairn.deb.control", control.text.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.single_layer_image(staging, (ld, lsize), platform, labels, name)
    }
}

/// Resolves `.` and `..` in a `/`-separated path; `None` when it climbs above the root.
fn resolve_dots(path: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(path).ok()?;
    let mut out: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// Reads a whole tar archive, checking every header and that every entry's data is all there.
fn validate_tar(r: impl Read) -> io::Result<()> {
    let mut ar = tar::Archive::new(io::BufReader::new(r));
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
    Ok(())
}

/// A reader that yields exactly `remaining` bytes or fails.
struct ExactLen<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read",
            ));
        }
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

struct BlobRef {
    media_type: &'static str,
    digest: Digest,
    size: u64,
}

/// A deterministic OCI image manifest.
fn manifest_json(config: BlobRef, layers: Vec<BlobRef>) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Desc {
        media_type: &'static str,
        digest: Digest,
        size: u64,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest {
        schema_version: u32,
        media_type: &'static str,
        config: Desc,
        layers: Vec<Desc>,
    }
    let d = |b: BlobRef| Desc { media_type: b.media_type, digest: b.digest, size: b.size };
    let m = Manifest {
        schema_version: 2,
        media_type: MT_OCI_MANIFEST,
        config: d(config),
        layers: layers.into_iter().map(d).collect(),
    };
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_vec(&m).unwrap_or_default()
}

/// A deterministic image config: no `created`, no history, labels sorted.
#[derive(Serialize)]
struct ConfigOut {
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: &'static str,
    config: ConfigInner,
    rootfs: RootFsOut,
}

#[derive(Serialize)]
struct ConfigInner {
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootFsOut {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<Digest>,
}
