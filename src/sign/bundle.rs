//! Sigstore bundles (v0.3 JSON) for key-signed DSSE envelopes, and the `.sigstore.json` file.
//!
//! A bundle ties one DSSE envelope to the key that signed it, in the format every Sigstore
//! client reads (`sigstore/protobuf-specs`, `sigstore_bundle.proto`, proto3 JSON mapping):
//!
//! ```json
//! {"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
//!  "verificationMaterial":{"publicKey":{"hint":"<key id>"},"tlogEntries":[]},
//!  "dsseEnvelope":{"payload":"<base64>","payloadType":"application/vnd.in-toto+json",
//!                  "signatures":[{"sig":"<base64>","keyid":"<key id>"}]}}
//! ```
//!
//! (one line in the file; wrapped here). `hint` is [`key_id`](super::keys::key_id); the
//! verifier maps it to a public key it already trusts. cairn signs offline, so there are no
//! transparency-log entries and no RFC 3161 timestamps: verify such a bundle with the log,
//! CT-log and timestamp thresholds at 0 (for `@sigstore/verify`: `tlogThreshold`,
//! `ctlogThreshold`, `timestampThreshold`), with the public key as trust material.
//! `@sigstore/bundle` requires `tlogEntries` to be present (empty is fine) and exactly one
//! DSSE signature, so each bundle carries exactly one.
//!
//! # Parsing is strict
//!
//! [`Bundle::from_json`] accepts only what cairn writes: the v0.3 media type, a `publicKey`
//! hint (no certificates), a `dsseEnvelope` (no `messageSignature`), exactly one signature
//! whose `keyid` equals the hint, unknown fields rejected. Non-empty `tlogEntries` or
//! `timestampVerificationData.rfc3161Timestamps` are rejected too: cairn cannot check them,
//! and material it cannot check is not silently carried along.
//!
//! # `<name>.sigstore.json`
//!
//! One bundle per attestation, all in one file: a JSON array of bundles, in the same order as
//! the envelopes (lines) of `<name>.intoto.jsonl`, one bundle per line:
//!
//! ```text
//! [
//! {"mediaType":…},
//! {"mediaType":…}
//! ]
//! ```
//!
//! The file is valid JSON; a tool that wants one standard bundle per file takes an element
//! (`jq -c '.[0]' hello.sigstore.json > provenance.sigstore.json`). See [`to_collection`] and
//! [`parse_collection`].

use serde::{Deserialize, Serialize};

use super::dsse::{self, DsseError, Envelope, VerifiedPayload, WireEnvelope, WireSignature};
use super::keys::PublicKey;

/// The media type of Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Largest `.sigstore.json` collection [`parse_collection`] reads.
pub const MAX_COLLECTION_BYTES: usize = 1024 * 1024 * 1024;

/// Everything that can go wrong with bundles.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a bundle of the shape cairn accepts.
    #[error("malformed Sigstore bundle: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Well-formed, but something cairn does not accept (certificates, tlog entries, …).
    #[error("unsupported Sigstore bundle: {reason}")]
    Unsupported {
        /// What it carries.
        reason: String,
    },
    /// Element `index` of a `.sigstore.json` collection is bad.
    #[error("bundle {index} of the collection: {source}")]
    Element {
        /// 0-based position in the array.
        index: usize,
        /// The cause.
        source: Box<BundleError>,
    },
    /// [`bundle_for`] was given a key that did not sign the envelope.
    #[error("the envelope has no signature by key {keyid}")]
    NotSignedBy {
        /// The key's id.
        keyid: String,
    },
    /// The bundle's key hint names none of the trusted keys.
    #[error("the bundle's key {hint} is not a trusted key")]
    UntrustedKey {
        /// The hint.
        hint: String,
    },
    /// The DSSE envelope inside is malformed or does not verify.
    #[error(transparent)]
    Dsse(#[from] DsseError),
}

