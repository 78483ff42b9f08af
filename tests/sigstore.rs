//! Upstream Sigstore bundles: `cairn::sigstore::verify_bundle` and `cairn sigstore
//! verify-bundle`, against a Sigstore instance the tests make up on the spot.
//!
//! [`Instance`] is a Fulcio-like CA (root + intermediate), a CT log that puts an embedded SCT
//! in every leaf, and a Rekor-like log whose entries carry an inclusion promise (SET) and an
//! inclusion proof with a signed checkpoint (a one-leaf tree). Its trusted root is the
//! protobuf-specs `TrustedRoot` JSON. Nothing is committed and nothing touches the network.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cairn::digest::Digest;
use cairn::sigstore::{Artifact, SignedContent, Signer, SigstoreError, TrustAnchor, verify_bundle};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SigningKey,
};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::util::TestDir;

mod trust;

const ISSUER: &str = "https://oidc.cairn.test";
const EMAIL: &str = "release@cairn.test";
const URI_ID: &str = "https://ci.cairn.test/workflows/release@refs/tags/v1";
const ARTIFACT: &[u8] = b"an upstream component\n";

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generating a P-256 key")
}

fn sign(key: &KeyPair, msg: &[u8]) -> Vec<u8> {
    key.sign(msg).expect("signing")
}

/// A made-up Sigstore instance: CA, CT log, transparency log.
struct Instance {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_spki: Vec<u8>,
    ct_key: KeyPair,
    rekor_key: KeyPair,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, "cairn test");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    p
}

impl Instance {
    fn new() -> Instance {
        let root_key = p256();
        let root_params = ca_params("cairn test root");
        let root_der = root_params.self_signed(&root_key).expect("root").der().to_vec();
        let root = Issuer::new(root_params, root_key);
        let int_key = p256();
        let int_params = ca_params("cairn test intermediate");
        let intermediate_der =
            int_params.signed_by(&int_key, &root).expect("intermediate").der().to_vec();
        let intermediate_spki = int_key.subject_public_key_info();
        Instance {
            root_der,
            intermediate_der,
            intermediate: Issuer::new(int_params, int_key),
            intermediate_spki,
            ct_key: p256(),
            rekor_key: p256(),
        }
    }

