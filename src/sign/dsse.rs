//! DSSE v1 envelopes: signing, strict parsing and verification.
//!
//! The Dead Simple Signing Envelope (<https://github.com/secure-systems-lab/dsse>, protocol
//! v1) signs `PAE(payloadType, payload)` ([`pae`]) rather than the payload itself, so the
//! payload type is authenticated too. The JSON form is
//!
//! ```json
//! {"payload":"<base64>","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"<key id>","sig":"<base64>"}]}
//! ```
//!
//! cairn writes fields in exactly that order, compact, one envelope per line in
//! `<name>.intoto.jsonl` ([`Envelope::to_json_line`], [`parse_jsonl`]). `keyid` is always
//! [`keys::key_id`](super::keys::key_id) of the signing key, which is also what
//! securesystemslib and the Sigstore bundle's key hint must match.
//!
//! # Parsing is strict
//!
//! DSSE tolerates extension fields and either base64 alphabet; cairn does not, because it
//! only has to read what it writes and every extra degree of freedom is one more way for two
//! files to mean the same thing. [`Envelope::from_json`] rejects unknown fields, a missing
//! `keyid`, base64 that is not canonical standard base64 with padding, an empty
//! `signatures` list, and input over [`MAX_ENVELOPE_BYTES`].
//!
//! # Verification
//!
//! [`verify`] returns a [`VerifiedPayload`], which nothing else can construct. The rule:
//! a signature whose `keyid` names none of the trusted keys is ignored (the keyid is only a
//! hint; it is not authenticated). A signature whose `keyid` names a trusted key must verify
//! under that key, or the whole envelope is rejected: a broken signature from a key we trust
//! means the envelope was altered. At least one trusted key must verify.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::keys::{PublicKey, SignError, SigningKey};

/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The largest envelope [`Envelope::from_json`] parses (SBOM payloads can be megabytes).
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024 * 1024;

/// The most signatures one envelope may carry.
pub const MAX_SIGNATURES: usize = 64;

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        "DSSEv1".len() + 4 + type_len.len() + payload_type.len() + body_len.len() + payload.len(),
    );
    for part in [b"DSSEv1".as_slice(), type_len.as_bytes(), payload_type.as_bytes()] {
        out.extend_from_slice(part);
        out.push(b' ');
    }
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Everything that can go wrong with envelopes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DsseError {
    /// The envelope is not valid JSON of the DSSE shape (serde's message has line and column).
    #[error("malformed DSSE envelope: {reason}")]
    Malformed {
        /// What is wrong, with position where known.
        reason: String,
    },
    /// Larger than [`MAX_ENVELOPE_BYTES`].
    #[error("DSSE envelope is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// One line of a `.intoto.jsonl` file is not an envelope.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The cause.
        source: Box<DsseError>,
    },
    /// `verify` was called with no trusted keys: a caller bug, never caused by input.
    #[error("no trusted keys were given to verify the DSSE envelope against")]
    NoTrustedKeys,
    /// No signature carries the key id of a trusted key.
    #[error("no signature is from a trusted key (envelope key ids: {found}; trusted: {trusted})")]
    Untrusted {
        /// The key ids in the envelope, comma separated.
        found: String,
        /// The trusted key ids, comma separated.
        trusted: String,
    },
    /// A signature names a trusted key but does not verify under it.
    #[error("signature by trusted key {keyid} does not verify: {source}")]
    BadSignature {
        /// The key id.
        keyid: String,
        /// Why.
        source: SignError,
    },
    /// Signing failed.
    #[error("signing the DSSE envelope: {0}")]
    Sign(#[from] SignError),
}

/// One DSSE signature: the signer's key id and the signature over [`pae`].
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    keyid: String,
    sig: Vec<u8>,
}

impl Signature {
    /// The key id hint (unauthenticated until [`verify`] checks it).
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The raw signature bytes (Ed25519: 64 bytes; ECDSA: DER).
    pub fn sig(&self) -> &[u8] {
        &self.sig
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("keyid", &self.keyid)
            .field("sig", &STANDARD.encode(&self.sig))
            .finish()
    }
}

/// A DSSE envelope, signed but not yet verified.
///
/// Built by [`sign`] or parsed by [`Envelope::from_json`]; both guarantee at least one
/// signature. Nothing in it is trusted until [`verify`] says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    payload: Vec<u8>,
    payload_type: String,
    signatures: Vec<Signature>,
}

