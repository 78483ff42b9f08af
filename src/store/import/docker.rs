//! `docker save` archives: `manifest.json` and the image configs and layers it names,
//! converted to OCI manifests.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::archive::member_path;
use super::{Compressed, Cx, ImportError, Imported, sniff_compression};
use crate::digest::Digest;
use crate::oci::{
    MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD, MT_OCI_MANIFEST,
};
use crate::reference::ImageRef;
use crate::store::{MAX_JSON_BLOB, Staging, make_descriptor};

impl Cx<'_> {
    pub(super) fn docker_save(
        &self,
        staging: Staging,
        tar_path: &Path,
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
                    .map_err(self.read_input("read"))?;
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
                layers.push(make_descriptor(mt, &ld, lsize).map_err(self.st())?);
            }
            keep.insert(cd);
            let config_desc = make_descriptor(MT_OCI_CONFIG, &cd, csize).map_err(self.st())?;
            let (mdg, msize) = self.stage_manifest(&staging, config_desc, layers)?;
            keep.insert(mdg);
            let desc = make_descriptor(MT_OCI_MANIFEST, &mdg, msize).map_err(self.st())?;
            let names: Vec<ImageRef> = match (self.name, &e.repo_tags) {
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
        let lock = staging.commit(&keep).map_err(self.st())?;
        self.tag_all(&lock, tagged)
    }
}
