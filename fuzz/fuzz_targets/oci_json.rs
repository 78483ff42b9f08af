//! OCI documents (JSON): image index, image manifest and image config, as the store reads
//! them (`store::blob_children`, OCI and Docker media types), the strict manifest and index
//! types `verify` reads, and media type sniffing of unlabeled blobs.
#![no_main]

use cairn::oci::{self, strict};
use libfuzzer_sys::fuzz_target;

const MEDIA_TYPES: [&str; 6] = [
    oci::MT_OCI_INDEX,
    oci::MT_OCI_MANIFEST,
    oci::MT_OCI_CONFIG,
    oci::MT_DOCKER_LIST,
    oci::MT_DOCKER_MANIFEST,
    oci::MT_DOCKER_CONFIG,
];

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = cairn_fuzz::selector(data) else { return };
    let mt = MEDIA_TYPES[usize::from(sel) % MEDIA_TYPES.len()];
    if let Ok(children) = cairn::store::blob_children(body, mt) {
        for d in &children {
            let _ = cairn::store::desc_digest(d);
            let _ = oci::kind(d.media_type().as_ref());
        }
    }
    let _ = oci::sniff_media_type(body);
    let _ = serde_json::from_slice::<strict::Manifest>(body);
    let _ = serde_json::from_slice::<strict::Index>(body);
});