/// The JSON shape of a signature. `bundle` reuses these to parse its `dsseEnvelope`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireSignature {
    pub(crate) keyid: String,
    pub(crate) sig: String,
}

/// The JSON shape of an envelope, fields in the spec's order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WireEnvelope {
    pub(crate) payload: String,
    pub(crate) payload_type: String,
    pub(crate) signatures: Vec<WireSignature>,
}

/// Strict base64: standard alphabet, canonical padding, no stray bits.
fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, DsseError> {
    STANDARD.decode(text).map_err(|e| DsseError::Malformed {
        reason: format!("{field} is not standard base64: {e}"),
    })
}

/// Sign `payload` as `payload_type` with `key`: an envelope with one signature whose keyid is
/// the key's [`key_id`](super::keys::key_id).
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Result<Envelope, DsseError> {
    let mut envelope = Envelope {
        payload: payload.to_vec(),
        payload_type: payload_type.to_owned(),
        signatures: Vec::new(),
    };
    envelope.add_signature(key)?;
    Ok(envelope)
}

impl Envelope {
    /// Add a signature by `key`. Signatures stay in the order they were added; adding a key
    /// that already signed is a no-op (its signature would be the same bytes).
    pub fn add_signature(&mut self, key: &SigningKey) -> Result<(), DsseError> {
        let keyid = key.public_key().key_id();
        if self.signatures.iter().any(|s| s.keyid == keyid) {
            return Ok(());
        }
        let sig = key.sign(&pae(&self.payload_type, &self.payload))?;
        self.signatures.push(Signature { keyid, sig });
        Ok(())
    }

    /// The payload bytes (unverified).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload type (unverified).
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The signatures, in file order; never empty.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    pub(crate) fn to_wire(&self) -> WireEnvelope {
        WireEnvelope {
            payload: STANDARD.encode(&self.payload),
            payload_type: self.payload_type.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignature { keyid: s.keyid.clone(), sig: STANDARD.encode(&s.sig) })
                .collect(),
        }
    }

    /// A copy carrying only the signatures whose key id is `keyid` (`None` if there are none).
    pub(crate) fn only_signed_by(&self, keyid: &str) -> Option<Envelope> {
        let signatures: Vec<Signature> =
            self.signatures.iter().filter(|s| s.keyid == keyid).cloned().collect();
        (!signatures.is_empty()).then(|| Envelope {
            payload: self.payload.clone(),
            payload_type: self.payload_type.clone(),
            signatures,
        })
    }

    /// The envelope as one line of compact JSON, without the trailing newline.
    pub fn to_json_line(&self) -> String {
        // Serializing plain strings and vectors to a String cannot fail.
        serde_json::to_string(&self.to_wire()).unwrap_or_default()
    }

    /// Parse an envelope strictly (see the module docs).
    pub fn from_json(bytes: &[u8]) -> Result<Self, DsseError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DsseError::TooLarge { size: bytes.len(), limit: MAX_ENVELOPE_BYTES });
        }
        let wire: WireEnvelope = serde_json::from_slice(bytes)
            .map_err(|e| DsseError::Malformed { reason: e.to_string() })?;
        Envelope::from_wire(wire)
    }

    pub(crate) fn from_wire(wire: WireEnvelope) -> Result<Self, DsseError> {
        let malformed = |reason| DsseError::Malformed { reason };
        if wire.signatures.is_empty() {
            return Err(malformed("the envelope has no signatures".into()));
        }
        if wire.signatures.len() > MAX_SIGNATURES {
            return Err(malformed(format!(
                "{} signatures, more than the {MAX_SIGNATURES} allowed",
                wire.signatures.len()
            )));
        }
        let payload = decode_b64("payload", &wire.payload)?;
        let signatures = wire
            .signatures
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let sig = decode_b64(&format!("signatures[{i}].sig"), &s.sig)?;
                if sig.is_empty() {
                    return Err(malformed(format!("signatures[{i}].sig is empty")));
                }
                Ok(Signature { keyid: s.keyid, sig })
            })
            .collect::<Result<_, _>>()?;
        Ok(Envelope { payload, payload_type: wire.payload_type, signatures })
    }
}