    fn log_json(key: &KeyPair) -> Value {
        let spki = key.subject_public_key_info();
        json!({
            "baseUrl": "https://log.cairn.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": B64.encode(&spki),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2020-01-01T00:00:00Z"}
            },
            "logId": {"keyId": B64.encode(sha256(&spki))}
        })
    }

    fn trusted_root(&self) -> Vec<u8> {
        self.trusted_root_with(&self.rekor_key, &[&self.intermediate_der, &self.root_der])
    }

    fn trusted_root_with(&self, rekor: &KeyPair, chain: &[&[u8]]) -> Vec<u8> {
        let certs: Vec<Value> = chain.iter().map(|c| json!({"rawBytes": B64.encode(c)})).collect();
        serde_json::to_vec(&json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [Self::log_json(rekor)],
            "certificateAuthorities": [{
                "subject": {"organization": "cairn test", "commonName": "cairn test"},
                "uri": "https://fulcio.cairn.test",
                "certChain": {"certificates": certs},
                "validFor": {"start": "2020-01-01T00:00:00Z"}
            }],
            "ctlogs": [Self::log_json(&self.ct_key)],
            "timestampAuthorities": []
        }))
        .expect("trusted root JSON")
    }

    /// A Fulcio-style leaf for `san` and `issuer`, with an SCT from the CT log.
    fn leaf(&self, san: SanType, issuer: &str) -> (Vec<u8>, KeyPair) {
        let key = p256();
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![san];
        p.serial_number = Some(SerialNumber::from(vec![0x42, 0x17]));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2098, 1, 1);
        p.use_authority_key_identifier_extension = true;
        // 1.3.6.1.4.1.57264.1.1: the issuer as raw bytes; .1.8: the issuer as UTF8String.
        p.custom_extensions = vec![
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 1], issuer.into()),
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 8], der_utf8(issuer)),
        ];
        // The precertificate: the same TBS without the SCT extension.
        let precert = p.signed_by(&key, &self.intermediate).expect("precert").der().to_vec();
        let tbs = tbs_of(&precert);
        let timestamp_ms: u64 = 1_704_153_600_000; // 2024-01-02
        let mut signed = vec![0u8, 0u8]; // v1, certificate_timestamp
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
        signed.extend_from_slice(&sha256(&self.intermediate_spki));
        signed.extend_from_slice(&u24(tbs.len()));
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&0u16.to_be_bytes()); // no extensions
        let sig = sign(&self.ct_key, &signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&sha256(&self.ct_key.subject_public_key_info()));
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&u16_len(sig.len()));
        sct.extend_from_slice(&sig);
        let mut list = u16_len(sct.len() + 2).to_vec();
        list.extend_from_slice(&u16_len(sct.len()));
        list.extend_from_slice(&sct);
        p.custom_extensions.push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
            der_octet_string(&list),
        ));
        let cert = p.signed_by(&key, &self.intermediate).expect("leaf").der().to_vec();
        assert_eq!(tbs_of_without_sct(&cert), tbs, "the precert TBS must match the leaf's");
        (cert, key)
    }

    /// A Rekor v1 entry for `body`, signed by `log` (SET and checkpoint), as bundle JSON.
    fn tlog_entry(&self, log: &KeyPair, kind: &str, body: &Value) -> Value {
        let body = serde_json::to_vec(body).expect("body JSON");
        let spki = log.subject_public_key_info();
        let log_id = sha256(&spki);
        let integrated_time = now() - 60;
        let set_payload = serde_json::to_vec(&json!({
            "body": B64.encode(&body),
            "integratedTime": integrated_time,
            "logID": hex::encode(log_id),
            "logIndex": 0,
        }))
        .expect("SET payload");
        let set = sign(log, &set_payload);
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(&body);
        let root_hash = sha256(&leaf);
        let origin = "log.cairn.test";
        let note = format!("{origin}\n1\n{}\n", B64.encode(root_hash));
        let mut note_sig = log_id[..4].to_vec();
        note_sig.extend_from_slice(&sign(log, note.as_bytes()));
        let checkpoint = format!("{note}\n\u{2014} {origin} {}\n", B64.encode(note_sig));
        json!({
            "logIndex": "0",
            "logId": {"keyId": B64.encode(log_id)},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": B64.encode(set)},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": B64.encode(root_hash),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint}
            },
            "canonicalizedBody": B64.encode(&body)
        })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn u24(n: usize) -> [u8; 3] {
    let b = (n as u32).to_be_bytes();
    [b[1], b[2], b[3]]
}

fn u16_len(n: usize) -> [u8; 2] {
    (n as u16).to_be_bytes()
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der_octet_string(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

fn der_utf8(s: &str) -> Vec<u8> {
    let mut out = vec![0x0c];
    out.extend(der_len(s.len()));
    out.extend_from_slice(s.as_bytes());
    out
}

fn tbs_of(cert_der: &[u8]) -> Vec<u8> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert_der).expect("parsing a test certificate");
    cert.tbs_certificate.to_der().expect("encoding TBS")
}

fn tbs_of_without_sct(cert_der: &[u8]) -> Vec<u8> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert_der).expect("parsing a test certificate");
    let mut tbs = cert.tbs_certificate;
    let sct_oid = x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
    tbs.extensions =
        tbs.extensions.map(|e| e.into_iter().filter(|x| x.extn_id != sct_oid).collect());
    tbs.to_der().expect("encoding TBS")
}

/// The verification material of a bundle: a certificate or a key hint.
enum Material<'a> {
    Cert(&'a [u8]),
    Key,
}

fn bundle(material: Material<'_>, tlog: Vec<Value>, content: (&str, Value)) -> Vec<u8> {
    let vm = match material {
        Material::Cert(der) => json!({"certificate": {"rawBytes": B64.encode(der)}}),
        Material::Key => json!({"publicKey": {"hint": "upstream-key"}}),
    };
    let mut vm = vm;
    vm["tlogEntries"] = Value::Array(tlog);
    let mut b = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": vm,
    });
    b[content.0] = content.1;
    serde_json::to_vec(&b).expect("bundle JSON")
}

fn message_signature(key: &KeyPair, artifact: &[u8]) -> (Vec<u8>, Value) {
    let sig = sign(key, artifact);
    let content = json!({
        "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(sha256(artifact))},
        "signature": B64.encode(&sig)
    });
    (sig, content)
}

