//! Hashing artifacts on disk: a file's sha256, or for an OCI image layout directory the
//! digest of its manifest after every blob in it has been checked.
//!
//! Each file is read once, in [`CHUNK`]-byte reads, straight into SHA-256 (sha2 picks the
//! SHA-NI instructions at run time when the CPU has them).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::digest::{Digest, Hasher};
use crate::oci::strict::{Index, Manifest};

/// Read size for hashing.
pub const CHUNK: usize = 1024 * 1024;

/// Largest JSON document of an OCI layout (index, manifest) read into memory.
const MAX_OCI_JSON: u64 = 4 * 1024 * 1024;

/// Why an artifact has no digest, or a file could not be read. The messages are the details
/// of failed checks in the verify report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is a symbolic link")]
    Symlink,
    #[error("is not a regular file")]
    NotRegular,
    #[error("is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    /// `what` is the part of the OCI layout the cause is about.
    #[error("{what}: {source}")]
    In { what: String, source: Box<ArtifactError> },
    #[error("{what}: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("an OCI layout holds exactly blobs/, index.json and oci-layout; found {found}")]
    LayoutEntries { found: String },
    #[error("oci-layout is not {{\"imageLayoutVersion\":\"1.0.0\"}}")]
    LayoutVersion,
    /// A field of `index.json` or the manifest has a value cairn never writes.
    #[error("{file}: {problem}")]
    Unexpected { file: &'static str, problem: &'static str },
    #[error("index.json names {count} manifests; a cairn OCI output has exactly one")]
    ManifestCount { count: usize },
    #[error("index.json: manifest media type {0:?}")]
    ManifestMediaType(String),
    #[error("blobs/ must hold only sha256/; found {found}")]
    BlobAlgorithms { found: String },
    #[error(
        "blobs/sha256 differs from what the manifest references (extra: {extra:?}; missing: {missing:?})"
    )]
    BlobSet { extra: Vec<String>, missing: Vec<String> },
    #[error("blob {0} is not a regular file")]
    BlobNotRegular(String),
    /// `what` names the blob (`manifest blob sha256:…`, `blob sha256:…`).
    #[error("{what} does not match its digest or size")]
    BlobMismatch { what: String },
}

impl ArtifactError {
    fn within(what: impl Into<String>) -> impl FnOnce(ArtifactError) -> ArtifactError {
        let what = what.into();
        move |e| ArtifactError::In { what, source: Box::new(e) }
    }
}

/// Whether [`read_bounded`] follows a symbolic link or refuses it (as not a regular file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// The bytes of a regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, ArtifactError> {
    let meta = match links {
        Links::Follow => std::fs::metadata(path)?,
        Links::Refuse => std::fs::symlink_metadata(path)?,
    };
    if !meta.is_file() {
        return Err(ArtifactError::NotRegular);
    }
    if meta.len() > limit {
        return Err(ArtifactError::TooLarge { size: meta.len(), limit });
    }
    Ok(std::fs::read(path)?)
}

/// The sha256 and length of a regular file, read once.
pub fn hash_file(path: &Path) -> Result<(Digest, u64), ArtifactError> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    let len = hasher.len();
    Ok((hasher.finish(), len))
}

/// The digest a subject has on disk: a regular file's sha256, or for an OCI image layout
/// directory the digest of the manifest its `index.json` names, after checking the layout
/// holds exactly that manifest's blobs, each matching its digest and size. Symbolic links
/// and other file types are refused.
///
/// `cairn sign` and `cairn verify` both use this, so they agree on what a subject's digest is.
pub fn subject_digest(path: &Path) -> Result<Digest, ArtifactError> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(ArtifactError::Symlink);
    }
    if meta.is_dir() {
        return oci_layout_digest(path);
    }
    if !meta.is_file() {
        return Err(ArtifactError::NotRegular);
    }
    hash_file(path).map(|(d, _)| d)
}

/// A small JSON document of the layout, parsed; errors name `what`.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, ArtifactError> {
    let bytes =
        read_bounded(path, MAX_OCI_JSON, Links::Refuse).map_err(ArtifactError::within(what))?;
    serde_json::from_slice(&bytes).map_err(|source| ArtifactError::Json { what, source })
}

