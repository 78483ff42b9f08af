//! Walking the graph reachable from a set of descriptors (indexes → manifests → config and
//! layers), as gc, fsck and imports do.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::{StoreError, classify, desc_digest};
use crate::digest::Digest;
use crate::oci::Kind;

/// The descriptors a blob refers to (children of an index or manifest), parsed leniently
/// for walking the store.
pub(crate) fn children(
    bytes: &[u8],
    kind: Kind,
    d: &Digest,
) -> Result<Vec<Descriptor>, StoreError> {
    match kind {
        Kind::Index => {
            let idx: ImageIndex = serde_json::from_slice(bytes)
                .map_err(|e| StoreError::invalid(format!("image index {d}"), e.to_string()))?;
            Ok(idx.manifests().clone())
        }
        Kind::Manifest => {
            let m: ImageManifest = serde_json::from_slice(bytes)
                .map_err(|e| StoreError::invalid(format!("image manifest {d}"), e.to_string()))?;
            let mut out = vec![m.config().clone()];
            out.extend(m.layers().iter().cloned());
            Ok(out)
        }
        Kind::Config => {
            serde_json::from_slice::<ImageConfiguration>(bytes)
                .map_err(|e| StoreError::invalid(format!("image config {d}"), e.to_string()))?;
            Ok(Vec::new())
        }
        _ => Ok(Vec::new()),
    }
}

/// What a walk of the reachable graph found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Every reachable digest with the size its descriptor claims.
    pub reachable: BTreeMap<Digest, u64>,
    /// Reachable digests with no blob.
    pub missing: BTreeSet<Digest>,
    /// Everything else that is wrong, one sentence each (naming the blob).
    pub problems: Vec<String>,
}

/// Walks everything reachable from `roots`. `size_of` gives a blob's size (None: missing);
/// `read` reads a JSON blob verified. Problems are collected, the walk does not stop.
pub(crate) fn walk(
    roots: &[Descriptor],
    mut size_of: impl FnMut(&Digest) -> Option<u64>,
    mut read: impl FnMut(&Digest) -> Result<Vec<u8>, StoreError>,
) -> Walk {
    let mut w = Walk::default();
    let mut queue: Vec<Descriptor> = roots.to_vec();
    let mut visited = BTreeSet::new();
    while let Some(desc) = queue.pop() {
        let d = match desc_digest(&desc) {
            Ok(d) => d,
            Err(e) => {
                w.problems.push(e.to_string());
                continue;
            }
        };
        let mt = desc.media_type().to_string();
        if !visited.insert((d, mt.clone())) {
            continue;
        }
        w.reachable.insert(d, desc.size());
        let kind = match classify(&mt) {
            Ok(k) => k,
            Err(e) => {
                w.problems.push(e.to_string());
                continue;
            }
        };
        match size_of(&d) {
            None => {
                w.missing.insert(d);
                continue;
            }
            Some(s) if s != desc.size() => {
                w.problems.push(format!(
                    "descriptor for {d} claims {} bytes but the blob has {s}",
                    desc.size()
                ));
                continue;
            }
            Some(_) => {}
        }
        if matches!(kind, Kind::Index | Kind::Manifest | Kind::Config) {
            match read(&d).and_then(|b| children(&b, kind, &d)) {
                Ok(c) => queue.extend(c),
                Err(e) => w.problems.push(e.to_string()),
            }
        }
    }
    w
}
