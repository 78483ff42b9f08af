//! Attestations attached to an image as OCI 1.1 artifacts, and reading them back.
//!
//! Each DSSE envelope of `NAME.intoto.jsonl` becomes an artifact with artifactType
//! [`ARTIFACT_DSSE`]; each Sigstore bundle of `NAME.sigstore.json` one with
//! [`ARTIFACT_SIGSTORE_BUNDLE`]. An artifact is an image manifest with the empty config, one
//! layer (the envelope or bundle JSON), the image manifest as `subject`, and annotations
//! naming the file it came from and its position there, so the files can be rebuilt in
//! order. The artifact manifests carry no time, so pushing twice makes the same digests and
//! adds no duplicate referrers.
//!
//! Registries with the referrers API index artifacts themselves (they answer the manifest
//! `PUT` with `OCI-Subject`). For the others the distribution spec's fallback is kept: an OCI
//! index tagged `sha256-<hex of the subject>` listing the referrers.

use std::path::{Path, PathBuf};

use super::client::Repo;
use super::{Desc, Options, Registry, RegistryError};
use crate::digest::Digest;
use crate::oci::{MT_OCI_INDEX, MT_OCI_MANIFEST};
use crate::reference::ImageRef;
use crate::sign::{bundle, dsse};

/// artifactType of an attached DSSE envelope (in-toto attestation).
pub const ARTIFACT_DSSE: &str = "application/vnd.in-toto+json";
/// artifactType and layer media type of an attached Sigstore bundle.
pub const ARTIFACT_SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Layer media type of a DSSE envelope.
const MT_DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_JSON: &[u8] = b"{}";
const ANN_TITLE: &str = "org.opencontainers.image.title";
/// Position of the envelope or bundle in its file.
const ANN_POSITION: &str = "dev.cairn.attestation.position";
/// Largest attestation layer read back.
const MAX_ATTESTATION: u64 = 16 * 1024 * 1024;

/// One artifact to attach: its type, its file name, position and content.
pub(crate) struct Artifact {
    pub artifact_type: &'static str,
    pub file: String,
    pub position: usize,
    pub content: Vec<u8>,
}

impl Artifact {
    /// Splits `NAME.intoto.jsonl` and `NAME.sigstore.json` into artifacts (envelopes and
    /// bundles are parsed, so only well-formed ones are attached).
    pub(crate) fn from_files(dir: &Path, name: &str) -> Result<Vec<Artifact>, RegistryError> {
        let jsonl = format!("{name}.intoto.jsonl");
        let envelopes = split(dir, &jsonl, |b| {
            dsse::parse_jsonl(b).map(|v| v.iter().map(|e| e.to_json_line()).collect())
        })?;
        let sigstore = format!("{name}.sigstore.json");
        let bundles = split(dir, &sigstore, |b| {
            bundle::parse_collection(b).map(|v| v.iter().map(|e| e.to_json()).collect())
        })?;
        let mut out = Vec::new();
        for (artifact_type, file, contents) in
            [(ARTIFACT_DSSE, jsonl, envelopes), (ARTIFACT_SIGSTORE_BUNDLE, sigstore, bundles)]
        {
            for (position, content) in contents.into_iter().enumerate() {
                let content = content.into_bytes();
                out.push(Artifact { artifact_type, file: file.clone(), position, content });
            }
        }
        Ok(out)
    }

    fn layer_media_type(&self) -> &'static str {
        if self.artifact_type == ARTIFACT_DSSE {
            MT_DSSE_ENVELOPE
        } else {
            ARTIFACT_SIGSTORE_BUNDLE
        }
    }
}

