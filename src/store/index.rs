//! Naming images: `index.json` and its tags, finding the descriptor for a reference, and
//! resolving a single-platform image with its config and layers.

use std::fs::File;
use std::io::Read;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::{
    Compression, MAX_JSON_BLOB, Store, StoreError, StoreLock, check_size, classify, desc_digest,
    make_descriptor,
};
use crate::digest::Digest;
use crate::oci::{ANNOTATION_REF_NAME, Kind, sniff_media_type};
use crate::reference::ImageRef;

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

impl Store {
    /// Points `name` (its tag; any digest in it is ignored) at `desc`, replacing an existing
    /// entry with the same name. The blob must be in the store with the size `desc` claims.
    pub fn tag(&self, name: &ImageRef, desc: &Descriptor) -> Result<(), StoreError> {
        let lock = self.lock()?;
        self.tag_locked(&lock, name, desc)
    }

    /// [`Store::tag`] for a caller that already holds the store's lock.
    pub(crate) fn tag_locked(
        &self,
        _lock: &StoreLock,
        name: &ImageRef,
        desc: &Descriptor,
    ) -> Result<(), StoreError> {
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
        let _lock = self.lock()?;
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

    pub(super) fn write_index(&self, manifests: &[Descriptor]) -> Result<(), StoreError> {
        let bytes = crate::canonical_json::to_vec(&crate::oci::index(manifests.to_vec()))
            .map_err(|e| StoreError::invalid("index.json", e.to_string()))?;
        self.write_atomic("index.json", &bytes)
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