fn statement(artifact: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "component.tar", "digest": {"sha256": hex::encode(sha256(artifact))}}],
        "predicateType": "https://cairn.test/predicate/v1",
        "predicate": {}
    }))
    .expect("statement JSON")
}

fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} ", payload_type.len(), payload_type).into_bytes();
    out.extend_from_slice(format!("{} ", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

const IN_TOTO: &str = "application/vnd.in-toto+json";

fn dsse(key: &KeyPair, payload: &[u8]) -> (Vec<u8>, Value) {
    let sig = sign(key, &pae(IN_TOTO, payload));
    let env = json!({
        "payload": B64.encode(payload),
        "payloadType": IN_TOTO,
        "signatures": [{"sig": B64.encode(&sig), "keyid": ""}]
    });
    (sig, env)
}

fn hashedrekord_body(sig: &[u8], verifier_pem: &str, artifact: &[u8]) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(sha256(artifact))}},
            "signature": {
                "content": B64.encode(sig),
                "publicKey": {"content": B64.encode(verifier_pem)}
            }
        }
    })
}

fn dsse_body(sig: &[u8], verifier_pem: &str, env: &Value, payload: &[u8]) -> Value {
    let env_bytes = serde_json::to_vec(env).expect("envelope JSON");
    json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hex::encode(sha256(&env_bytes))},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(sha256(payload))},
            "signatures": [{"signature": B64.encode(sig), "verifier": B64.encode(verifier_pem)}]
        }
    })
}

/// A keyless message-signature bundle over `artifact` by a leaf for (`san`, `issuer`).
fn keyless_message_bundle(inst: &Instance, san: SanType, issuer: &str, artifact: &[u8]) -> Vec<u8> {
    let (cert, key) = inst.leaf(san, issuer);
    let (sig, content) = message_signature(&key, artifact);
    let body = hashedrekord_body(&sig, &pem("CERTIFICATE", &cert), artifact);
    let entry = inst.tlog_entry(&inst.rekor_key, "hashedrekord", &body);
    bundle(Material::Cert(&cert), vec![entry], ("messageSignature", content))
}

fn keyless_dsse_bundle(inst: &Instance, artifact: &[u8]) -> Vec<u8> {
    let (cert, key) = inst.leaf(email(EMAIL), ISSUER);
    let payload = statement(artifact);
    let (sig, env) = dsse(&key, &payload);
    let body = dsse_body(&sig, &pem("CERTIFICATE", &cert), &env, &payload);
    let entry = inst.tlog_entry(&inst.rekor_key, "dsse", &body);
    bundle(Material::Cert(&cert), vec![entry], ("dsseEnvelope", env))
}

fn email(s: &str) -> SanType {
    SanType::Rfc822Name(s.try_into().expect("an IA5 email"))
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().expect("an IA5 URI"))
}

fn keyless(identity: &str, issuer: &str, root: &[u8]) -> TrustAnchor {
    TrustAnchor::Keyless {
        identity: identity.into(),
        issuer: issuer.into(),
        trusted_root_json: root.to_vec(),
    }
}

fn key_anchor(key: &KeyPair) -> TrustAnchor {
    TrustAnchor::public_key(pem("PUBLIC KEY", &key.subject_public_key_info()).into_bytes())
}

fn flip_b64_field(bundle: &[u8], pointer: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bundle).expect("bundle JSON");
    let field = v.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer}"));
    let mut bytes = B64.decode(field.as_str().expect("a string")).expect("base64");
    let last = bytes.len() - 1;
    bytes[last / 2] ^= 0x01;
    *field = Value::String(B64.encode(bytes));
    serde_json::to_vec(&v).expect("bundle JSON")
}

// ---- key-based ------------------------------------------------------------------------------

#[test]
fn key_message_signature_verifies_from_bytes_digest_and_file() {
    let key = p256();
    let (_, content) = message_signature(&key, ARTIFACT);
    let b = bundle(Material::Key, vec![], ("messageSignature", content));
    let anchor = key_anchor(&key);
    let ok = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &anchor).expect("verifies");
    assert_eq!(ok.artifact(), Digest::of(ARTIFACT));
    assert_eq!(ok.content(), SignedContent::MessageSignature);
    assert_eq!(ok.tlog_entries_verified(), 0);
    assert!(matches!(ok.signer(), Signer::PublicKey { .. }));
    verify_bundle(&b, Artifact::Digest(Digest::of(ARTIFACT)), &anchor).expect("from digest");
    let dir = TestDir::new("sigstore-key-file");
    let path = dir.write("a.bin", ARTIFACT);
    verify_bundle(&b, Artifact::File(&path), &anchor).expect("from file");
}