/// A key-based Sigstore v0.3 bundle holding one single-signature DSSE envelope.
///
/// Built by [`bundle_for`] (which checks the signature first) or [`Bundle::from_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    hint: String,
    envelope: Envelope,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHint {
    hint: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireTimestamps {
    #[serde(default)]
    rfc3161_timestamps: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireMaterial {
    public_key: Option<WireHint>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_verification_data: Option<WireTimestamps>,
    // Present only so that parsing can name them; never written.
    #[serde(default, skip_serializing)]
    certificate: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    x509_certificate_chain: Option<serde_json::Value>,
}

/// A DSSE signature in protobuf field order (`sig`, then `keyid`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBundleSignature {
    sig: String,
    keyid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireBundleEnvelope {
    payload: String,
    payload_type: String,
    signatures: Vec<WireBundleSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireBundle {
    media_type: String,
    verification_material: WireMaterial,
    dsse_envelope: Option<WireBundleEnvelope>,
    #[serde(default, skip_serializing)]
    message_signature: Option<serde_json::Value>,
}

/// The bundle for the signature `key` made on `envelope`.
///
/// The signature is verified before the bundle is built, so cairn never writes a bundle
/// that would not verify.
pub fn bundle_for(envelope: &Envelope, key: &PublicKey) -> Result<Bundle, BundleError> {
    let hint = key.key_id();
    let single =
        envelope.only_signed_by(&hint).ok_or(BundleError::NotSignedBy { keyid: hint.clone() })?;
    if single.signatures().len() != 1 {
        return Err(BundleError::Malformed {
            reason: format!("the envelope has several signatures with key id {hint}"),
        });
    }
    dsse::verify(&single, std::slice::from_ref(key))?;
    Ok(Bundle { hint, envelope: single })
}

impl Bundle {
    /// The public-key hint: the signing key's key id.
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// The DSSE envelope (one signature, by the hinted key).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Verify against `trusted`: the hint must name one of them, and the envelope must
    /// verify under that key.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<VerifiedPayload, BundleError> {
        let key = trusted
            .iter()
            .find(|k| k.key_id() == self.hint)
            .ok_or_else(|| BundleError::UntrustedKey { hint: self.hint.clone() })?;
        Ok(dsse::verify(&self.envelope, std::slice::from_ref(key))?)
    }

    fn to_wire(&self) -> WireBundle {
        let env = self.envelope.to_wire();
        WireBundle {
            media_type: BUNDLE_MEDIA_TYPE.to_owned(),
            verification_material: WireMaterial {
                public_key: Some(WireHint { hint: self.hint.clone() }),
                tlog_entries: Vec::new(),
                timestamp_verification_data: None,
                certificate: None,
                x509_certificate_chain: None,
            },
            dsse_envelope: Some(WireBundleEnvelope {
                payload: env.payload,
                payload_type: env.payload_type,
                signatures: env
                    .signatures
                    .into_iter()
                    .map(|s| WireBundleSignature { sig: s.sig, keyid: s.keyid })
                    .collect(),
            }),
            message_signature: None,
        }
    }

    /// The bundle as one line of compact JSON, without a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing strings and vectors to a String cannot fail.
        serde_json::to_string(&self.to_wire()).unwrap_or_default()
    }

    /// Parse one bundle strictly (see the module docs).
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > dsse::MAX_ENVELOPE_BYTES {
            return Err(BundleError::Malformed {
                reason: format!("{} bytes, over the size limit", bytes.len()),
            });
        }
        let wire: WireBundle = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::Malformed { reason: e.to_string() })?;
        Bundle::from_wire(wire)
    }

    fn from_wire(wire: WireBundle) -> Result<Self, BundleError> {
        let unsupported = |reason: &str| BundleError::Unsupported { reason: reason.to_owned() };
        let malformed = |reason: String| BundleError::Malformed { reason };
        if wire.media_type != BUNDLE_MEDIA_TYPE {
            return Err(unsupported(&format!(
                "media type {:?}; cairn reads {BUNDLE_MEDIA_TYPE}",
                wire.media_type
            )));
        }
        let material = wire.verification_material;
        if material.certificate.is_some() || material.x509_certificate_chain.is_some() {
            return Err(unsupported("certificate-based bundle; cairn verifies key-based bundles"));
        }
        if !material.tlog_entries.is_empty() {
            return Err(unsupported("transparency log entries, which cairn cannot check"));
        }
        if material.timestamp_verification_data.is_some_and(|t| !t.rfc3161_timestamps.is_empty()) {
            return Err(unsupported("RFC 3161 timestamps, which cairn cannot check"));
        }
        let hint = material
            .public_key
            .ok_or_else(|| malformed("verificationMaterial has no publicKey".into()))?
            .hint;
        if wire.message_signature.is_some() {
            return Err(unsupported("messageSignature content; cairn bundles hold DSSE"));
        }
        let env = wire.dsse_envelope.ok_or_else(|| malformed("no dsseEnvelope".into()))?;
        if env.signatures.len() != 1 {
            return Err(malformed(format!(
                "dsseEnvelope has {} signatures; a bundle holds exactly one",
                env.signatures.len()
            )));
        }
        if env.signatures.iter().any(|s| s.keyid != hint) {
            return Err(malformed(format!(
                "the DSSE signature's keyid differs from the key hint {hint}"
            )));
        }
        let envelope = Envelope::from_wire(WireEnvelope {
            payload: env.payload,
            payload_type: env.payload_type,
            signatures: env
                .signatures
                .into_iter()
                .map(|s| WireSignature { keyid: s.keyid, sig: s.sig })
                .collect(),
        })?;
        Ok(Bundle { hint, envelope })
    }
}

