//! Hashing artifacts on disk: a file's sha256, or for an OCI image layout directory the
//! digest of its manifest after every blob in it has been checked.
//!
//! Each file is read once, in [`CHUNK`]-byte reads, straight into SHA-256 (sha2 picks the
//! SHA-NI instructions at run time when the CPU has them).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::digest::{Digest, Hasher};
use crate::oci::strict::{Index, Manifest};

/// Read size for hashing.
pub const CHUNK: usize = 1024 * 1024;

/// Largest JSON document of an OCI layout (index, manifest) read into memory.
const MAX_OCI_JSON: u64 = 4 * 1024 * 1024;

/// The sha256 and length of a regular file, read once.
pub fn hash_file(path: &Path) -> Result<(Digest, u64), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
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
pub fn subject_digest(path: &Path) -> Result<Digest, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("is a symbolic link".into());
    }
    if meta.is_dir() {
        return oci_layout_digest(path);
    }
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    hash_file(path).map(|(d, _)| d)
}

fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > MAX_OCI_JSON {
        return Err(format!("is {} bytes, more than {MAX_OCI_JSON}", meta.len()));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// See [`subject_digest`].
fn oci_layout_digest(dir: &Path) -> Result<Digest, String> {
    let mut top: Vec<String> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        top.push(e.file_name().to_string_lossy().into_owned());
    }
    top.sort();
    if top != ["blobs", "index.json", "oci-layout"] {
        return Err(format!(
            "an OCI layout holds exactly blobs/, index.json and oci-layout; found {}",
            top.join(", ")
        ));
    }
    let layout = read_small(&dir.join("oci-layout")).map_err(|e| format!("oci-layout: {e}"))?;
    let layout: serde_json::Value =
        serde_json::from_slice(&layout).map_err(|e| format!("oci-layout: {e}"))?;
    if layout != serde_json::json!({"imageLayoutVersion": "1.0.0"}) {
        return Err("oci-layout is not {\"imageLayoutVersion\":\"1.0.0\"}".into());
    }
    let index = read_small(&dir.join("index.json")).map_err(|e| format!("index.json: {e}"))?;
    let index: Index = serde_json::from_slice(&index).map_err(|e| format!("index.json: {e}"))?;
    if index.schema_version != 2 {
        return Err("index.json: schemaVersion is not 2".into());
    }
    if index.media_type.as_deref().is_some_and(|m| m != crate::oci::MT_OCI_INDEX) {
        return Err("index.json: unexpected mediaType".into());
    }
    let [m] = index.manifests.as_slice() else {
        return Err(format!(
            "index.json names {} manifests; a cairn OCI output has exactly one",
            index.manifests.len()
        ));
    };
    if m.media_type != crate::oci::MT_OCI_MANIFEST {
        return Err(format!("index.json: manifest media type {:?}", m.media_type));
    }
    if m.annotations.keys().any(|k| k != crate::oci::ANNOTATION_REF_NAME) {
        return Err("index.json: unexpected manifest annotations".into());
    }
    let _ = &m.platform;
    let blobs_dir = dir.join("blobs");
    let mut algs: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&blobs_dir).map_err(|e| format!("blobs: {e}"))? {
        algs.push(e.map_err(|e| e.to_string())?.file_name().to_string_lossy().into_owned());
    }
    if algs != ["sha256"] {
        return Err(format!("blobs/ must hold only sha256/; found {}", algs.join(", ")));
    }
    let sha_dir = blobs_dir.join("sha256");
    let mut present: BTreeMap<String, ()> = BTreeMap::new();
    for e in std::fs::read_dir(&sha_dir).map_err(|e| format!("blobs/sha256: {e}"))? {
        present
            .insert(e.map_err(|e| e.to_string())?.file_name().to_string_lossy().into_owned(), ());
    }
    let manifest_bytes = read_small(&sha_dir.join(m.digest.hex()))
        .map_err(|e| format!("manifest blob {}: {e}", m.digest))?;
    if Digest::of(&manifest_bytes) != m.digest || manifest_bytes.len() as u64 != m.size {
        return Err(format!("manifest blob {} does not match its digest or size", m.digest));
    }
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| format!("manifest: {e}"))?;
    if manifest.schema_version != 2
        || manifest.media_type.as_deref().is_some_and(|t| t != crate::oci::MT_OCI_MANIFEST)
    {
        return Err("manifest: unexpected schemaVersion or mediaType".into());
    }
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    expected.insert(m.digest.hex(), m.size);
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        expected.insert(d.digest.hex(), d.size);
        let _ = (&d.media_type, &d.annotations, &d.platform);
    }
    let present: Vec<&String> = present.keys().collect();
    let wanted: Vec<&String> = expected.keys().collect();
    if present != wanted {
        let extra: Vec<&&String> = present.iter().filter(|p| !expected.contains_key(**p)).collect();
        let missing: Vec<&&String> = wanted.iter().filter(|w| !present.contains(w)).collect();
        return Err(format!(
            "blobs/sha256 differs from what the manifest references (extra: {extra:?}; missing: {missing:?})"
        ));
    }
    for (hex, size) in &expected {
        if *hex == m.digest.hex() {
            continue;
        }
        let path = sha_dir.join(hex);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("blob {hex}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("blob {hex} is not a regular file"));
        }
        let (d, len) = hash_file(&path).map_err(|e| format!("blob {hex}: {e}"))?;
        if d.hex() != *hex || len != *size {
            return Err(format!("blob sha256:{hex} does not match its digest or size"));
        }
    }
    Ok(m.digest)
}