#[test]
fn key_dsse_verifies_and_returns_the_statement() {
    let key = p256();
    let payload = statement(ARTIFACT);
    let (_, env) = dsse(&key, &payload);
    let b = bundle(Material::Key, vec![], ("dsseEnvelope", env));
    let ok = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &key_anchor(&key)).expect("verifies");
    assert_eq!(ok.content(), SignedContent::Dsse);
    assert_eq!(ok.dsse_payload(), Some(&payload[..]));
    let err = verify_bundle(&b, Artifact::Bytes(b"other"), &key_anchor(&key)).unwrap_err();
    assert!(matches!(err, SigstoreError::ArtifactMismatch(_)), "{err}");
}

#[test]
fn key_based_failures() {
    let key = p256();
    let (_, content) = message_signature(&key, ARTIFACT);
    let b = bundle(Material::Key, vec![], ("messageSignature", content));
    // Wrong key.
    let err = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &key_anchor(&p256())).unwrap_err();
    assert!(matches!(err, SigstoreError::BadSignature(_)), "{err}");
    // Tampered artifact.
    let err = verify_bundle(&b, Artifact::Bytes(b"tampered"), &key_anchor(&key)).unwrap_err();
    assert!(matches!(err, SigstoreError::ArtifactMismatch(_)), "{err}");
    // Tampered signature.
    let bad = flip_b64_field(&b, "/messageSignature/signature");
    let err = verify_bundle(&bad, Artifact::Bytes(ARTIFACT), &key_anchor(&key)).unwrap_err();
    assert!(matches!(err, SigstoreError::BadSignature(_)), "{err}");
    // A digest of another artifact.
    let err = verify_bundle(&b, Artifact::Digest(Digest::of(b"x")), &key_anchor(&key)).unwrap_err();
    assert!(matches!(err, SigstoreError::ArtifactMismatch(_)), "{err}");
    // Garbage key.
    let err =
        verify_bundle(&b, Artifact::Bytes(ARTIFACT), &TrustAnchor::public_key(b"nope".to_vec()))
            .unwrap_err();
    assert!(matches!(err, SigstoreError::InvalidKey(_)) && err.is_input_error(), "{err}");
    // Truncated bundle.
    let err =
        verify_bundle(&b[..b.len() / 2], Artifact::Bytes(ARTIFACT), &key_anchor(&key)).unwrap_err();
    assert!(matches!(err, SigstoreError::MalformedBundle(_)), "{err}");
}

#[test]
fn key_bundle_with_tlog_entry_checked_against_the_trusted_root() {
    let inst = Instance::new();
    let key = p256();
    let key_pem = pem("PUBLIC KEY", &key.subject_public_key_info());
    let (sig, content) = message_signature(&key, ARTIFACT);
    let body = hashedrekord_body(&sig, &key_pem, ARTIFACT);
    let entry = inst.tlog_entry(&inst.rekor_key, "hashedrekord", &body);
    let b = bundle(Material::Key, vec![entry], ("messageSignature", content.clone()));
    let with_root = TrustAnchor::PublicKey {
        pem: key_pem.clone().into_bytes(),
        trusted_root_json: Some(inst.trusted_root()),
    };
    let ok = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &with_root).expect("verifies");
    assert_eq!(ok.tlog_entries_verified(), 1);
    // Without a trusted root the entry is only checked for consistency (threshold 0).
    let ok = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &key_anchor(&key)).expect("verifies");
    assert_eq!(ok.tlog_entries_verified(), 0);
    // An entry from a log the trusted root does not know.
    let rogue = p256();
    let entry = inst.tlog_entry(&rogue, "hashedrekord", &body);
    let b = bundle(Material::Key, vec![entry], ("messageSignature", content));
    let err = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &with_root).unwrap_err();
    assert!(matches!(err, SigstoreError::TransparencyLog(_)), "{err}");
}

