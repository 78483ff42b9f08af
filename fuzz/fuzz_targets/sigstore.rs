//! Sigstore bundles signed upstream (v0.1–v0.3 JSON), verified offline
//! (`sigstore::verify_bundle`) with a public key anchor, optionally with a trusted root, or
//! with a keyless identity and a trusted root. A trusted root comes first in the input,
//! ended by a 0xff byte (never part of JSON text).
#![no_main]

use cairn::digest::Digest;
use cairn::sigstore::{Artifact, TrustAnchor, verify_bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = cairn_fuzz::selector(data) else { return };
    let pem = if sel & 1 == 0 { cairn_fuzz::ED25519_PUB } else { cairn_fuzz::P256_PUB };
    let (root, bundle) = match body.iter().position(|&b| b == 0xff) {
        Some(i) if sel & 4 != 0 => (Some(body[..i].to_vec()), &body[i + 1..]),
        _ => (None, body),
    };
    let anchor = match root {
        Some(json) if sel & 8 != 0 => TrustAnchor::Keyless {
            identity: "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1"
                .into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            trusted_root_json: json,
        },
        root => TrustAnchor::PublicKey { pem: pem.as_bytes().to_vec(), trusted_root_json: root },
    };
    let artifact = b"cairn fuzz artifact";
    if sel & 2 == 0 {
        let _ = verify_bundle(bundle, Artifact::Bytes(artifact), &anchor);
    } else {
        let _ = verify_bundle(bundle, Artifact::Digest(Digest::of(artifact)), &anchor);
    }
});