/// Render `<name>.sigstore.json`: a JSON array, one bundle per line, trailing newline.
pub fn to_collection(bundles: &[Bundle]) -> String {
    let lines: Vec<String> = bundles.iter().map(Bundle::to_json).collect();
    if lines.is_empty() {
        return "[]\n".to_owned();
    }
    format!("[\n{}\n]\n", lines.join(",\n"))
}

/// Parse `<name>.sigstore.json` (any JSON whitespace accepted), strictly per bundle.
pub fn parse_collection(bytes: &[u8]) -> Result<Vec<Bundle>, BundleError> {
    if bytes.len() > MAX_COLLECTION_BYTES {
        return Err(BundleError::Malformed {
            reason: format!("collection is {} bytes, over the size limit", bytes.len()),
        });
    }
    let values: Vec<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| BundleError::Malformed { reason: e.to_string() })?;
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            serde_json::from_value::<WireBundle>(value)
                .map_err(|e| BundleError::Malformed { reason: e.to_string() })
                .and_then(Bundle::from_wire)
                .map_err(|e| BundleError::Element { index, source: Box::new(e) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::dsse::IN_TOTO_PAYLOAD_TYPE;
    use crate::sign::keys::tests::fixed_key;
    use crate::sign::keys::{Algorithm, SigningKey};

    const STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;

    fn bundle(alg: Algorithm) -> (SigningKey, Bundle) {
        let key = fixed_key(alg);
        let env = dsse::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT, &key).unwrap();
        let bundle = bundle_for(&env, key.public_key()).unwrap();
        (key, bundle)
    }

    #[test]
    fn bundle_json_shape() {
        for alg in Algorithm::ALL {
            let (key, b) = bundle(alg);
            let json = b.to_json();
            let id = key.public_key().key_id();
            let expected_prefix = format!(
                r#"{{"mediaType":"{BUNDLE_MEDIA_TYPE}","verificationMaterial":{{"publicKey":{{"hint":"{id}"}},"tlogEntries":[]}},"dsseEnvelope":{{"payload":""#
            );
            assert!(json.starts_with(&expected_prefix), "{json}");
            assert!(json.ends_with(&format!(r#""keyid":"{id}"}}]}}}}"#)), "{json}");
            assert!(json.contains(
                r#""payloadType":"application/vnd.in-toto+json","signatures":[{"sig":""#
            ));
        }
    }

    #[test]
    fn round_trip_and_verify_per_algorithm() {
        for alg in Algorithm::ALL {
            let (key, b) = bundle(alg);
            let back = Bundle::from_json(b.to_json().as_bytes()).unwrap();
            assert_eq!(back, b);
            let verified = back.verify(&[key.public_key().clone()]).unwrap();
            assert_eq!(verified.payload(), STATEMENT);
            let other = SigningKey::generate(alg).unwrap();
            assert!(matches!(
                back.verify(&[other.public_key().clone()]),
                Err(BundleError::UntrustedKey { .. })
            ));
        }
    }

    #[test]
    fn bundle_for_picks_the_keys_signature() {
        let ed = fixed_key(Algorithm::Ed25519);
        let p256 = fixed_key(Algorithm::EcdsaP256);
        let mut env = dsse::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT, &ed).unwrap();
        env.add_signature(&p256).unwrap();
        let b = bundle_for(&env, p256.public_key()).unwrap();
        assert_eq!(b.envelope().signatures().len(), 1);
        assert_eq!(b.hint(), p256.public_key().key_id());
        let stranger = SigningKey::generate(Algorithm::Ed25519).unwrap();
        assert!(matches!(
            bundle_for(&env, stranger.public_key()),
            Err(BundleError::NotSignedBy { .. })
        ));
    }

    #[test]
    fn tampered_bundle_fails() {
        for alg in Algorithm::ALL {
            let (key, b) = bundle(alg);
            let mut v: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
            v["dsseEnvelope"]["payload"] = "e30=".into();
            let tampered = Bundle::from_json(v.to_string().as_bytes()).unwrap();
            assert!(matches!(
                tampered.verify(&[key.public_key().clone()]),
                Err(BundleError::Dsse(DsseError::BadSignature { .. }))
            ));
        }
    }

    #[test]
    fn strict_parsing() {
        let (_, b) = bundle(Algorithm::EcdsaP256);
        let good: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
        type Edit = fn(&mut serde_json::Value);
        let edits: [(&str, Edit); 9] = [
            ("media type", |v| {
                v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2".into()
            }),
            ("unknown field", |v| v["extra"] = 1.into()),
            ("tlog entry", |v| v["verificationMaterial"]["tlogEntries"] = serde_json::json!([{}])),
            ("timestamp", |v| {
                v["verificationMaterial"]["timestampVerificationData"] =
                    serde_json::json!({"rfc3161Timestamps": [{"signedTimestamp": "AA=="}]})
            }),
            ("certificate", |v| {
                v["verificationMaterial"]["certificate"] = serde_json::json!({"rawBytes": "AA=="})
            }),
            ("no public key", |v| {
                v["verificationMaterial"].as_object_mut().unwrap().remove("publicKey");
            }),
            ("two signatures", |v| {
                let s = v["dsseEnvelope"]["signatures"][0].clone();
                v["dsseEnvelope"]["signatures"].as_array_mut().unwrap().push(s);
            }),
            ("keyid differs from hint", |v| {
                v["dsseEnvelope"]["signatures"][0]["keyid"] = "x".into()
            }),
            ("message signature", |v| {
                v.as_object_mut().unwrap().remove("dsseEnvelope");
                v["messageSignature"] = serde_json::json!({});
            }),
        ];
        for (what, edit) in edits {
            let mut v = good.clone();
            edit(&mut v);
            assert!(Bundle::from_json(v.to_string().as_bytes()).is_err(), "accepted: {what}");
        }
        // Empty timestamp data and absent tlogEntries are fine (proto3 JSON may omit them).
        let mut v = good.clone();
        v["verificationMaterial"]["timestampVerificationData"] =
            serde_json::json!({"rfc3161Timestamps": []});
        v["verificationMaterial"].as_object_mut().unwrap().remove("tlogEntries");
        assert_eq!(Bundle::from_json(v.to_string().as_bytes()).unwrap(), b);
    }

    #[test]
    fn collection_round_trip() {
        let (_, a) = bundle(Algorithm::Ed25519);
        let (_, b) = bundle(Algorithm::EcdsaP256);
        let text = to_collection(&[a.clone(), b.clone()]);
        assert_eq!(text.lines().count(), 4);
        assert!(text.starts_with("[\n{") && text.ends_with("}\n]\n"));
        assert_eq!(parse_collection(text.as_bytes()).unwrap(), [a.clone(), b]);
        assert_eq!(to_collection(&[]), "[]\n");
        assert!(parse_collection(b"[]").unwrap().is_empty());
        let bad = format!("[{},{{}}]", a.to_json());
        assert!(matches!(
            parse_collection(bad.as_bytes()),
            Err(BundleError::Element { index: 1, .. })
        ));
    }
}