/// The elements of the attestation file `dir/file` (none when it does not exist), each
/// parsed and rendered again.
fn split<E: std::fmt::Display>(
    dir: &Path,
    file: &str,
    parse: impl Fn(&[u8]) -> Result<Vec<String>, E>,
) -> Result<Vec<String>, RegistryError> {
    match read_optional(&dir.join(file))? {
        Some(bytes) => parse(&bytes).map_err(|e| RegistryError::invalid(file, e.to_string())),
        None => Ok(Vec::new()),
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, RegistryError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::io("read", path)(e)),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest {
    schema_version: u32,
    media_type: String,
    artifact_type: String,
    config: Desc,
    layers: Vec<Desc>,
    subject: Desc,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: String,
    manifests: Vec<Desc>,
}

/// Attaches `artifacts` to `subject` in `repo`. Returns how many referrers were new.
pub(crate) fn attach(
    repo: &Repo<'_>,
    subject: &Desc,
    artifacts: &[Artifact],
) -> Result<usize, RegistryError> {
    let empty = Desc::new(MT_EMPTY, Digest::of(EMPTY_JSON), EMPTY_JSON.len() as u64);
    let hidden = indicatif::ProgressBar::hidden();
    let mut fallback: Vec<Desc> = Vec::new();
    let mut added = 0;
    for a in artifacts {
        let layer_desc = {
            let mut d =
                Desc::new(a.layer_media_type(), Digest::of(&a.content), a.content.len() as u64);
            d.annotations.insert(ANN_TITLE.into(), a.file.clone());
            d
        };
        repo.push_blob(
            super::transport::Payload::Bytes(EMPTY_JSON),
            &empty,
            u64::MAX,
            &[],
            &hidden,
        )?;
        repo.push_blob(
            super::transport::Payload::Bytes(&a.content),
            &layer_desc,
            u64::MAX,
            &[],
            &hidden,
        )?;
        let annotations = [
            (ANN_TITLE.to_string(), a.file.clone()),
            (ANN_POSITION.to_string(), a.position.to_string()),
        ]
        .into_iter()
        .collect();
        let manifest = ArtifactManifest {
            schema_version: 2,
            media_type: MT_OCI_MANIFEST.into(),
            artifact_type: a.artifact_type.into(),
            config: empty.clone(),
            layers: vec![layer_desc],
            subject: Desc::new(&subject.media_type, subject.digest, subject.size),
            annotations,
        };
        let bytes = crate::store::canonical_json(&manifest)
            .map_err(|e| RegistryError::invalid("artifact manifest", e.to_string()))?;
        let digest = Digest::of(&bytes);
        let mut desc = Desc::new(MT_OCI_MANIFEST, digest, bytes.len() as u64);
        desc.artifact_type = Some(a.artifact_type.into());
        desc.annotations = manifest.annotations.clone();
        let api = if repo.has_manifest(&digest.to_string())? {
            // Already pushed: whether the registry indexes it is seen on the tag below.
            false
        } else {
            added += 1;
            repo.put_manifest(&digest.to_string(), MT_OCI_MANIFEST, &bytes)?.is_some()
        };
        if !api {
            fallback.push(desc);
        }
    }
    if fallback.is_empty() || repo.referrers_api(&subject.digest)?.is_some() {
        return Ok(added);
    }
    // The referrers tag schema: merge into the index tagged sha256-<hex>, without duplicates.
    let tag = format!("sha256-{}", subject.digest.hex());
    let mut index = match repo.get_manifest(&tag, None)? {
        Some(m) => serde_json::from_slice::<Index>(&m.bytes)
            .map_err(|e| RegistryError::invalid(format!("referrers index {tag}"), e.to_string()))?,
        None => Index { schema_version: 2, media_type: MT_OCI_INDEX.into(), manifests: Vec::new() },
    };
    let before = index.manifests.len();
    for d in fallback {
        if !index.manifests.iter().any(|m| m.digest == d.digest) {
            index.manifests.push(d);
        }
    }
    if index.manifests.len() != before {
        let bytes = crate::store::canonical_json(&index)
            .map_err(|e| RegistryError::invalid("referrers index", e.to_string()))?;
        repo.put_manifest(&tag, MT_OCI_INDEX, &bytes)?;
    }
    Ok(added)
}

/// The referrers of `subject` in `repo`: through the API, else the tag schema.
fn list(repo: &Repo<'_>, subject: &Digest) -> Result<Vec<Desc>, RegistryError> {
    let bytes = match repo.referrers_api(subject)? {
        Some(b) => b,
        None => match repo.get_manifest(&format!("sha256-{}", subject.hex()), None)? {
            Some(m) => m.bytes,
            None => return Ok(Vec::new()),
        },
    };
    let index: Index = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::invalid(format!("referrers of {subject}"), e.to_string()))?;
    Ok(index.manifests)
}