#[test]
fn cairn_signed_bundles_verify_with_the_key() {
    for alg in [cairn::sign::keys::Algorithm::Ed25519, cairn::sign::keys::Algorithm::EcdsaP256] {
        let sk = cairn::sign::keys::SigningKey::generate(alg).expect("keygen");
        let payload = statement(ARTIFACT);
        let env = cairn::sign::dsse::sign(IN_TOTO, &payload, &sk).expect("sign");
        let b = cairn::sign::bundle::bundle_for(&env, sk.public_key()).expect("bundle");
        let anchor = TrustAnchor::public_key(sk.public_key().to_spki_pem().into_bytes());
        verify_bundle(b.to_json().as_bytes(), Artifact::Bytes(ARTIFACT), &anchor)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }
}

// ---- keyless --------------------------------------------------------------------------------

#[test]
fn keyless_message_signature_verifies_for_email_and_uri_identities() {
    let inst = Instance::new();
    let root = inst.trusted_root();
    let b = keyless_message_bundle(&inst, email(EMAIL), ISSUER, ARTIFACT);
    let ok = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &keyless(EMAIL, ISSUER, &root))
        .expect("verifies");
    assert_eq!(ok.signer(), &Signer::Identity { identity: EMAIL.into(), issuer: ISSUER.into() });
    assert_eq!(ok.tlog_entries_verified(), 1);
    assert!(ok.signed_at().is_some());
    verify_bundle(&b, Artifact::Digest(Digest::of(ARTIFACT)), &keyless(EMAIL, ISSUER, &root))
        .expect("from digest");
    let b = keyless_message_bundle(&inst, uri(URI_ID), ISSUER, ARTIFACT);
    verify_bundle(&b, Artifact::Bytes(ARTIFACT), &keyless(URI_ID, ISSUER, &root))
        .expect("URI identity verifies");
}

#[test]
fn keyless_dsse_verifies() {
    let inst = Instance::new();
    let b = keyless_dsse_bundle(&inst, ARTIFACT);
    let anchor = keyless(EMAIL, ISSUER, &inst.trusted_root());
    let ok = verify_bundle(&b, Artifact::Bytes(ARTIFACT), &anchor).expect("verifies");
    assert_eq!(ok.content(), SignedContent::Dsse);
    let err = verify_bundle(&b, Artifact::Bytes(b"tampered"), &anchor).unwrap_err();
    assert!(matches!(err, SigstoreError::ArtifactMismatch(_)), "{err}");
}

