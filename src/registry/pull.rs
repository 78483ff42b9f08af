//! Registry → store: resolve a reference (tag → digest, index → platform manifest), bring
//! the manifest, config and layers the store lacks, verified, and name the image.
//!
//! The name points at the platform manifest, not at a multi-platform index: the store holds
//! only what cairn builds from, and every image it names is complete. The index blob is kept
//! too (unnamed), so a reference pinned to the index digest resolves in the store.

use std::collections::BTreeMap;

use super::client::{Manifest, Repo};
use super::{Desc, Options, Progress, Registry, RegistryError, parallel};
use crate::digest::Digest;
use crate::lock::Lockfile;
use crate::oci::Kind;
use crate::reference::ImageRef;
use crate::store::{Store, classify, make_descriptor};

/// A reference resolved on its registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The reference as given, normalized.
    pub reference: ImageRef,
    /// What the reference names: an index or a manifest.
    pub digest: Digest,
    /// The index the platform manifest was picked from, when the top is an index.
    pub index: Option<Digest>,
    /// `os/architecture` of the chosen manifest.
    pub platform: String,
    pub manifest: Desc,
    pub config: Desc,
    pub layers: Vec<Desc>,
}

/// What [`pull`] did.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The name tagged in the store.
    pub name: ImageRef,
    /// The digest the name points at (the platform manifest).
    pub digest: Digest,
    pub resolved: ResolvedImage,
    /// Blobs transferred (those the store already had are not).
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
}

/// What [`fetch_lock`] did for one image.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub reference: String,
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
}

#[derive(serde::Deserialize)]
struct IndexDoc {
    manifests: Vec<Desc>,
}

#[derive(serde::Deserialize)]
struct ManifestDoc {
    config: Desc,
    layers: Vec<Desc>,
}

/// Resolves `reference` on its registry for `platform` (`linux/amd64`), reading manifests only.
pub fn resolve(
    reference: &ImageRef,
    platform: &str,
    options: &Options,
) -> Result<ResolvedImage, RegistryError> {
    let reg = Registry::connect(reference.registry(), options)?;
    resolve_in(&Repo::new(&reg, reference.repository(), false), reference, platform).map(|r| r.0)
}

/// Resolves and returns the manifests read (top first).
fn resolve_in(
    repo: &Repo<'_>,
    reference: &ImageRef,
    platform: &str,
) -> Result<(ResolvedImage, Vec<Manifest>), RegistryError> {
    let (os, arch) = platform.split_once('/').unwrap_or((platform, ""));
    let arch = arch.split('/').next().unwrap_or(arch);
    let tag_or_digest = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let not_found = || RegistryError::NotFound {
        registry: repo.reg.name.clone(),
        what: format!("image {reference}"),
    };
    let top = repo.get_manifest(&tag_or_digest, None)?.ok_or_else(not_found)?;
    let mut read = vec![top.clone()];
    let (index, manifest) = if top.is_index() {
        let idx: IndexDoc = serde_json::from_slice(&top.bytes).map_err(|e| {
            RegistryError::invalid(format!("image index {}", top.digest), e.to_string())
        })?;
        let mut available = Vec::new();
        let chosen = idx.manifests.into_iter().find(|m| {
            let p = m.platform.as_ref();
            let field = |k: &str| p.and_then(|p| p.get(k)).and_then(|v| v.as_str()).unwrap_or("");
            available.push(format!("{}/{}", field("os"), field("architecture")));
            field("os") == os && field("architecture") == arch
        });
        let chosen = chosen.ok_or_else(|| {
            RegistryError::invalid(
                format!("image {reference}"),
                format!("it has no {platform} manifest (it has {})", available.join(", ")),
            )
        })?;
        let m =
            repo.get_manifest(&chosen.digest.to_string(), Some(&chosen))?.ok_or_else(not_found)?;
        if m.is_index() {
            return Err(RegistryError::invalid(
                format!("image {reference}"),
                "an index inside an index",
            ));
        }
        read.push(m.clone());
        (Some(top.digest), m)
    } else {
        (None, top.clone())
    };
    let doc: ManifestDoc = serde_json::from_slice(&manifest.bytes).map_err(|e| {
        RegistryError::invalid(format!("image manifest {}", manifest.digest), e.to_string())
    })?;
    for layer in &doc.layers {
        if !matches!(classify(&layer.media_type)?, Kind::Layer(_)) {
            return Err(RegistryError::invalid(
                format!("image manifest {}", manifest.digest),
                format!(
                    "layer {} has media type {:?}, not an image layer",
                    layer.digest, layer.media_type
                ),
            ));
        }
    }
    let resolved = ResolvedImage {
        reference: reference.clone(),
        digest: top.digest,
        index,
        platform: format!("{os}/{arch}"),
        manifest: manifest.desc(),
        config: doc.config,
        layers: doc.layers,
    };
    Ok((resolved, read))
}

