//! Upstream Sigstore signatures: verify a Sigstore bundle (v0.1–v0.3 JSON) over an artifact,
//! offline, with the sigstore-rust crates.
//!
//! This module is the only place cairn uses `sigstore-verify` (and, through its re-exports,
//! `sigstore-types`, `sigstore-crypto` and `sigstore-trust-root`), so the rest of the build
//! does not depend on them. It backs the `upstream:` rules of a verify policy (through
//! [`verify_bundle`]) and `cairn sigstore verify-bundle`, which follows the Sigstore
//! conformance CLI protocol.
//!
//! # Trust anchors
//!
//! - **Keyless** ([`TrustAnchor::Keyless`]): the bundle carries a Fulcio-style signing
//!   certificate. It must chain to a certificate authority of the trusted root (the
//!   sigstore protobuf-specs `TrustedRoot` JSON), carry an embedded SCT signed by a CT log of
//!   the trusted root, have the code-signing EKU, name exactly the expected identity in its
//!   SAN (email or URI, compared as whole strings) and the expected OIDC issuer in its Fulcio
//!   extension (`1.3.6.1.4.1.57264.1.8`, else `.1.1`), and be valid at a verified signing
//!   time (a Rekor v1 inclusion promise or an RFC 3161 timestamp of the trusted root). Every
//!   transparency-log entry must carry an inclusion proof whose checkpoint is signed by a log
//!   of the trusted root. Nothing is fetched at verify time: the trusted root is one the
//!   caller names, else the copy `cairn sigstore update-trust-root` refreshed through TUF,
//!   else the public-good (or staging) snapshot compiled into cairn (see [`trust`]).
//! - **Public key** ([`TrustAnchor::PublicKey`]): the bundle carries a public-key hint and
//!   is verified with the given key (PEM SubjectPublicKeyInfo: ECDSA P-256/P-384, Ed25519,
//!   RSA). A key-based bundle needs no transparency log: the log, CT-log and timestamp
//!   thresholds are 0, as `@sigstore/verify` allows for keys (cairn's own bundles, signed
//!   offline, have no log entries). Concretely:
//!   - with a trusted root, every log entry in the bundle must verify against it (inclusion
//!     proof, checkpoint, inclusion promise) and every RFC 3161 timestamp against its
//!     timestamp authorities;
//!   - without one, log entries are checked for consistency with the bundle (same
//!     signature, key and artifact) but not for inclusion, and a bundle with an RFC 3161
//!     timestamp is rejected (there is nothing to check the timestamp against);
//!   - a bundle with neither log entries nor timestamps is accepted on its signature alone.
//!
//!   **What a key-based pass means**: the holder of the private key signed this artifact (or
//!   an in-toto statement naming its sha256). It says nothing about *when*, and nothing about
//!   whether the signature was ever published: a leaked key can sign anything, back-dated,
//!   and key revocation is the policy's business.
//!
//! # Content
//!
//! A bundle holds either a message signature (hashedrekord style: a signature over the
//! artifact bytes, with the artifact's digest) or a DSSE envelope. A DSSE envelope must carry
//! an in-toto statement (`application/vnd.in-toto+json`) with a subject whose sha256 is the
//! artifact's. An artifact given only by its digest works for every prehashed scheme (ECDSA,
//! RSA) and for DSSE; an Ed25519 message signature needs the artifact bytes.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sigstore_verify::crypto::{KeyAlgorithm, SubjectAltName};
use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Bundle, DerPublicKey, Sha256Hash, SignatureContent};
use sigstore_verify::{
    CertificateError, PublicKeyVerificationPolicy, TimestampError, TransparencyLogError,
    VerificationPolicy, Verifier,
};

use crate::digest::Digest;

pub mod trust;
pub mod tuf;

/// Largest bundle or trusted root accepted (both are small JSON documents).
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// The in-toto payload type a DSSE envelope must have.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The trusted root with no authorities: what a key-based verification uses without one.
const EMPTY_TRUSTED_ROOT: &str = r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}"#;

