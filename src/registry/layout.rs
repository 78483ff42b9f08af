//! Registry → OCI layout directory: the image a reference names, written as `cairn build -f
//! oci` writes one (`oci-layout`, `index.json` naming one manifest, its blobs), so that
//! `cairn verify REF` checks it exactly as it checks a layout on disk.

use std::path::Path;

use super::{Options, Progress, RegistryError};
use crate::digest::Digest;
use crate::oci::{LAYOUT_FILE, MT_OCI_INDEX};
use crate::reference::ImageRef;
use crate::store::Store;

/// Pulls `reference` (linux/amd64 when it names an index) through `store`, a scratch store
/// the caller owns, and writes the image as the OCI layout `layout` (which must not exist).
/// Returns the digest of the manifest the layout names.
pub fn pull_layout(
    reference: &ImageRef,
    store: &Store,
    layout: &Path,
    options: &Options,
    progress: &Progress,
) -> Result<Digest, RegistryError> {
    let pulled = super::pull(store, reference, None, "linux/amd64", options, progress)?;
    let m = &pulled.resolved.manifest;
    let blobs = layout.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(RegistryError::io("create directory", &blobs))?;
    let digests = [m.digest, pulled.resolved.config.digest]
        .into_iter()
        .chain(pulled.resolved.layers.iter().map(|l| l.digest));
    for d in digests {
        let to = blobs.join(d.hex());
        // Each blob was verified on its way into the store.
        std::fs::copy(store.blob_path(&d), &to).map_err(RegistryError::io("write", &to))?;
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = layout.join(name);
        std::fs::write(&path, bytes).map_err(RegistryError::io("write", &path))
    };
    write("oci-layout", LAYOUT_FILE.as_bytes())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [{"mediaType": m.media_type, "digest": m.digest, "size": m.size}],
    });
    write("index.json", index.to_string().as_bytes())?;
    Ok(m.digest)
}
