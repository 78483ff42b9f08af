//! OCI image layouts, as a directory or as a tar archive: every blob reachable from
//! `index.json` is copied and verified, and the images are named from its annotations.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use oci_spec::image::{ImageIndex, OciLayout};

use super::{Cx, ImportError, Imported, io_err};
use crate::digest::Digest;
use crate::oci::ANNOTATION_REF_NAME;
use crate::reference::ImageRef;
use crate::store::{MAX_JSON_BLOB, Staging, Walk, walk};

impl Cx<'_> {
    pub(super) fn oci_layout_dir(&self, staging: Staging) -> Result<Vec<Imported>, ImportError> {
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
        self.finish_oci(staging, &index, w)
    }

    pub(super) fn oci_archive(
        &self,
        staging: Staging,
        tar_path: &Path,
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
        self.finish_oci(staging, &index, w)
    }

    fn parse_layout(&self, layout: &[u8], index: &[u8]) -> Result<ImageIndex, ImportError> {
        let l: OciLayout = serde_json::from_slice(layout)
            .map_err(|e| self.bad(format!("oci-layout is not valid: {e}")))?;
        let version = l.image_layout_version();
        if !version.starts_with("1.") {
            return Err(self.bad(format!("unsupported imageLayoutVersion {version:?}")));
        }
        serde_json::from_slice(index)
            .map_err(|e| self.bad(format!("index.json is not a valid OCI image index: {e}")))
    }

    /// Checks the walk, decides the names, commits the blobs and tags.
    fn finish_oci(
        &self,
        staging: Staging,
        index: &ImageIndex,
        w: Walk,
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
            let image_name = match (self.name, ref_name) {
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
        let lock = staging.commit(&w.reachable.keys().copied().collect()).map_err(self.st())?;
        self.tag_all(&lock, tagged)
    }
}