#[test]
fn keyless_failures() {
    let inst = Instance::new();
    let root = inst.trusted_root();
    let b = keyless_message_bundle(&inst, email(EMAIL), ISSUER, ARTIFACT);
    let check = |bundle: &[u8], artifact: &[u8], anchor: &TrustAnchor| {
        verify_bundle(bundle, Artifact::Bytes(artifact), anchor).unwrap_err()
    };
    // Wrong identity (exact match only: a prefix or another kind is not enough).
    for other in ["other@cairn.test", "release@cairn.tes", "RELEASE@cairn.test"] {
        let err = check(&b, ARTIFACT, &keyless(other, ISSUER, &root));
        assert!(matches!(err, SigstoreError::IdentityMismatch { .. }), "{other}: {err}");
    }
    // Wrong issuer.
    let err = check(&b, ARTIFACT, &keyless(EMAIL, "https://evil.test", &root));
    assert!(matches!(err, SigstoreError::IssuerMismatch { .. }), "{err}");
    // Tampered artifact.
    let err = check(&b, b"tampered", &keyless(EMAIL, ISSUER, &root));
    assert!(matches!(err, SigstoreError::ArtifactMismatch(_)), "{err}");
    // Tampered signature.
    let bad = flip_b64_field(&b, "/messageSignature/signature");
    let err = check(&bad, ARTIFACT, &keyless(EMAIL, ISSUER, &root));
    assert!(matches!(err, SigstoreError::BadSignature(_)), "{err}");
    // A certificate from a CA the trusted root does not hold (logged in the trusted log).
    let other = Instance::new();
    let (cert, key) = other.leaf(email(EMAIL), ISSUER);
    let (sig, content) = message_signature(&key, ARTIFACT);
    let body = hashedrekord_body(&sig, &pem("CERTIFICATE", &cert), ARTIFACT);
    let entry = inst.tlog_entry(&inst.rekor_key, "hashedrekord", &body);
    let foreign = bundle(Material::Cert(&cert), vec![entry], ("messageSignature", content));
    let err = check(&foreign, ARTIFACT, &keyless(EMAIL, ISSUER, &root));
    assert!(matches!(err, SigstoreError::UntrustedCertificate(_)), "{err}");
    // An SCT from a CT log the trusted root does not hold.
    let mut other_ct: Value = serde_json::from_slice(&root).expect("root JSON");
    other_ct["ctlogs"] = json!([Instance::log_json(&other.ct_key)]);
    let other_ct = serde_json::to_vec(&other_ct).expect("root JSON");
    let err = check(&b, ARTIFACT, &keyless(EMAIL, ISSUER, &other_ct));
    assert!(matches!(err, SigstoreError::Sct(_)), "{err}");
    // A tlog entry signed by a log the trusted root does not hold.
    let (cert, key) = inst.leaf(email(EMAIL), ISSUER);
    let (sig, content) = message_signature(&key, ARTIFACT);
    let body = hashedrekord_body(&sig, &pem("CERTIFICATE", &cert), ARTIFACT);
    let rogue_entry = inst.tlog_entry(&p256(), "hashedrekord", &body);
    let rogue = bundle(Material::Cert(&cert), vec![rogue_entry], ("messageSignature", content));
    let err = check(&rogue, ARTIFACT, &keyless(EMAIL, ISSUER, &root));
    assert!(matches!(err, SigstoreError::TransparencyLog(_)), "{err}");
    // A certificate bundle is not accepted for a key, nor a key bundle for an identity.
    let err = check(&b, ARTIFACT, &key_anchor(&p256()));
    assert!(matches!(err, SigstoreError::CertificateBundleWithKey), "{err}");
    let key = p256();
    let (_, content) = message_signature(&key, ARTIFACT);
    let kb = bundle(Material::Key, vec![], ("messageSignature", content));
    let err = check(&kb, ARTIFACT, &keyless(EMAIL, ISSUER, &root));
    assert!(matches!(err, SigstoreError::KeyBundleWithoutKey), "{err}");
    // A trusted root that is not one.
    let err = check(&b, ARTIFACT, &keyless(EMAIL, ISSUER, b"{}"));
    assert!(err.is_input_error(), "{err}");
}

#[test]
fn keyless_without_the_right_intermediate_is_rejected() {
    let inst = Instance::new();
    // Only the root is trusted, and the bundle carries no intermediate: no path.
    let root = inst.trusted_root_with(&inst.rekor_key, &[&inst.root_der]);
    let b = keyless_message_bundle(&inst, email(EMAIL), ISSUER, ARTIFACT);
    let err =
        verify_bundle(&b, Artifact::Bytes(ARTIFACT), &keyless(EMAIL, ISSUER, &root)).unwrap_err();
    assert!(matches!(err, SigstoreError::UntrustedCertificate(_)), "{err}");
}

// ---- the conformance CLI protocol -----------------------------------------------------------

fn write(dir: &TestDir, name: &str, bytes: &[u8]) -> String {
    dir.write(name, bytes).display().to_string()
}

fn verify_bundle_cli(dir: &TestDir, args: &[&str]) -> i32 {
    let out = dir.cairn().arg("sigstore").arg("verify-bundle").args(args).run();
    out.code().unwrap_or_else(|| panic!("killed by a signal\n{}", out.report()))
}

