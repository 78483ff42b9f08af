//! Signing a build's attestations: the provenance statement and the SBOM statement become
//! `<name>.intoto.jsonl` (one DSSE envelope per line: provenance first, SBOM second) and
//! `<name>.sigstore.json` (the same envelopes as Sigstore bundles, in the same order).
//!
//! A payload is the statement serialized on one line with sorted keys
//! ([`crate::attest::to_json_line`]), so signing the same statements with the same key
//! gives the same bytes, whether at build time or later with `cairn sign`.

use super::bundle::{self, BundleError};
use super::dsse::{self, DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::keys::SigningKey;
use crate::attest::{Document, to_json_line};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum AttestationSignError {
    #[error("signing the {what} statement: {source}")]
    Dsse { what: &'static str, source: DsseError },
    #[error("wrapping the {what} envelope in a Sigstore bundle: {source}")]
    Bundle { what: &'static str, source: BundleError },
}

/// The two signed files, ready to write.
pub struct SignedAttestations {
    pub envelopes: Vec<Envelope>,
    /// `<name>.intoto.jsonl` bytes.
    pub intoto_jsonl: Vec<u8>,
    /// `<name>.sigstore.json` bytes.
    pub sigstore_json: Vec<u8>,
}

/// Signs the provenance and SBOM statements with `key`: the typed statements of a build, or
/// statements read back as JSON (`cairn sign`), which give the same payloads.
pub fn sign_statements<P: Document, S: Document>(
    provenance: &P,
    sbom: &S,
    key: &SigningKey,
) -> Result<SignedAttestations, AttestationSignError> {
    let mut envelopes = Vec::new();
    let mut bundles = Vec::new();
    for (what, payload) in [("provenance", to_json_line(provenance)), ("SBOM", to_json_line(sbom))]
    {
        let envelope = dsse::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key)
            .map_err(|source| AttestationSignError::Dsse { what, source })?;
        let b = bundle::bundle_for(&envelope, key.public_key())
            .map_err(|source| AttestationSignError::Bundle { what, source })?;
        envelopes.push(envelope);
        bundles.push(b);
    }
    let mut intoto_jsonl = dsse::to_jsonl(&envelopes).into_bytes();
    if !intoto_jsonl.ends_with(b"\n") {
        intoto_jsonl.push(b'\n');
    }
    let mut sigstore_json = bundle::to_collection(&bundles).into_bytes();
    if !sigstore_json.ends_with(b"\n") {
        sigstore_json.push(b'\n');
    }
    Ok(SignedAttestations { envelopes, intoto_jsonl, sigstore_json })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::Algorithm;

    #[test]
    fn signing_is_deterministic_and_verifiable_for_each_key_type() {
        let provenance =
            serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "b": 1, "a": 2});
        let sbom = serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "predicate": {}});
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let one = sign_statements(&provenance, &sbom, &key).unwrap();
            let two = sign_statements(&provenance, &sbom, &key).unwrap();
            assert_eq!(one.intoto_jsonl, two.intoto_jsonl, "{alg}");
            assert_eq!(one.sigstore_json, two.sigstore_json, "{alg}");
            let lines = dsse::parse_jsonl(&one.intoto_jsonl).unwrap();
            assert_eq!(lines.len(), 2);
            let verified = dsse::verify(&lines[0], std::slice::from_ref(key.public_key())).unwrap();
            assert_eq!(verified.payload(), to_json_line(&provenance).as_slice());
            assert_eq!(bundle::parse_collection(&one.sigstore_json).unwrap().len(), 2);
        }
    }
}