/// Who must have signed.
#[derive(Clone, PartialEq, Eq)]
pub enum TrustAnchor {
    /// A key the verifier already trusts (PEM `PUBLIC KEY`), optionally with a trusted root
    /// JSON to check the bundle's log entries and timestamps against.
    PublicKey { pem: Vec<u8>, trusted_root_json: Option<Vec<u8>> },
    /// A keyless (Fulcio) identity: the exact certificate SAN and OIDC issuer, and the
    /// trusted root JSON holding the CAs, logs and timestamp authorities.
    Keyless { identity: String, issuer: String, trusted_root_json: Vec<u8> },
}

impl TrustAnchor {
    /// A public key with no trusted root (log and timestamp thresholds 0).
    pub fn public_key(pem: impl Into<Vec<u8>>) -> TrustAnchor {
        TrustAnchor::PublicKey { pem: pem.into(), trusted_root_json: None }
    }
}

impl fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustAnchor::PublicKey { trusted_root_json, .. } => f
                .debug_struct("PublicKey")
                .field("trusted_root", &trusted_root_json.is_some())
                .finish_non_exhaustive(),
            TrustAnchor::Keyless { identity, issuer, .. } => f
                .debug_struct("Keyless")
                .field("identity", identity)
                .field("issuer", issuer)
                .finish_non_exhaustive(),
        }
    }
}

/// What was signed.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact bytes.
    Bytes(&'a [u8]),
    /// Only its sha256 (enough for ECDSA, RSA and DSSE bundles, not Ed25519 message
    /// signatures).
    Digest(Digest),
    /// A file, read once (hashed in constant memory where the scheme allows).
    File(&'a Path),
}

/// Which kind of content the bundle signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedContent {
    /// A signature over the artifact itself.
    MessageSignature,
    /// A DSSE envelope over an in-toto statement naming the artifact.
    Dsse,
}

/// Who signed, as established by verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The trusted public key; `spki_sha256` is the sha256 of its DER SubjectPublicKeyInfo.
    PublicKey { spki_sha256: Digest },
    /// A verified keyless certificate with this SAN and OIDC issuer.
    Identity { identity: String, issuer: String },
}

/// Proof that [`verify_bundle`] accepted a bundle: only this module makes one.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    artifact: Digest,
    content: SignedContent,
    signer: Signer,
    tlog_entries_verified: usize,
    signed_at: Option<i64>,
    dsse_payload: Option<Vec<u8>>,
}

impl VerifiedBundle {
    /// The sha256 of the artifact the bundle signs.
    pub fn artifact(&self) -> Digest {
        self.artifact
    }
    pub fn content(&self) -> SignedContent {
        self.content
    }
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
    /// How many transparency-log entries were verified for inclusion against the trusted
    /// root (0 when no trusted root was given for a key).
    pub fn tlog_entries_verified(&self) -> usize {
        self.tlog_entries_verified
    }
    /// The earliest verified signing time (Unix seconds), if the bundle proves one.
    pub fn signed_at(&self) -> Option<i64> {
        self.signed_at
    }
    /// The verified in-toto statement bytes of a DSSE bundle.
    pub fn dsse_payload(&self) -> Option<&[u8]> {
        self.dsse_payload.as_deref()
    }
}

