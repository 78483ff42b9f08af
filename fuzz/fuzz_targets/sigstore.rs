//! Sigstore bundles signed upstream (v0.1–v0.3 JSON), verified offline with a public key
//! anchor: `sigstore::verify_bundle`.
#![no_main]

use cairn::digest::Digest;
use cairn::sigstore::{Artifact, TrustAnchor, verify_bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = cairn_fuzz::selector(data) else { return };
    let pem = if sel & 1 == 0 { cairn_fuzz::ED25519_PUB } else { cairn_fuzz::P256_PUB };
    let anchor = TrustAnchor::public_key(pem.as_bytes());
    let artifact = b"cairn fuzz artifact";
    if sel & 2 == 0 {
        let _ = verify_bundle(body, Artifact::Bytes(artifact), &anchor);
    } else {
        let _ = verify_bundle(body, Artifact::Digest(Digest::of(artifact)), &anchor);
    }
});