/// File names in `dir`, lossily decoded.
fn names_in(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        out.push(e?.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}

/// See [`subject_digest`].
fn oci_layout_digest(dir: &Path) -> Result<Digest, ArtifactError> {
    let mut top = names_in(dir)?;
    top.sort();
    if top != ["blobs", "index.json", "oci-layout"] {
        return Err(ArtifactError::LayoutEntries { found: top.join(", ") });
    }
    let layout: serde_json::Value = read_json(&dir.join("oci-layout"), "oci-layout")?;
    if layout != serde_json::json!({"imageLayoutVersion": "1.0.0"}) {
        return Err(ArtifactError::LayoutVersion);
    }
    let index: Index = read_json(&dir.join("index.json"), "index.json")?;
    let unexpected = |problem| ArtifactError::Unexpected { file: "index.json", problem };
    if index.schema_version != 2 {
        return Err(unexpected("schemaVersion is not 2"));
    }
    if index.media_type.as_deref().is_some_and(|m| m != crate::oci::MT_OCI_INDEX) {
        return Err(unexpected("unexpected mediaType"));
    }
    let [m] = index.manifests.as_slice() else {
        return Err(ArtifactError::ManifestCount { count: index.manifests.len() });
    };
    if m.media_type != crate::oci::MT_OCI_MANIFEST {
        return Err(ArtifactError::ManifestMediaType(m.media_type.clone()));
    }
    if m.annotations.keys().any(|k| k != crate::oci::ANNOTATION_REF_NAME) {
        return Err(unexpected("unexpected manifest annotations"));
    }
    let _ = &m.platform;
    let blobs_dir = dir.join("blobs");
    let algs = names_in(&blobs_dir).map_err(|e| ArtifactError::within("blobs")(e.into()))?;
    if algs != ["sha256"] {
        return Err(ArtifactError::BlobAlgorithms { found: algs.join(", ") });
    }
    let sha_dir = blobs_dir.join("sha256");
    let present: BTreeSet<String> = names_in(&sha_dir)
        .map_err(|e| ArtifactError::within("blobs/sha256")(e.into()))?
        .into_iter()
        .collect();
    let manifest_bytes = read_bounded(&sha_dir.join(m.digest.hex()), MAX_OCI_JSON, Links::Refuse)
        .map_err(ArtifactError::within(format!("manifest blob {}", m.digest)))?;
    if Digest::of(&manifest_bytes) != m.digest || manifest_bytes.len() as u64 != m.size {
        return Err(ArtifactError::BlobMismatch { what: format!("manifest blob {}", m.digest) });
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|source| ArtifactError::Json { what: "manifest", source })?;
    if manifest.schema_version != 2
        || manifest.media_type.as_deref().is_some_and(|t| t != crate::oci::MT_OCI_MANIFEST)
    {
        return Err(ArtifactError::Unexpected {
            file: "manifest",
            problem: "unexpected schemaVersion or mediaType",
        });
    }
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    expected.insert(m.digest.hex(), m.size);
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        expected.insert(d.digest.hex(), d.size);
        let _ = (&d.media_type, &d.annotations, &d.platform);
    }
    let wanted: BTreeSet<&String> = expected.keys().collect();
    if present.iter().ne(wanted.iter().copied()) {
        return Err(ArtifactError::BlobSet {
            extra: present.iter().filter(|p| !expected.contains_key(*p)).cloned().collect(),
            missing: wanted
                .iter()
                .filter(|w| !present.contains(**w))
                .map(|w| (*w).clone())
                .collect(),
        });
    }
    for (hex, size) in &expected {
        if *hex == m.digest.hex() {
            continue;
        }
        let path = sha_dir.join(hex);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| ArtifactError::within(format!("blob {hex}"))(e.into()))?;
        if !meta.is_file() {
            return Err(ArtifactError::BlobNotRegular(hex.clone()));
        }
        let (d, len) = hash_file(&path).map_err(ArtifactError::within(format!("blob {hex}")))?;
        if d.hex() != *hex || len != *size {
            return Err(ArtifactError::BlobMismatch { what: format!("blob sha256:{hex}") });
        }
    }
    Ok(m.digest)
}