/// Why a bundle was not accepted. The `Malformed*`/`Invalid*`/`Read` variants are bad input
/// (exit 2 on the command line); the others are a verification that said no (exit 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigstoreError {
    #[error("malformed bundle: {0}")]
    MalformedBundle(String),
    #[error("invalid public key: {0}")]
    InvalidKey(String),
    #[error("invalid trusted root: {0}")]
    InvalidTrustedRoot(String),
    #[error("reading the artifact {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("unsupported bundle: {0}")]
    Unsupported(String),
    #[error("the bundle holds a certificate but a public key was given (use an identity)")]
    CertificateBundleWithKey,
    #[error("the bundle holds a public-key hint, not a certificate (use --key)")]
    KeyBundleWithoutKey,
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    #[error("the bundle does not sign this artifact: {0}")]
    ArtifactMismatch(String),
    #[error("certificate identity mismatch: expected {expected}, found {found}")]
    IdentityMismatch { expected: String, found: String },
    #[error("OIDC issuer mismatch: expected {expected}, found {found}")]
    IssuerMismatch { expected: String, found: String },
    #[error("signing certificate is not trusted: {0}")]
    UntrustedCertificate(String),
    #[error("signing certificate has no valid SCT from a trusted CT log: {0}")]
    Sct(String),
    #[error("transparency log entry rejected: {0}")]
    TransparencyLog(String),
    #[error("timestamp rejected: {0}")]
    Timestamp(String),
    #[error("rejected: {0}")]
    Rejected(String),
}

impl SigstoreError {
    /// Whether this is bad input (as opposed to a verification that said no).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            SigstoreError::MalformedBundle(_)
                | SigstoreError::InvalidKey(_)
                | SigstoreError::InvalidTrustedRoot(_)
                | SigstoreError::Read { .. }
        )
    }
}

/// Verifies a Sigstore bundle (JSON bytes) over `artifact` for `anchor`, offline.
///
/// Returns the [`VerifiedBundle`] witness on success; any doubt is an error (fail closed).
/// See the module documentation for what each kind of anchor checks.
pub fn verify_bundle(
    bundle_json: &[u8],
    artifact: Artifact<'_>,
    anchor: &TrustAnchor,
) -> Result<VerifiedBundle, SigstoreError> {
    let bundle = parse_bundle(bundle_json)?;
    let content = match &bundle.content {
        SignatureContent::MessageSignature(_) => SignedContent::MessageSignature,
        SignatureContent::DsseEnvelope(env) => {
            if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(SigstoreError::Unsupported(format!(
                    "DSSE payload type {:?} (only {IN_TOTO_PAYLOAD_TYPE} is accepted)",
                    env.payload_type
                )));
            }
            SignedContent::Dsse
        }
        _ => return Err(SigstoreError::Unsupported("unknown signature content".into())),
    };
    let is_cert = matches!(
        bundle.verification_material.content,
        VerificationMaterialContent::Certificate(_)
            | VerificationMaterialContent::X509CertificateChain { .. }
    );
    match anchor {
        TrustAnchor::PublicKey { pem, trusted_root_json } => {
            if is_cert {
                return Err(SigstoreError::CertificateBundleWithKey);
            }
            let key = parse_public_key(pem)?;
            let root = match trusted_root_json {
                Some(json) => Some(parse_trusted_root(json)?),
                None => None,
            };
            verify_with_key(&bundle, artifact, content, key, root.as_ref())
        }
        TrustAnchor::Keyless { identity, issuer, trusted_root_json } => {
            if !is_cert {
                return Err(SigstoreError::KeyBundleWithoutKey);
            }
            let root = parse_trusted_root(trusted_root_json)?;
            verify_keyless(&bundle, artifact, content, identity, issuer, &root)
        }
    }
}

/// Whether a bundle (JSON) carries transparency-log entries or RFC 3161 timestamps: the
/// evidence a key-based verification checks against a trusted root when there is one.
/// False for anything that does not parse (verification then reports why).
pub fn has_log_or_timestamp(bundle_json: &[u8]) -> bool {
    parse_bundle(bundle_json).is_ok_and(|b| {
        let m = &b.verification_material;
        !m.tlog_entries.is_empty() || !m.timestamp_verification_data.rfc3161_timestamps.is_empty()
    })
}

fn parse_bundle(json: &[u8]) -> Result<Bundle, SigstoreError> {
    if json.len() > MAX_JSON_BYTES {
        return Err(SigstoreError::MalformedBundle(format!("larger than {MAX_JSON_BYTES} bytes")));
    }
    let text = std::str::from_utf8(json)
        .map_err(|_| SigstoreError::MalformedBundle("not UTF-8".into()))?;
    Bundle::from_json(text).map_err(|e| SigstoreError::MalformedBundle(e.to_string()))
}