/// Parse a `.intoto.jsonl` file: one envelope per line, `\n`-separated; a final newline is
/// optional, blank lines are errors.
pub fn parse_jsonl(bytes: &[u8]) -> Result<Vec<Envelope>, DsseError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            Envelope::from_json(line)
                .map_err(|e| DsseError::Line { line: i + 1, source: Box::new(e) })
        })
        .collect()
}

/// Render envelopes as `.intoto.jsonl`: one line each, each ending in `\n`.
pub fn to_jsonl(envelopes: &[Envelope]) -> String {
    let mut out = String::new();
    for envelope in envelopes {
        out.push_str(&envelope.to_json_line());
        out.push('\n');
    }
    out
}

/// A payload whose envelope verified under at least one trusted key.
///
/// Only [`verify`] constructs this; holding one is the proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayload {
    payload_type: String,
    payload: Vec<u8>,
    key_ids: Vec<String>,
}

impl VerifiedPayload {
    /// The authenticated payload type.
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The authenticated payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The key ids of the trusted keys whose signatures verified, sorted, never empty.
    pub fn key_ids(&self) -> &[String] {
        &self.key_ids
    }
}

/// Verify `envelope` against `trusted` keys (rules in the module docs).
pub fn verify(envelope: &Envelope, trusted: &[PublicKey]) -> Result<VerifiedPayload, DsseError> {
    if trusted.is_empty() {
        return Err(DsseError::NoTrustedKeys);
    }
    let message = pae(&envelope.payload_type, &envelope.payload);
    let trusted: Vec<(String, &PublicKey)> = trusted.iter().map(|k| (k.key_id(), k)).collect();
    let mut key_ids = Vec::new();
    for signature in &envelope.signatures {
        for (id, key) in trusted.iter().filter(|(id, _)| *id == signature.keyid) {
            key.verify(&message, &signature.sig)
                .map_err(|source| DsseError::BadSignature { keyid: id.clone(), source })?;
            key_ids.push(id.clone());
        }
    }
    if key_ids.is_empty() {
        let join = |ids: &mut dyn Iterator<Item = &str>| ids.collect::<Vec<_>>().join(", ");
        return Err(DsseError::Untrusted {
            found: join(&mut envelope.signatures.iter().map(|s| s.keyid.as_str())),
            trusted: join(&mut trusted.iter().map(|(id, _)| id.as_str())),
        });
    }
    key_ids.sort();
    key_ids.dedup();
    Ok(VerifiedPayload {
        payload_type: envelope.payload_type.clone(),
        payload: envelope.payload.clone(),
        key_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::Algorithm;
    use crate::sign::keys::tests::fixed_key;

    const STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;

    /// The fixed key of `alg` and [`STATEMENT`] signed with it.
    fn signed(alg: Algorithm) -> (SigningKey, Envelope) {
        let key = fixed_key(alg);
        let env = sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT, &key).unwrap();
        (key, env)
    }

    #[test]
    fn pae_matches_the_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn sign_and_verify_per_algorithm() {
        for alg in Algorithm::ALL {
            let (key, env) = signed(alg);
            assert_eq!(env.signatures().len(), 1);
            assert_eq!(env.signatures()[0].keyid(), key.public_key().key_id());
            let verified = verify(&env, &[key.public_key().clone()]).unwrap();
            assert_eq!(verified.payload(), STATEMENT);
            assert_eq!(verified.payload_type(), IN_TOTO_PAYLOAD_TYPE);
            assert_eq!(verified.key_ids(), [key.public_key().key_id()]);
        }
    }

    #[test]
    fn signing_is_deterministic() {
        for alg in Algorithm::ALL {
            let (key, a) = signed(alg);
            let b = sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT, &key).unwrap();
            assert_eq!(a.to_json_line(), b.to_json_line(), "{alg}");
        }
    }

    #[test]
    fn tampering_is_rejected() {
        for alg in Algorithm::ALL {
            let (key, env) = signed(alg);
            let trusted = [key.public_key().clone()];

            let mut payload = env.clone();
            payload.payload.push(b' ');
            assert!(matches!(verify(&payload, &trusted), Err(DsseError::BadSignature { .. })));

            let mut ptype = env.clone();
            ptype.payload_type = "application/json".into();
            assert!(matches!(verify(&ptype, &trusted), Err(DsseError::BadSignature { .. })));

            let mut sig = env.clone();
            let last = sig.signatures[0].sig.len() - 1;
            sig.signatures[0].sig[last] ^= 1;
            assert!(verify(&sig, &trusted).is_err());

            // Wrong key: a different key with its own id is simply not trusted.
            let other = crate::sign::keys::SigningKey::generate(alg).unwrap();
            assert!(matches!(
                verify(&env, &[other.public_key().clone()]),
                Err(DsseError::Untrusted { .. })
            ));
            // Wrong key claiming the trusted key's id: verified against the trusted key, fails.
            let mut forged = sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT, &other).unwrap();
            forged.signatures[0].keyid = key.public_key().key_id();
            assert!(matches!(verify(&forged, &trusted), Err(DsseError::BadSignature { .. })));

            assert!(matches!(verify(&env, &[]), Err(DsseError::NoTrustedKeys)));
        }
    }

    #[test]
    fn multiple_signatures() {
        let ed = fixed_key(Algorithm::Ed25519);
        let p256 = fixed_key(Algorithm::EcdsaP256);
        let mut env = sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT, &ed).unwrap();
        env.add_signature(&p256).unwrap();
        env.add_signature(&ed).unwrap();
        assert_eq!(env.signatures().len(), 2);
        let both = [ed.public_key().clone(), p256.public_key().clone()];
        let verified = verify(&env, &both).unwrap();
        let mut expected = vec![ed.public_key().key_id(), p256.public_key().key_id()];
        expected.sort();
        assert_eq!(verified.key_ids(), expected);
        // Trusting one of them is enough; the other signature is ignored.
        let verified = verify(&env, &both[1..]).unwrap();
        assert_eq!(verified.key_ids(), [p256.public_key().key_id()]);
    }

    #[test]
    fn json_round_trip_and_field_order() {
        for alg in Algorithm::ALL {
            let (_, env) = signed(alg);
            let line = env.to_json_line();
            assert!(!line.contains('\n'));
            assert!(line.starts_with(r#"{"payload":""#), "{line}");
            let p = line.find(r#""payloadType":"#).unwrap();
            let s = line.find(r#""signatures":[{"keyid":"#).unwrap();
            assert!(p < s);
            assert_eq!(Envelope::from_json(line.as_bytes()).unwrap(), env);

            let jsonl = to_jsonl(&[env.clone(), env.clone()]);
            assert_eq!(parse_jsonl(jsonl.as_bytes()).unwrap(), [env.clone(), env.clone()]);
            assert_eq!(parse_jsonl(jsonl.trim_end().as_bytes()).unwrap().len(), 2);
            let blank = format!("{line}\n\n{line}\n");
            assert!(matches!(parse_jsonl(blank.as_bytes()), Err(DsseError::Line { line: 2, .. })));
        }
    }

    #[test]
    fn strict_parsing() {
        let bad = [
            // unknown field
            r#"{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"AA=="}],"x":1}"#,
            r#"{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"AA==","x":1}]}"#,
            // no signatures
            r#"{"payload":"e30=","payloadType":"t","signatures":[]}"#,
            // missing keyid
            r#"{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AA=="}]}"#,
            // missing padding, URL-safe alphabet, junk
            r#"{"payload":"e30","payloadType":"t","signatures":[{"keyid":"k","sig":"AA=="}]}"#,
            r#"{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"-_8="}]}"#,
            r#"{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"!!"}]}"#,
            // empty signature
            r#"{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":""}]}"#,
            // missing payloadType, wrong type
            r#"{"payload":"e30=","signatures":[{"keyid":"k","sig":"AA=="}]}"#,
            r#"{"payload":1,"payloadType":"t","signatures":[{"keyid":"k","sig":"AA=="}]}"#,
            "",
            "[]",
        ];
        for json in bad {
            assert!(
                matches!(Envelope::from_json(json.as_bytes()), Err(DsseError::Malformed { .. })),
                "accepted: {json}"
            );
        }
        let ok =
            r#"{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"AA=="}]}"#;
        let env = Envelope::from_json(ok.as_bytes()).unwrap();
        assert_eq!(env.payload(), b"{}");
        assert_eq!(env.to_json_line(), ok);
    }
}
