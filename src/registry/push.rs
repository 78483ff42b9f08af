//! OCI layout → registry: blobs the repository lacks (each verified locally first), the
//! manifests, then the signed attestations found beside the layout as referrers.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::client::Repo;
use super::referrers::{Artifact, attach};
use super::transport::Payload;
use super::{Desc, Options, Progress, Registry, RegistryError, parallel};
use crate::digest::{Digest, HashingReader};
use crate::oci::{MT_DOCKER_LIST, MT_OCI_INDEX};
use crate::reference::ImageRef;
use crate::store::MAX_JSON_BLOB;

/// How a push behaves.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Blobs larger than this go up in chunks of this size (`PATCH`); smaller ones in one `PUT`.
    pub chunk_size: u64,
    /// Repositories on the same registry to try cross-repository mounts from.
    pub mount_from: Vec<String>,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions { chunk_size: 256 * 1024 * 1024, mount_from: Vec::new() }
    }
}

/// What [`push_layout`] did.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The reference pushed to, with the digest of what it names.
    pub reference: ImageRef,
    pub digest: Digest,
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    /// Attestation artifacts attached (0 when they were all there already).
    pub referrers_added: usize,
    /// The attestation files that were attached.
    pub attestations: Vec<PathBuf>,
}

#[derive(serde::Deserialize)]
struct Children {
    #[serde(default)]
    manifests: Vec<Desc>,
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
}

/// Pushes the single image of the OCI layout `layout` (`out/NAME.oci`) to `reference`, and
/// attaches `NAME.intoto.jsonl` and `NAME.sigstore.json` from the layout's directory.
pub fn push_layout(
    layout: &Path,
    reference: &ImageRef,
    push: &PushOptions,
    options: &Options,
    progress: &Progress,
) -> Result<Pushed, RegistryError> {
    let read_json = |rel: &str| -> Result<Vec<u8>, RegistryError> {
        let path = layout.join(rel);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_JSON_BLOB + 1).read_to_end(&mut bytes))
            .map_err(RegistryError::io("read", &path))?;
        Ok(bytes)
    };
    let bad =
        |reason: String| RegistryError::invalid(format!("OCI layout {}", layout.display()), reason);
    read_json("oci-layout")?;
    let index: Children = serde_json::from_slice(&read_json("index.json")?)
        .map_err(|e| bad(format!("index.json: {e}")))?;
    let top = match index.manifests.as_slice() {
        [one] => one.clone(),
        other => {
            return Err(bad(format!(
                "index.json lists {} images, push needs exactly one",
                other.len()
            )));
        }
    };
    if let Some(d) = reference.digest()
        && *d != top.digest
    {
        return Err(bad(format!("the image is {}, not {d} as the reference says", top.digest)));
    }
    let blob_path = |d: &Digest| layout.join("blobs").join("sha256").join(d.hex());

    // Every manifest (top first) and every blob, each read from the layout verified.
    let mut manifests: Vec<(Desc, Vec<u8>)> = Vec::new();
    let mut blobs: Vec<Desc> = Vec::new();
    let mut queue = vec![top.clone()];
    while let Some(desc) = queue.pop() {
        let bytes = read_verified(&blob_path(&desc.digest), &desc, MAX_JSON_BLOB)?;
        let children: Children = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("manifest {}: {e}", desc.digest)))?;
        if desc.media_type == MT_OCI_INDEX || desc.media_type == MT_DOCKER_LIST {
            queue.extend(children.manifests);
        } else {
            blobs.extend(children.config);
            blobs.extend(children.layers);
        }
        manifests.push((desc, bytes));
    }
    let mut seen = std::collections::BTreeSet::new();
    blobs.retain(|b| seen.insert(b.digest));
    for b in &blobs {
        check_file(&blob_path(&b.digest), b)?;
    }

    let reg = Registry::connect(reference.registry(), options)?;
    let repo = Repo::new(&reg, reference.repository(), true);
    let uploaded = std::sync::Mutex::new((0usize, 0u64));
    parallel(blobs, options.jobs, |b| {
        let hex = b.digest.hex();
        let bar = progress.bar(hex.get(..12).unwrap_or(&hex).to_string(), b.size);
        let path = blob_path(&b.digest);
        let sent =
            repo.push_blob(Payload::File(&path), &b, push.chunk_size, &push.mount_from, &bar);
        bar.finish_and_clear();
        if sent? && let Ok(mut u) = uploaded.lock() {
            u.0 += 1;
            u.1 += b.size;
        }
        Ok(())
    })?;
    // Children before parents, so the registry never holds a manifest with missing parts.
    for (desc, bytes) in manifests.iter().rev() {
        let target = if desc.digest == top.digest {
            reference.tag().map_or_else(|| desc.digest.to_string(), str::to_string)
        } else {
            desc.digest.to_string()
        };
        let exists = if target == desc.digest.to_string() {
            repo.has_manifest(&target)?
        } else {
            repo.get_manifest(&target, None)?.is_some_and(|m| m.digest == desc.digest)
        };
        if !exists {
            repo.put_manifest(&target, &desc.media_type, bytes)?;
        }
    }

    let name = layout
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.strip_suffix(".oci").unwrap_or(n).to_string())
        .unwrap_or_default();
    let dir = layout.parent().unwrap_or(Path::new("."));
    let artifacts = Artifact::from_files(dir, &name)?;
    let subject = Desc::new(&top.media_type, top.digest, top.size);
    let referrers_added = attach(&repo, &subject, &artifacts)?;
    let mut attestations: Vec<PathBuf> = artifacts.iter().map(|a| dir.join(&a.file)).collect();
    attestations.dedup();
    let (blobs_uploaded, bytes_uploaded) = uploaded.into_inner().unwrap_or_default();
    let pushed = reference.with_digest(top.digest);
    progress.line(&format!(
        "pushed {pushed} ({blobs_uploaded} blobs, {bytes_uploaded} bytes uploaded, {referrers_added} attestations attached)"
    ));
    Ok(Pushed {
        reference: pushed,
        digest: top.digest,
        blobs_uploaded,
        bytes_uploaded,
        referrers_added,
        attestations,
    })
}

/// Reads a small blob of the layout and checks it against its descriptor.
fn read_verified(path: &Path, desc: &Desc, limit: u64) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(RegistryError::io("read", path))?;
    if bytes.len() as u64 != desc.size || Digest::of(&bytes) != desc.digest {
        return Err(corrupt(path, desc));
    }
    Ok(bytes)
}

/// Hashes a blob file of the layout: a corrupt layout is never pushed.
fn check_file(path: &Path, desc: &Desc) -> Result<(), RegistryError> {
    let file = std::fs::File::open(path).map_err(RegistryError::io("open", path))?;
    let mut r = HashingReader::new(file);
    std::io::copy(&mut r, &mut std::io::sink()).map_err(RegistryError::io("read", path))?;
    let (digest, size) = r.finish();
    if digest != desc.digest || size != desc.size {
        return Err(corrupt(path, desc));
    }
    Ok(())
}

fn corrupt(path: &Path, desc: &Desc) -> RegistryError {
    RegistryError::invalid(
        path.display().to_string(),
        format!("it does not match its descriptor ({}, {} bytes)", desc.digest, desc.size),
    )
}