/// The argv shapes sigstore-conformance uses, in its order:
/// `verify-bundle --bundle F --certificate-identity I --certificate-oidc-issuer U
/// [--trusted-root F] FILE_OR_DIGEST` and `verify-bundle --bundle F --key K
/// [--trusted-root F] FILE_OR_DIGEST`.
#[test]
fn conformance_argv_shapes() {
    let dir = TestDir::new("sigstore-conformance");
    let inst = Instance::new();
    let root = write(&dir, "trusted_root.json", &inst.trusted_root());
    let artifact = write(&dir, "a.txt", ARTIFACT);
    let digest = Digest::of(ARTIFACT).to_string();
    let other = Digest::of(b"other").to_string();

    let keyless_b = write(
        &dir,
        "keyless.sigstore.json",
        &keyless_message_bundle(&inst, email(EMAIL), ISSUER, ARTIFACT),
    );
    // `--bundle F --certificate-identity I --certificate-oidc-issuer U [--trusted-root F] S`.
    let keyless = |identity: &str, root: Option<&str>, subject: &str| {
        let mut args = vec!["--bundle", &keyless_b, "--certificate-identity", identity];
        args.extend(["--certificate-oidc-issuer", ISSUER]);
        args.extend(root.map(|r| ["--trusted-root", r]).into_iter().flatten());
        args.push(subject);
        (verify_bundle_cli(&dir, &args), format!("{args:?}"))
    };
    for (subject, code) in [(artifact.as_str(), 0), (digest.as_str(), 0), (other.as_str(), 1)] {
        let (got, args) = keyless(EMAIL, Some(&root), subject);
        assert_eq!(got, code, "{args}");
    }
    let (got, args) = keyless("other@cairn.test", Some(&root), &artifact);
    assert_eq!(got, 1, "the wrong identity: {args}");
    // Keyless without a trusted root: the built-in public-good root, which does not know
    // this made-up instance (tests/sigstore/trust.rs covers the root selection).
    let (got, args) = keyless(EMAIL, None, &artifact);
    assert_eq!(got, 1, "{args}");

    let key = p256();
    let key_pem =
        write(&dir, "key.pub", pem("PUBLIC KEY", &key.subject_public_key_info()).as_bytes());
    let other_pem =
        write(&dir, "other.pub", pem("PUBLIC KEY", &p256().subject_public_key_info()).as_bytes());
    let (_, content) = message_signature(&key, ARTIFACT);
    let key_b = write(
        &dir,
        "key.sigstore.json",
        &bundle(Material::Key, vec![], ("messageSignature", content)),
    );
    for (k, root_args, subject, code) in [
        (&key_pem, vec![], artifact.as_str(), 0),
        (&key_pem, vec!["--trusted-root", root.as_str()], artifact.as_str(), 0),
        (&key_pem, vec![], digest.as_str(), 0),
        (&key_pem, vec!["--trusted-root", root.as_str()], digest.as_str(), 0),
        (&key_pem, vec![], other.as_str(), 1),
        (&other_pem, vec![], artifact.as_str(), 1),
    ] {
        let mut args = vec!["--bundle", key_b.as_str(), "--key", k.as_str()];
        args.extend(root_args);
        args.push(subject);
        assert_eq!(verify_bundle_cli(&dir, &args), code, "{args:?}");
    }
    // A `sha256:` name that exists on disk is a path, as the protocol says.
    let tricky = format!("sha256:{}", Digest::of(ARTIFACT).hex());
    dir.write(&tricky, b"not the artifact");
    let args = ["--bundle", key_b.as_str(), "--key", key_pem.as_str(), tricky.as_str()];
    assert_eq!(verify_bundle_cli(&dir, &args), 1, "a file named like a digest is a file");
    // Usage errors: both anchors, neither, a missing bundle.
    let both = [
        "--bundle",
        &key_b,
        "--key",
        &key_pem,
        "--certificate-identity",
        EMAIL,
        "--certificate-oidc-issuer",
        ISSUER,
        &artifact,
    ];
    assert_eq!(verify_bundle_cli(&dir, &both), 2);
    assert_eq!(verify_bundle_cli(&dir, &["--bundle", &key_b, &artifact]), 2);
    let missing = dir.join("missing.json").display().to_string();
    assert_eq!(verify_bundle_cli(&dir, &["--bundle", &missing, "--key", &key_pem, &artifact]), 2);
    assert!(Path::new(&artifact).exists());
}