fn parse_trusted_root(json: &[u8]) -> Result<TrustedRoot, SigstoreError> {
    if json.len() > MAX_JSON_BYTES {
        return Err(SigstoreError::InvalidTrustedRoot(format!(
            "larger than {MAX_JSON_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(json)
        .map_err(|_| SigstoreError::InvalidTrustedRoot("not UTF-8".into()))?;
    TrustedRoot::from_json(text).map_err(|e| SigstoreError::InvalidTrustedRoot(e.to_string()))
}

fn parse_public_key(pem: &[u8]) -> Result<DerPublicKey, SigstoreError> {
    let text =
        std::str::from_utf8(pem).map_err(|_| SigstoreError::InvalidKey("not UTF-8 PEM".into()))?;
    let key = DerPublicKey::from_pem(text).map_err(|e| SigstoreError::InvalidKey(e.to_string()))?;
    KeyAlgorithm::from_spki(&key).map_err(|e| SigstoreError::InvalidKey(e.to_string()))?;
    Ok(key)
}

fn verify_keyless(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    content: SignedContent,
    identity: &str,
    issuer: &str,
    root: &TrustedRoot,
) -> Result<VerifiedBundle, SigstoreError> {
    let verifier = Verifier::new(root).map_err(root_error)?;
    let policy = VerificationPolicy::new(identity, issuer);
    let (result, digest) = run_verifier(&verifier, bundle, artifact, &policy)?;
    if !(result.certificate_verified()
        && result.sct_verified()
        && result.tlog_verified()
        && result.identity_policy_checked())
    {
        return Err(SigstoreError::Rejected("a required keyless check did not run".into()));
    }
    let (Some(found_identity), Some(found_issuer)) = (result.identity(), result.issuer()) else {
        return Err(SigstoreError::Rejected("certificate has no identity or issuer".into()));
    };
    if found_identity.as_str() != identity || found_issuer != issuer {
        return Err(SigstoreError::IdentityMismatch {
            expected: format!("{identity} from {issuer}"),
            found: format!("{} from {found_issuer}", found_identity.as_str()),
        });
    }
    Ok(VerifiedBundle {
        artifact: digest,
        content,
        signer: Signer::Identity {
            identity: found_identity.as_str().to_string(),
            issuer: found_issuer.to_string(),
        },
        tlog_entries_verified: bundle.verification_material.tlog_entries.len(),
        signed_at: result.verified_timestamps().iter().map(|t| t.as_second()).min(),
        dsse_payload: dsse_payload(bundle),
    })
}

fn verify_with_key(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    content: SignedContent,
    key: DerPublicKey,
    root: Option<&TrustedRoot>,
) -> Result<VerifiedBundle, SigstoreError> {
    let spki_sha256 = Digest::of(key.as_bytes());
    let material = &bundle.verification_material;
    let has_evidence = !material.tlog_entries.is_empty()
        || !material.timestamp_verification_data.rfc3161_timestamps.is_empty();
    let (digest, tlog_entries_verified, signed_at) = if has_evidence || root.is_some() {
        let empty;
        let root = match root {
            Some(r) => r,
            None => {
                empty = TrustedRoot::from_json(EMPTY_TRUSTED_ROOT)
                    .map_err(|e| SigstoreError::InvalidTrustedRoot(e.to_string()))?;
                &empty
            }
        };
        let verifier = Verifier::new(root).map_err(root_error)?;
        let mut policy = PublicKeyVerificationPolicy::new(key);
        let check_tlog = root_has_logs(root);
        if !check_tlog {
            policy = policy.skip_tlog_unsafe();
        }
        if !has_evidence {
            // sigstore-verify insists on signing-time evidence; threshold 0 means none is
            // needed for a key, so verify the bare signature here instead.
            let digest = verify_bare_signature(bundle, artifact, policy.public_key())?;
            (digest, 0, None)
        } else {
            let (result, digest) = run_verifier(&verifier, bundle, artifact, &policy)?;
            let verified = if result.tlog_verified() { material.tlog_entries.len() } else { 0 };
            (digest, verified, result.verified_timestamps().iter().map(|t| t.as_second()).min())
        }
    } else {
        (verify_bare_signature(bundle, artifact, &key)?, 0, None)
    };
    Ok(VerifiedBundle {
        artifact: digest,
        content,
        signer: Signer::PublicKey { spki_sha256 },
        tlog_entries_verified,
        signed_at,
        dsse_payload: dsse_payload(bundle),
    })
}

/// Whether a trusted root names any transparency log. A root without logs cannot verify
/// inclusion, so log entries are then only checked for consistency (threshold 0).
fn root_has_logs(root: &TrustedRoot) -> bool {
    !root.tlogs.is_empty()
}

fn dsse_payload(bundle: &Bundle) -> Option<Vec<u8>> {
    match &bundle.content {
        SignatureContent::DsseEnvelope(env) => Some(env.payload.as_bytes().to_vec()),
        _ => None,
    }
}

/// Runs sigstore-verify on the artifact, returning its result and the artifact's sha256.
fn run_verifier<P: sigstore_verify::Policy>(
    verifier: &Verifier,
    bundle: &Bundle,
    artifact: Artifact<'_>,
    policy: &P,
) -> Result<(sigstore_verify::VerificationResult, Digest), SigstoreError> {
    match artifact {
        Artifact::Bytes(bytes) => {
            let result = verifier.verify(bytes, bundle, policy).map_err(verify_error)?;
            Ok((result, Digest::of(bytes)))
        }
        Artifact::Digest(digest) => {
            let hash = Sha256Hash::new(*digest.as_bytes());
            let result = verifier.verify(hash, bundle, policy).map_err(verify_error)?;
            Ok((result, digest))
        }
        Artifact::File(path) => {
            let file = open(path)?;
            let mut reader = crate::digest::HashingReader::new(file);
            let result =
                verifier.verify_reader(&mut reader, bundle, policy).map_err(|e| match e {
                    sigstore_verify::Error::ArtifactRead(source) => {
                        SigstoreError::Read { path: path.display().to_string(), source }
                    }
                    other => verify_error(other),
                })?;
            // The verifier read to EOF; drain anything it left so the digest covers the file.
            std::io::copy(&mut reader, &mut std::io::sink()).map_err(|source| {
                SigstoreError::Read { path: path.display().to_string(), source }
            })?;
            let (digest, _) = reader.finish();
            Ok((result, digest))
        }
    }
}

fn open(path: &Path) -> Result<std::fs::File, SigstoreError> {
    std::fs::File::open(path)
        .map_err(|source| SigstoreError::Read { path: path.display().to_string(), source })
}

/// The artifact as the bare-signature path needs it: its sha256, and its bytes when the
/// signing scheme cannot work from a digest.
struct Prepared {
    digest: Digest,
    bytes: Option<Vec<u8>>,
}

fn prepare_artifact(artifact: Artifact<'_>, need_bytes: bool) -> Result<Prepared, SigstoreError> {
    match artifact {
        Artifact::Bytes(b) => Ok(Prepared {
            digest: Digest::of(b),
            bytes: if need_bytes { Some(b.to_vec()) } else { None },
        }),
        Artifact::Digest(digest) => {
            if need_bytes {
                return Err(SigstoreError::Unsupported(
                    "this signature scheme cannot be checked from a digest: give the artifact file"
                        .into(),
                ));
            }
            Ok(Prepared { digest, bytes: None })
        }
        Artifact::File(path) => {
            let mut file = open(path)?;
            let read_err =
                |source| SigstoreError::Read { path: path.display().to_string(), source };
            if need_bytes {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(read_err)?;
                Ok(Prepared { digest: Digest::of(&bytes), bytes: Some(bytes) })
            } else {
                let mut reader = crate::digest::HashingReader::new(file);
                std::io::copy(&mut reader, &mut std::io::sink()).map_err(read_err)?;
                let (digest, _) = reader.finish();
                Ok(Prepared { digest, bytes: None })
            }
        }
    }
}

/// Verifies a key-based bundle that carries no log entries and no timestamps: the signature
/// with the trusted key, and the binding of the signed content to the artifact.
fn verify_bare_signature(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    key: &DerPublicKey,
) -> Result<Digest, SigstoreError> {
    let algorithm =
        KeyAlgorithm::from_spki(key).map_err(|e| SigstoreError::InvalidKey(e.to_string()))?;
    match &bundle.content {
        SignatureContent::MessageSignature(sig) => {
            let scheme = match &sig.message_digest {
                Some(d) => algorithm
                    .resolve_signing_scheme(d.algorithm)
                    .map_err(|e| SigstoreError::Unsupported(e.to_string()))?,
                None => algorithm.default_signing_scheme(),
            };
            let sha256_scheme =
                scheme.hash_algorithm() == Some(sigstore_verify::types::HashAlgorithm::Sha2256);
            let prepared = prepare_artifact(artifact, !sha256_scheme)?;
            if let Some(d) = &sig.message_digest {
                if d.algorithm != sigstore_verify::types::HashAlgorithm::Sha2256 {
                    return Err(SigstoreError::Unsupported(
                        "message digests other than sha256".into(),
                    ));
                }
                if d.digest.as_bytes() != prepared.digest.as_bytes() {
                    return Err(SigstoreError::ArtifactMismatch(format!(
                        "the bundle's message digest is not {}",
                        prepared.digest
                    )));
                }
            }
            let result = match &prepared.bytes {
                Some(bytes) if !sha256_scheme => {
                    sigstore_verify::crypto::verify_signature(key, bytes, &sig.signature, scheme)
                }
                _ => sigstore_verify::crypto::verify_signature_prehashed(
                    key,
                    prepared.digest.as_bytes(),
                    &sig.signature,
                    scheme,
                ),
            };
            result.map_err(|e| SigstoreError::BadSignature(e.to_string()))?;
            Ok(prepared.digest)
        }
        SignatureContent::DsseEnvelope(env) => {
            sigstore_verify::crypto::verify_signature(
                key,
                &env.pae(),
                &env.signature.sig,
                algorithm.default_signing_scheme(),
            )
            .map_err(|e| SigstoreError::BadSignature(format!("DSSE: {e}")))?;
            let prepared = prepare_artifact(artifact, false)?;
            check_statement_binds(env.payload.as_bytes(), prepared.digest)?;
            Ok(prepared.digest)
        }
        _ => Err(SigstoreError::Unsupported("unknown signature content".into())),
    }
}

/// The DSSE payload must be an in-toto statement with a subject whose sha256 is `digest`.
fn check_statement_binds(payload: &[u8], digest: Digest) -> Result<(), SigstoreError> {
    let statement: sigstore_verify::types::Statement = serde_json::from_slice(payload)
        .map_err(|e| SigstoreError::MalformedBundle(format!("DSSE payload: {e}")))?;
    if !statement.type_.starts_with("https://in-toto.io/Statement/") {
        return Err(SigstoreError::Unsupported(format!(
            "DSSE payload type {:?} is not an in-toto statement",
            statement.type_
        )));
    }
    if !statement.matches_sha256(&Sha256Hash::new(*digest.as_bytes())) {
        return Err(SigstoreError::ArtifactMismatch(format!(
            "no subject of the signed statement has sha256 {}",
            digest.hex()
        )));
    }
    Ok(())
}

fn root_error(e: sigstore_verify::Error) -> SigstoreError {
    SigstoreError::InvalidTrustedRoot(e.to_string())
}

/// Maps a sigstore-verify error to the reason a user can act on.
fn verify_error(e: sigstore_verify::Error) -> SigstoreError {
    use sigstore_verify::Error as E;
    let text = e.to_string();
    match e {
        E::IdentityMismatch { expected, actual } => SigstoreError::IdentityMismatch {
            expected: expected.to_string(),
            found: actual.as_ref().map_or_else(|| "none".to_string(), describe_san),
        },
        E::IssuerMismatch { expected, actual } => SigstoreError::IssuerMismatch {
            expected,
            found: actual.unwrap_or_else(|| "none".to_string()),
        },
        E::SignatureInvalid(m) => SigstoreError::BadSignature(m),
        E::ArtifactMismatch(m) => SigstoreError::ArtifactMismatch(m),
        E::UnsupportedArtifact(m) | E::UnsupportedBundle(m) => SigstoreError::Unsupported(m),
        E::Certificate(CertificateError::Sct(m)) => SigstoreError::Sct(m),
        E::Certificate(_) => SigstoreError::UntrustedCertificate(text),
        E::TransparencyLog(TransparencyLogError::EntryMismatch(m)) => {
            SigstoreError::ArtifactMismatch(format!("log entry does not match the bundle: {m}"))
        }
        E::TransparencyLog(_) => SigstoreError::TransparencyLog(text),
        E::Timestamp(TimestampError::NoVerifiedTimestamp(m)) => SigstoreError::Timestamp(m),
        E::Timestamp(_) => SigstoreError::Timestamp(text),
        E::InvalidBundle(m) => SigstoreError::MalformedBundle(m),
        E::Bundle(_) | E::Types(_) => SigstoreError::MalformedBundle(text),
        E::InvalidTrustRoot(_) | E::TrustRoot(_) | E::TrustedCertificate(_) => {
            SigstoreError::InvalidTrustedRoot(text)
        }
        _ => SigstoreError::Rejected(text),
    }
}

fn describe_san(san: &SubjectAltName) -> String {
    san.as_str().to_string()
}

/// Reads an artifact argument of the conformance protocol: `sha256:<64 hex>` that is not a
/// path on disk is a digest; anything else is a file path.
pub fn artifact_arg(arg: &str) -> ArtifactArg {
    if let Some(hex_part) = arg.strip_prefix("sha256:")
        && hex_part.len() == 64
        && !Path::new(arg).exists()
        && let Some(d) = Digest::from_hex(&hex_part.to_ascii_lowercase())
    {
        return ArtifactArg::Digest(d);
    }
    ArtifactArg::Path(arg.into())
}

/// An artifact named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactArg {
    Digest(Digest),
    Path(std::path::PathBuf),
}

impl ArtifactArg {
    pub fn as_artifact(&self) -> Artifact<'_> {
        match self {
            ArtifactArg::Digest(d) => Artifact::Digest(*d),
            ArtifactArg::Path(p) => Artifact::File(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_argument_forms() {
        let hex = "a".repeat(64);
        assert!(matches!(artifact_arg(&format!("sha256:{hex}")), ArtifactArg::Digest(_)));
        assert!(matches!(
            artifact_arg(&format!("sha256:{}", "A".repeat(64))),
            ArtifactArg::Digest(_)
        ));
        assert!(matches!(artifact_arg("sha256:abc"), ArtifactArg::Path(_)));
        assert!(matches!(
            artifact_arg(&format!("sha256:{}", "g".repeat(64))),
            ArtifactArg::Path(_)
        ));
        assert!(matches!(artifact_arg("file.txt"), ArtifactArg::Path(_)));
    }

    #[test]
    fn garbage_is_malformed_bundle() {
        let anchor = TrustAnchor::public_key(b"x".to_vec());
        for bytes in [&b""[..], b"{", b"not json", b"\xff\xfe", b"{}"] {
            let err = verify_bundle(bytes, Artifact::Bytes(b"a"), &anchor).unwrap_err();
            assert!(matches!(err, SigstoreError::MalformedBundle(_)), "{err}");
        }
    }

    #[test]
    fn empty_trusted_root_parses() {
        let root = TrustedRoot::from_json(EMPTY_TRUSTED_ROOT).unwrap();
        assert!(Verifier::new(&root).is_ok());
    }
}