/// Downloads the attestations attached to `subject` in `reference`'s repository and writes
/// them into `dir` as the files `cairn verify DIR` reads (`NAME.intoto.jsonl`,
/// `NAME.sigstore.json`, as they were pushed). Every manifest and layer is verified against
/// its digest, and each artifact must name `subject`. Returns the files written (sorted).
pub fn fetch_referrers(
    reference: &ImageRef,
    subject: &Digest,
    dir: &Path,
    options: &Options,
) -> Result<Vec<PathBuf>, RegistryError> {
    let reg = Registry::connect(reference.registry(), options)?;
    let repo = Repo::new(&reg, reference.repository(), false);
    let mut files: std::collections::BTreeMap<String, Vec<(usize, String, Vec<u8>)>> =
        Default::default();
    for desc in list(&repo, subject)? {
        let Some(kind) = desc.artifact_type.clone() else { continue };
        if kind != ARTIFACT_DSSE && kind != ARTIFACT_SIGSTORE_BUNDLE {
            continue;
        }
        let Some(m) = repo.get_manifest(&desc.digest.to_string(), Some(&desc))? else { continue };
        let manifest: ArtifactManifest = serde_json::from_slice(&m.bytes).map_err(|e| {
            RegistryError::invalid(format!("artifact {}", desc.digest), e.to_string())
        })?;
        if manifest.subject.digest != *subject {
            return Err(RegistryError::Verification {
                registry: reg.name.clone(),
                what: format!("artifact {}", desc.digest),
                reason: format!("its subject is {}, not {subject}", manifest.subject.digest),
            });
        }
        let (Some(layer), Some(file), Some(position)) = (
            manifest.layers.first(),
            manifest.annotations.get(ANN_TITLE),
            manifest.annotations.get(ANN_POSITION).and_then(|p| p.parse::<usize>().ok()),
        ) else {
            continue;
        };
        // Only plain file names of the two kinds: the annotation must not choose a path.
        let suffix = if kind == ARTIFACT_DSSE { ".intoto.jsonl" } else { ".sigstore.json" };
        if !file.ends_with(suffix) || crate::output_name::OutputName::parse(file).is_err() {
            continue;
        }
        let content = repo.get_blob_bytes(layer, MAX_ATTESTATION)?;
        files.entry(file.clone()).or_default().push((position, kind, content));
    }
    std::fs::create_dir_all(dir).map_err(RegistryError::io("create directory", dir))?;
    let mut written = Vec::new();
    for (file, mut parts) in files {
        parts.sort_by_key(|p| p.0);
        parts.dedup_by_key(|p| p.0);
        let contents = parts.iter().map(|p| p.2.as_slice());
        let bytes = if file.ends_with(".intoto.jsonl") {
            join(&file, contents, dsse::Envelope::from_json, dsse::to_jsonl)?
        } else {
            join(&file, contents, bundle::Bundle::from_json, bundle::to_collection)?
        };
        let path = dir.join(&file);
        crate::atomic::write_atomic(&path, &bytes).map_err(RegistryError::io("write", &path))?;
        written.push(path);
    }
    Ok(written)
}

/// Parses each element and renders the file they make, as the build wrote it.
fn join<'a, T, E: std::fmt::Display>(
    file: &str,
    contents: impl Iterator<Item = &'a [u8]>,
    parse: impl Fn(&[u8]) -> Result<T, E>,
    render: impl Fn(&[T]) -> String,
) -> Result<Vec<u8>, RegistryError> {
    let items = contents
        .map(parse)
        .collect::<Result<Vec<T>, E>>()
        .map_err(|e| RegistryError::invalid(file, e.to_string()))?;
    Ok(render(&items).into_bytes())
}