/// `upstream:` policy rules, end to end: the hello image is built and signed, its
/// `hello-app` component is "signed upstream" over its pinned manifest digest (by a key, then
/// by a keyless identity), and `cairn verify --upstream-bundles` checks it.
#[test]
fn verify_checks_upstream_component_signatures_from_policy_rules() {
    let t = TestDir::new("upstream-policy");
    t.import_hello();
    let spec = crate::util::repo().join("examples/hello.yml");
    t.cairn().args(["keygen", "--out"]).arg(t.join("release")).ok();
    t.cairn()
        .arg("build")
        .arg(&spec)
        .args(["--locked", "-f", "tar", "-o"])
        .arg(t.join("out"))
        .arg("--sign-key")
        .arg(t.join("release.key"))
        .ok();
    let lock: Value = serde_json::from_slice(
        &std::fs::read(crate::util::repo().join("examples/hello.yml.lock")).unwrap(),
    )
    .unwrap();
    let digest =
        lock["images"]["cairn.example/hello-app:1"]["digest"].as_str().unwrap().to_string();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let manifest = std::fs::read(t.store().join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(format!("sha256:{}", hex::encode(sha256(&manifest))), digest);

    // Key-based upstream signature over the manifest.
    let upstream_key = p256();
    t.write("upstream.pub", pem("PUBLIC KEY", &upstream_key.subject_public_key_info()));
    let (_, content) = message_signature(&upstream_key, &manifest);
    let bundles = t.mkdir("upstream");
    std::fs::write(
        bundles.join(format!("sha256-{hex}.sigstore.json")),
        bundle(Material::Key, vec![], ("messageSignature", content)),
    )
    .unwrap();
    let keys = format!("keys:\n  - name: release\n    path: {}\n", t.join("release.pub").display());
    let policy = |rule: &str| {
        t.write(
            "policy.yaml",
            format!(
                "{keys}upstream:
{rule}"
            ),
        )
    };
    let key_rule = format!(
        "  - reference: cairn.example/hello-app\n    publicKey: {{path: {}}}\n",
        t.join("upstream.pub").display()
    );
    let verify = |policy: &Path, bundles: Option<&Path>| {
        let mut c =
            t.cairn().arg("verify").arg(t.join("out")).arg("--policy").arg(policy).arg("--json");
        if let Some(b) = bundles {
            c = c.arg("--upstream-bundles").arg(b);
        }
        c.run()
    };
    let ok = verify(&policy(&key_rule), Some(&bundles));
    assert_eq!(ok.code(), Some(0), "{}", ok.report());
    assert!(ok.stdout().contains("signed upstream"), "{}", ok.report());

    // No bundle directory, or no bundle for the digest: rejected (fail closed).
    let r = verify(&policy(&key_rule), None);
    assert_eq!(r.code(), Some(1), "{}", r.report());
    assert!(r.stdout().contains("no --upstream-bundles"), "{}", r.report());
    let empty = t.mkdir("empty");
    let r = verify(&policy(&key_rule), Some(&empty));
    assert_eq!(r.code(), Some(1), "{}", r.report());
    assert!(r.stdout().contains("no upstream bundle"), "{}", r.report());

    // The bundle does not verify under another key.
    let other = p256();
    t.write("other.pub", pem("PUBLIC KEY", &other.subject_public_key_info()));
    let other_rule = format!(
        "  - reference: cairn.example/hello-app\n    publicKey: {{path: {}}}\n",
        t.join("other.pub").display()
    );
    let r = verify(&policy(&other_rule), Some(&bundles));
    assert_eq!(r.code(), Some(1), "{}", r.report());
    assert!(r.stdout().contains("upstream signature rejected"), "{}", r.report());

    // A rule that names no component of the image is a rejection, not a pass.
    let stray = format!(
        "  - reference: ghcr.io/nobody\n    publicKey: {{path: {}}}\n",
        t.join("upstream.pub").display()
    );
    let r = verify(&policy(&stray), Some(&bundles));
    assert_eq!(r.code(), Some(1), "{}", r.report());

    // Keyless: identity + issuer checked against a trusted root.
    let inst = Instance::new();
    t.write("trusted_root.json", inst.trusted_root());
    std::fs::write(
        bundles.join(format!("sha256-{hex}.sigstore.json")),
        keyless_message_bundle(&inst, email(EMAIL), ISSUER, &manifest),
    )
    .unwrap();
    let keyless_rule = |identity: &str| {
        format!(
            "  - reference: cairn.example/hello-app\n    keyless: {{certificateIdentity: \"{identity}\", certificateOidcIssuer: \"{ISSUER}\"}}\n    trustedRoot: {}\n",
            t.join("trusted_root.json").display()
        )
    };
    let ok = verify(&policy(&keyless_rule(EMAIL)), Some(&bundles));
    assert_eq!(ok.code(), Some(0), "{}", ok.report());
    // The check names the trusted root it used.
    let named = format!("trusted root {}", t.join("trusted_root.json").display());
    assert!(ok.stdout().contains(&named), "{}", ok.report());
    let r = verify(&policy(&keyless_rule("mallory@cairn.test")), Some(&bundles));
    assert_eq!(r.code(), Some(1), "{}", r.report());
    assert!(r.stdout().contains("upstream signature rejected"), "{}", r.report());
}