/// Pulls `reference` for `platform` into `store` and tags it `name` (default: the reference
/// without its digest). Only blobs the store lacks are transferred.
pub fn pull(
    store: &Store,
    reference: &ImageRef,
    name: Option<&ImageRef>,
    platform: &str,
    options: &Options,
    progress: &Progress,
) -> Result<Pulled, RegistryError> {
    let reg = Registry::connect(reference.registry(), options)?;
    let repo = Repo::new(&reg, reference.repository(), false);
    let (resolved, manifests) = resolve_in(&repo, reference, platform)?;
    let (mut blobs_fetched, mut bytes_fetched) =
        transfer(&repo, store, &resolved, &manifests, options, progress)?;
    // The image is named under the store's lock. A `store gc` that ran since the transfer
    // may have removed the still unnamed blobs, so whatever is missing now is transferred
    // again (usually nothing) before the name is written.
    let lock = store.lock()?;
    let (again, again_bytes) = transfer(&repo, store, &resolved, &manifests, options, progress)?;
    blobs_fetched += again;
    bytes_fetched += again_bytes;
    let name = name.cloned().unwrap_or_else(|| reference.without_digest());
    let m = &resolved.manifest;
    store.tag_locked(&lock, &name, &make_descriptor(&m.media_type, &m.digest, m.size)?)?;
    drop(lock);
    progress.line(&format!(
        "pulled {name} {} ({blobs_fetched} blobs, {bytes_fetched} bytes transferred)",
        m.digest
    ));
    Ok(Pulled { name, digest: m.digest, resolved, blobs_fetched, bytes_fetched })
}

/// Brings every image of `lock` into `store` from its registry, verified; images whose
/// blobs are all present cause no network traffic.
pub fn fetch_lock(
    store: &Store,
    lock: &Lockfile,
    options: &Options,
    progress: &Progress,
) -> Result<Vec<Fetched>, RegistryError> {
    let mut registries: BTreeMap<String, Registry> = BTreeMap::new();
    let mut out = Vec::new();
    for locked in lock.images.values() {
        let mut wanted: Vec<Digest> = vec![locked.digest, locked.manifest, locked.config];
        wanted.extend(locked.index);
        wanted.extend(locked.layers.iter().copied());
        if wanted.iter().all(|d| store.has_blob(d)) {
            out.push(Fetched {
                reference: locked.reference.clone(),
                blobs_fetched: 0,
                bytes_fetched: 0,
            });
            continue;
        }
        // The repository the lock recorded the image from, else the reference's own.
        let from = locked.repository.as_deref().unwrap_or(&locked.reference);
        let reference = ImageRef::parse(from)?.with_digest(locked.digest);
        if !registries.contains_key(reference.registry()) {
            let reg = Registry::connect(reference.registry(), options)?;
            registries.insert(reference.registry().to_string(), reg);
        }
        let Some(reg) = registries.get(reference.registry()) else { continue };
        let repo = Repo::new(reg, reference.repository(), false);
        let (resolved, manifests) = resolve_in(&repo, &reference, &locked.platform)?;
        let layers: Vec<Digest> = resolved.layers.iter().map(|l| l.digest).collect();
        if resolved.manifest.digest != locked.manifest
            || resolved.config.digest != locked.config
            || layers != locked.layers
        {
            return Err(RegistryError::Verification {
                registry: reg.name.clone(),
                what: format!("image {reference}"),
                reason: "its manifest, config or layers differ from the lock".into(),
            });
        }
        let (blobs_fetched, bytes_fetched) =
            transfer(&repo, store, &resolved, &manifests, options, progress)?;
        progress.line(&format!(
            "fetched {} {} ({blobs_fetched} blobs, {bytes_fetched} bytes transferred)",
            locked.reference, locked.digest
        ));
        out.push(Fetched { reference: locked.reference.clone(), blobs_fetched, bytes_fetched });
    }
    Ok(out)
}

/// Downloads the config and layers the store lacks, `options.jobs` at a time, then stores
/// the manifests (platform manifest before index): a manifest lands only when what it names
/// is there. Returns how many blobs and bytes were transferred.
fn transfer(
    repo: &Repo<'_>,
    store: &Store,
    resolved: &ResolvedImage,
    manifests: &[Manifest],
    options: &Options,
    progress: &Progress,
) -> Result<(usize, u64), RegistryError> {
    let blobs = std::iter::once(&resolved.config).chain(&resolved.layers).cloned();
    let mut seen = std::collections::BTreeSet::new();
    let missing: Vec<Desc> =
        blobs.into_iter().filter(|b| seen.insert(b.digest) && !store.has_blob(&b.digest)).collect();
    let count = missing.len();
    let bytes: u64 = missing.iter().map(|b| b.size).sum();
    parallel(missing, options.jobs, |desc| {
        let hex = desc.digest.hex();
        let bar = progress.bar(hex.get(..12).unwrap_or(&hex).to_string(), desc.size);
        let result = repo.pull_blob(store, &desc, options.attempts, &bar);
        bar.finish_and_clear();
        result
    })?;
    for m in manifests.iter().rev() {
        store.put_blob(m.bytes.as_slice(), Some(&m.digest))?;
    }
    Ok((count, bytes))
}
