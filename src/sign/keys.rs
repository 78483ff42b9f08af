//! Signing keys: generation, PKCS#8/SPKI PEM files, key ids, signing and verification.
//!
//! Two algorithms are supported, and a key file says which one it holds (the algorithm is
//! read from the PKCS#8 or SPKI algorithm identifier, never from a flag):
//!
//! - **Ed25519** (RFC 8032, `ed25519-dalek`). Signatures are 64 raw bytes.
//! - **ECDSA P-256 with SHA-256** (`p256`), the key type cosign and every Sigstore client
//!   accept. The nonce is derived per RFC 6979, so signing is deterministic; `s` is then
//!   normalised to the low half of the group order. Signatures are ASN.1 DER
//!   (`ECDSA-Sig-Value`), which is what DSSE tooling, securesystemslib, cosign and the Sigstore
//!   clients exchange.
//!
//! Both therefore sign the same message with the same key to the same bytes, which keeps
//! signed build outputs byte-identical.
//!
//! # Verification rules
//!
//! Verification is strict; each rule removes a way for two different byte strings to be
//! accepted as "the" signature:
//! - Ed25519 uses `verify_strict` (rejects non-canonical `R`/`s` and small-order keys).
//! - ECDSA accepts only DER, and only the canonical DER encoding (the bytes must re-encode
//!   identically), and only low-`s` signatures. cairn's own signatures are always low-`s`;
//!   a high-`s` signature from another signer (for example Go's `crypto/ecdsa`, which does
//!   not normalise) is rejected with [`SignError::HighS`] rather than silently accepted.
//!
//! # Files
//!
//! - Private keys: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), or encrypted PKCS#8
//!   (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with scrypt (log2 N = 14, r = 8, p = 1)
//!   and AES-256-CBC, readable by OpenSSL 3). Reading also accepts PBES2 with PBKDF2 and
//!   AES-CBC, which is what `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes.
//! - Public keys: SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
//! - [`write_keypair`] creates `<prefix>.key` with mode 0600 from the first byte (never
//!   chmod-after-write) and `<prefix>.pub` with mode 0644, and refuses to replace either.
//!
//! # Passphrases
//!
//! This module takes the passphrase as an argument and never looks anywhere for it. The CLI
//! reads it from the environment variable `CAIRN_KEY_PASSPHRASE`, never from the command line,
//! because argv is visible to every user on the host (`/proc/<pid>/cmdline`, `ps`). An empty
//! passphrase is refused ([`SignError::EmptyPassphrase`]); a passphrase given for a key that is
//! not encrypted is ignored, so a passphrase exported for the whole session does no harm.
//!
//! # Secrets
//!
//! Private key material is never printed: [`SigningKey`]'s `Debug` shows only the algorithm and
//! the key id, errors never quote key bytes or passphrases, and PEM text and decoded DER live
//! in zeroizing buffers. The key types of the underlying crates zeroize themselves on drop.
//!
//! # Key ids
//!
//! [`key_id`] is the standard base64 (with padding) of SHA-256 over the SPKI DER of the public
//! key: the public-key hint Sigstore bundles carry, and the `keyid` of cairn's DSSE signatures.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use pkcs8::der::{Decode, SecretDocument};
use pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
    ObjectIdentifier,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// `id-Ed25519` (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` / `prime256v1` (RFC 5480).
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Decodes a public or private key of either algorithm. `id` is the key's algorithm
/// identifier, already read from its DER (EC keys are taken only on P-256); `ed25519` and
/// `p256` decode the key for the algorithm it names. `what` names the key in errors.
fn decode_key<T, E: fmt::Display>(
    what: &'static str,
    id: Result<pkcs8::spki::AlgorithmIdentifierRef<'_>, pkcs8::der::Error>,
    ed25519: impl FnOnce() -> Result<T, E>,
    p256: impl FnOnce() -> Result<T, E>,
) -> Result<T, SignError> {
    let malformed = |e: &dyn fmt::Display| SignError::MalformedKey { what, reason: e.to_string() };
    let id = id.map_err(|e| malformed(&e))?;
    let decoded = if id.oid == ED25519_OID {
        ed25519()
    } else if id.oid == EC_PUBLIC_KEY_OID {
        let curve = id.parameters_oid().map_err(|e| malformed(&e))?;
        if curve != P256_OID {
            let oid = format!("{} (curve {curve})", id.oid);
            return Err(SignError::UnsupportedAlgorithm { oid });
        }
        p256()
    } else {
        return Err(SignError::UnsupportedAlgorithm { oid: id.oid.to_string() });
    };
    decoded.map_err(|e| malformed(&e))
}

/// Largest key file read. PEM keys of either type are a few hundred bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// A signature algorithm cairn can sign and verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032). The default.
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256, RFC 6979 nonces, DER signatures.
    EcdsaP256,
}

impl Algorithm {
    /// Every algorithm, in the order the CLI lists them.
    pub const ALL: [Algorithm; 2] = [Algorithm::Ed25519, Algorithm::EcdsaP256];

    /// The name used on the command line and in messages: `ed25519` or `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| SignError::UnknownAlgorithm { name: s.to_owned() })
    }
}

/// Everything that can go wrong with keys and raw signatures.
///
/// No variant carries key bytes or a passphrase.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The algorithm name is not one of [`Algorithm::ALL`].
    #[error("unknown key algorithm {name:?} (expected ed25519 or ecdsa-p256)")]
    UnknownAlgorithm {
        /// The name given.
        name: String,
    },
    /// The operating system's random number generator failed.
    #[error("reading random bytes from the operating system: {0}")]
    Rng(getrandom::Error),
    /// The text is not PEM, or has a label this reader does not take.
    #[error("not a {expected} PEM file: {reason}")]
    Pem {
        /// What was expected, e.g. "PKCS#8 private key".
        expected: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The PEM decoded, but the DER inside is not a valid key.
    #[error("malformed {what}: {reason}")]
    MalformedKey {
        /// "private key" or "public key".
        what: &'static str,
        /// The decoder's explanation (never key bytes).
        reason: String,
    },
    /// The key's algorithm identifier is neither Ed25519 nor EC P-256.
    #[error("unsupported key algorithm {oid} (cairn takes Ed25519 and ECDSA P-256 keys)")]
    UnsupportedAlgorithm {
        /// The algorithm OID, and for EC keys the curve OID.
        oid: String,
    },
    /// The private key is encrypted and no passphrase was given.
    #[error("the private key is encrypted and no passphrase was given (set CAIRN_KEY_PASSPHRASE)")]
    PassphraseRequired,
    /// Decryption failed: the passphrase is wrong or the file is damaged.
    #[error("cannot decrypt the private key: wrong passphrase or damaged key file")]
    WrongPassphrase,
    /// An empty passphrase was given.
    #[error("the key passphrase is empty")]
    EmptyPassphrase,
    /// The signature bytes are not a well-formed signature for the key's algorithm.
    #[error("malformed {algorithm} signature: {reason}")]
    MalformedSignature {
        /// The verifying key's algorithm.
        algorithm: Algorithm,
        /// Why the bytes were rejected.
        reason: &'static str,
    },
    /// An ECDSA signature with `s` in the upper half of the group order.
    #[error("ECDSA signature is not low-S normalized (cairn accepts only low-S signatures)")]
    HighS,
    /// The signature is well-formed but does not verify under the key.
    #[error("signature verification failed")]
    BadSignature,
    /// A key file already exists; `write_keypair` never replaces one.
    #[error("{path} already exists; refusing to overwrite a key file")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key file is larger than any key cairn reads.
    #[error("{path} is larger than {limit} bytes; not a key file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A private key file others can read or write, refused as OpenSSH refuses it.
    #[error(
        "UNPROTECTED PRIVATE KEY FILE: permissions {mode:04o} for {path} are too open; a \
         private key must not be accessible by group or others. Run `chmod 600 {path}` and try again."
    )]
    Unprotected {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing a key file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// "reading", "creating", "writing".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Encoding a key failed; this indicates a bug, not bad input.
    #[error("internal error encoding a key: {reason} (please report this as a bug)")]
    Encode {
        /// The encoder's explanation.
        reason: String,
    },
    /// Signing failed inside the crypto crate; not caused by input.
    #[error("internal error while signing: {reason} (please report this as a bug)")]
    Signing {
        /// The crate's explanation.
        reason: String,
    },
}

#[derive(Clone, PartialEq, Eq)]
enum PublicInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

/// A public (verifying) key of either algorithm, with its SPKI DER encoding.
///
/// Built only from a parsed, validated key, so holding one means the key is usable.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: PublicInner,
    spki_der: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id())
            .finish()
    }
}

/// The Sigstore-style key id of `key`: standard base64 of SHA-256 over its SPKI DER.
pub fn key_id(key: &PublicKey) -> String {
    STANDARD.encode(Sha256::digest(&key.spki_der))
}

impl PublicKey {
    fn from_inner(inner: PublicInner) -> Result<Self, SignError> {
        let doc = match &inner {
            PublicInner::Ed25519(k) => k.to_public_key_der(),
            PublicInner::EcdsaP256(k) => k.to_public_key_der(),
        }
        .map_err(|e| SignError::Encode { reason: e.to_string() })?;
        Ok(PublicKey { inner, spki_der: doc.into_vec() })
    }

    /// Which algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            PublicInner::Ed25519(_) => Algorithm::Ed25519,
            PublicInner::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// Same as [`key_id`].
    pub fn key_id(&self) -> String {
        key_id(self)
    }

    /// The SubjectPublicKeyInfo DER encoding.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Parse SubjectPublicKeyInfo DER; the algorithm comes from the SPKI algorithm identifier.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SignError> {
        let inner = decode_key(
            "public key",
            pkcs8::SubjectPublicKeyInfoRef::from_der(der).map(|spki| spki.algorithm),
            || ed25519_dalek::VerifyingKey::from_public_key_der(der).map(PublicInner::Ed25519),
            || p256::ecdsa::VerifyingKey::from_public_key_der(der).map(PublicInner::EcdsaP256),
        )?;
        let key = PublicKey::from_inner(inner)?;
        // Our re-encoding is canonical; insisting on it means one key has one key id.
        if key.spki_der != der {
            return Err(SignError::MalformedKey {
                what: "public key",
                reason: "SPKI is not in canonical DER form".into(),
            });
        }
        Ok(key)
    }

    /// Parse an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem: &str) -> Result<Self, SignError> {
        let (label, doc) = pkcs8::Document::from_pem(pem)
            .map_err(|e| SignError::Pem { expected: "SPKI public key", reason: e.to_string() })?;
        if label != "PUBLIC KEY" {
            return Err(SignError::Pem {
                expected: "SPKI public key",
                reason: format!("found BEGIN {label}, expected BEGIN PUBLIC KEY"),
            });
        }
        PublicKey::from_spki_der(doc.as_bytes())
    }

    /// The SPKI PEM encoding, LF line endings.
    pub fn to_spki_pem(&self) -> String {
        // A fixed-size DER value always fits a PEM encoder; base64 of a few hundred bytes
        // cannot fail, so fall back to an empty string only to avoid a panic path.
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der)
            .unwrap_or_default()
    }

    /// Read an SPKI PEM public key file.
    pub fn read_pem_file(path: &Path) -> Result<Self, SignError> {
        let text = read_bounded(path, Secrecy::Public)?;
        let text = std::str::from_utf8(&text).map_err(|_| SignError::Pem {
            expected: "SPKI public key",
            reason: "file is not UTF-8 text".into(),
        })?;
        PublicKey::from_spki_pem(text)
    }

    /// Check `signature` over `message`, per the rules in the module docs.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignError> {
        match &self.inner {
            PublicInner::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| {
                    SignError::MalformedSignature {
                        algorithm: Algorithm::Ed25519,
                        reason: "not 64 bytes",
                    }
                })?;
                k.verify_strict(message, &sig).map_err(|_| SignError::BadSignature)
            }
            PublicInner::EcdsaP256(k) => {
                let malformed = |reason| SignError::MalformedSignature {
                    algorithm: Algorithm::EcdsaP256,
                    reason,
                };
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| malformed("not a DER ECDSA-Sig-Value with r, s in range"))?;
                if sig.to_der().as_bytes() != signature {
                    return Err(malformed("not canonical DER"));
                }
                if sig.normalize_s() != sig {
                    return Err(SignError::HighS);
                }
                k.verify(message, &sig).map_err(|_| SignError::BadSignature)
            }
        }
    }
}

enum SecretInner {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256(p256::ecdsa::SigningKey),
}

/// A private signing key. Its `Debug` output shows only the algorithm and key id.
pub struct SigningKey {
    inner: SecretInner,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_inner(inner: SecretInner) -> Result<Self, SignError> {
        let public = PublicKey::from_inner(match &inner {
            SecretInner::Ed25519(k) => PublicInner::Ed25519(k.verifying_key()),
            SecretInner::EcdsaP256(k) => PublicInner::EcdsaP256(*k.verifying_key()),
        })?;
        Ok(SigningKey { inner, public })
    }

    /// A new key from the operating system's random number generator.
    pub fn generate(algorithm: Algorithm) -> Result<Self, SignError> {
        let inner = match algorithm {
            Algorithm::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; ed25519_dalek::SECRET_KEY_LENGTH]);
                getrandom::fill(seed.as_mut()).map_err(SignError::Rng)?;
                SecretInner::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            Algorithm::EcdsaP256 => {
                use p256::elliptic_curve::Generate as _;
                SecretInner::EcdsaP256(
                    p256::ecdsa::SigningKey::try_generate_from_rng(&mut getrandom::SysRng)
                        .map_err(SignError::Rng)?,
                )
            }
        };
        SigningKey::from_inner(inner)
    }

    /// Which algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Sign `message`. Deterministic: the same key and message give the same bytes.
    ///
    /// Ed25519 gives 64 bytes; ECDSA P-256 gives a low-S DER `ECDSA-Sig-Value` over SHA-256.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            SecretInner::Ed25519(k) => Ok(k.sign(message).to_bytes().to_vec()),
            SecretInner::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k
                    .try_sign(message)
                    .map_err(|e| SignError::Signing { reason: e.to_string() })?;
                Ok(sig.normalize_s().to_der().as_bytes().to_vec())
            }
        }
    }

    /// Parse PKCS#8 DER (unencrypted); the algorithm comes from its algorithm identifier.
    fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        let inner = decode_key(
            "private key",
            pkcs8::PrivateKeyInfoRef::from_der(der).map(|info| info.algorithm),
            || ed25519_dalek::SigningKey::from_pkcs8_der(der).map(SecretInner::Ed25519),
            || p256::ecdsa::SigningKey::from_pkcs8_der(der).map(SecretInner::EcdsaP256),
        )?;
        SigningKey::from_inner(inner)
    }

    /// Parse a PKCS#8 PEM private key, encrypted or not.
    ///
    /// `passphrase` is needed only for `ENCRYPTED PRIVATE KEY`; see the module docs.
    pub fn from_pkcs8_pem(pem: &str, passphrase: Option<&str>) -> Result<Self, SignError> {
        const EXPECTED: &str = "PKCS#8 private key";
        let (label, doc) = SecretDocument::from_pem(pem)
            .map_err(|e| SignError::Pem { expected: EXPECTED, reason: e.to_string() })?;
        match label {
            "PRIVATE KEY" => SigningKey::from_pkcs8_der(doc.as_bytes()),
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase = match passphrase {
                    None => return Err(SignError::PassphraseRequired),
                    Some("") => return Err(SignError::EmptyPassphrase),
                    Some(p) => p,
                };
                let info =
                    pkcs8::EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes()).map_err(|e| {
                        SignError::MalformedKey {
                            what: "encrypted private key",
                            reason: e.to_string(),
                        }
                    })?;
                let plain = info.decrypt(passphrase).map_err(|_| SignError::WrongPassphrase)?;
                SigningKey::from_pkcs8_der(plain.as_bytes())
            }
            other => Err(SignError::Pem {
                expected: EXPECTED,
                reason: format!(
                    "found BEGIN {other}, expected BEGIN PRIVATE KEY or BEGIN ENCRYPTED PRIVATE \
                     KEY (convert with `openssl pkcs8 -topk8`)"
                ),
            }),
        }
    }

    /// Encode as PKCS#8 PEM; encrypted (PBES2, scrypt, AES-256-CBC) when `passphrase` is set.
    pub fn to_pkcs8_pem(&self, passphrase: Option<&str>) -> Result<Zeroizing<String>, SignError> {
        let encode_err = |e: pkcs8::Error| SignError::Encode { reason: e.to_string() };
        match passphrase {
            Some("") => Err(SignError::EmptyPassphrase),
            Some(p) => match &self.inner {
                SecretInner::Ed25519(k) => {
                    Ed25519Pkcs8(k).to_pkcs8_encrypted_pem(p, LineEnding::LF)
                }
                SecretInner::EcdsaP256(k) => k.to_pkcs8_encrypted_pem(p, LineEnding::LF),
            }
            .map_err(encode_err),
            None => match &self.inner {
                SecretInner::Ed25519(k) => Ed25519Pkcs8(k).to_pkcs8_pem(LineEnding::LF),
                SecretInner::EcdsaP256(k) => k.to_pkcs8_pem(LineEnding::LF),
            }
            .map_err(encode_err),
        }
    }

    /// Read a PKCS#8 PEM private key file (see [`SigningKey::from_pkcs8_pem`]).
    pub fn read_pem_file(path: &Path, passphrase: Option<&str>) -> Result<Self, SignError> {
        let bytes = read_bounded(path, Secrecy::Private)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| SignError::Pem {
            expected: "PKCS#8 private key",
            reason: "file is not UTF-8 text".into(),
        })?;
        SigningKey::from_pkcs8_pem(text, passphrase)
    }
}

/// An Ed25519 private key encoded as PKCS#8 v1 (RFC 8410 section 7, no public key), the form
/// OpenSSL writes and reads.
///
/// `ed25519-dalek` would write v2 (`OneAsymmetricKey` with the public key), which OpenSSL 3.0
/// refuses to load, and it goes through an intermediate `KeypairBytes` that does not zeroize
/// the seed. The v1 encoding is a fixed 16-byte prefix followed by the 32-byte seed.
struct Ed25519Pkcs8<'a>(&'a ed25519_dalek::SigningKey);

impl EncodePrivateKey for Ed25519Pkcs8<'_> {
    fn to_pkcs8_der(&self) -> pkcs8::Result<SecretDocument> {
        // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
        const PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut der = Zeroizing::new([0u8; 48]);
        let (prefix, seed) = der.split_at_mut(PREFIX.len());
        prefix.copy_from_slice(&PREFIX);
        seed.copy_from_slice(self.0.as_bytes());
        Ok(SecretDocument::try_from(&der[..])?)
    }
}

/// Read a whole key file, at most [`MAX_KEY_FILE`] bytes, into a zeroizing buffer.
fn read_bounded(path: &Path, secret: Secrecy) -> Result<Zeroizing<Vec<u8>>, SignError> {
    let io = |source| SignError::Io { action: "reading", path: path.to_owned(), source };
    let file = File::open(path).map_err(io)?;
    if secret == Secrecy::Private {
        // The mode of the handle just opened, not of the path again: no window in which
        // the file could be swapped between the check and the read.
        let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SignError::Unprotected { path: path.to_owned(), mode });
        }
    }
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(SignError::TooLarge { path: path.to_owned(), limit: MAX_KEY_FILE });
    }
    Ok(buf)
}

/// Whether a key file holds a secret, which others must not be able to read or replace.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Secrecy {
    Public,
    Private,
}

/// `<prefix>.key` and `<prefix>.pub`: the suffix is appended, so `release.v2` gives
/// `release.v2.key`, not `release.key`.
pub fn keypair_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    (with(".key"), with(".pub"))
}

/// Generate a key and write `<prefix>.key` (PKCS#8 PEM, mode 0600, encrypted when
/// `passphrase` is set) and `<prefix>.pub` (SPKI PEM, mode 0644).
///
/// Each file is written to a temporary name with its final mode from the start (so the key
/// is never readable by others), synced, and linked into place only if nothing has that
/// name: an existing file is never replaced ([`SignError::Exists`]) and a killed run never
/// leaves a partial key under a key's name. On any failure, files this call created are
/// removed again. Returns the public key (for its key id).
pub fn write_keypair(
    prefix: &Path,
    algorithm: Algorithm,
    passphrase: Option<&str>,
) -> Result<PublicKey, SignError> {
    let key = SigningKey::generate(algorithm)?;
    let private_pem = key.to_pkcs8_pem(passphrase)?;
    let public_pem = key.public_key().to_spki_pem();
    let (key_path, pub_path) = keypair_paths(prefix);
    // Refuse before writing anything when either exists.
    for path in [&key_path, &pub_path] {
        if path.symlink_metadata().is_ok() {
            return Err(SignError::Exists { path: path.clone() });
        }
    }
    let write = |path: &Path, text: &str, mode: u32| {
        crate::atomic::write_new(path, text.as_bytes(), mode).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SignError::Exists { path: path.to_owned() }
            } else {
                SignError::Io { action: "writing", path: path.to_owned(), source }
            }
        })
    };
    write(&key_path, &private_pem, 0o600)?;
    if let Err(e) = write(&pub_path, &public_pem, 0o644) {
        let _ = fs::remove_file(&key_path);
        return Err(e);
    }
    Ok(key.public_key().clone())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Fixed test keys, generated once with OpenSSL 3 (`openssl genpkey -algorithm ed25519`,
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`). Test-only.
    pub(crate) const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMPgTxN8sa5/EbJ71RS91vYxhJ3C/s7qHkWwDOn7sqki
-----END PRIVATE KEY-----
";
    pub(crate) const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8npkpmEv3ck6xy5v
hwpP7nJ0Z1CEzgmc2/lkIbjV4B+hRANCAATQsVbS9X4Sx45BRXX7xvbPggcJVd5K
fbWN2ZArgg1Fdg4xhq//PY4stTCMUsjPpuAGLDnxAxbkgTrzJ1JIW+eE
-----END PRIVATE KEY-----
";

    pub(crate) fn fixed_key(alg: Algorithm) -> SigningKey {
        let pem = match alg {
            Algorithm::Ed25519 => ED25519_PEM,
            Algorithm::EcdsaP256 => P256_PEM,
        };
        SigningKey::from_pkcs8_pem(pem, None).unwrap()
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse::<Algorithm>().unwrap(), alg);
        }
        assert!(matches!("rsa".parse::<Algorithm>(), Err(SignError::UnknownAlgorithm { .. })));
    }

    #[test]
    fn fixed_keys_load_with_the_right_algorithm() {
        for alg in Algorithm::ALL {
            assert_eq!(fixed_key(alg).algorithm(), alg);
        }
    }

    #[test]
    fn debug_output_redacts_private_key() {
        for alg in Algorithm::ALL {
            let key = fixed_key(alg);
            let debug = format!("{key:?}");
            let pem = key.to_pkcs8_pem(None).unwrap();
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            assert!(!debug.contains(&body[..16]), "{debug}");
            assert!(debug.contains(&key.public_key().key_id()), "{debug}");
        }
    }

    /// Independently computed with
    /// `openssl pkey -pubout -outform DER | sha256sum | xxd -r -p | base64`.
    #[test]
    fn key_id_known_answers() {
        assert_eq!(
            fixed_key(Algorithm::Ed25519).public_key().key_id(),
            "8VDHi3tOzgZqWQ7xnejXaCIqLWncaWYP+pnwMLn5Ht8="
        );
        assert_eq!(
            fixed_key(Algorithm::EcdsaP256).public_key().key_id(),
            "ZACz3kDHZjn6YftzZg1RF61YGumebVbZmR9GdMKmLvI="
        );
    }

    /// cairn writes the fixed keys back exactly as OpenSSL wrote them.
    #[test]
    fn pkcs8_matches_openssl_encoding() {
        assert_eq!(*fixed_key(Algorithm::Ed25519).to_pkcs8_pem(None).unwrap(), ED25519_PEM);
        assert_eq!(*fixed_key(Algorithm::EcdsaP256).to_pkcs8_pem(None).unwrap(), P256_PEM);
    }

    #[test]
    fn pem_round_trips() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let pem = key.to_pkcs8_pem(None).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = SigningKey::from_pkcs8_pem(&pem, None).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            // A passphrase for an unencrypted key is ignored.
            let back = SigningKey::from_pkcs8_pem(&pem, Some("unused")).unwrap();
            assert_eq!(back.public_key(), key.public_key());

            let public = key.public_key().to_spki_pem();
            assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            assert_eq!(&PublicKey::from_spki_pem(&public).unwrap(), key.public_key());
        }
    }

    #[test]
    fn encrypted_pem_round_trip_and_wrong_passphrase() {
        for alg in Algorithm::ALL {
            let key = fixed_key(alg);
            let pem = key.to_pkcs8_pem(Some("correct horse")).unwrap();
            assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
            let back = SigningKey::from_pkcs8_pem(&pem, Some("correct horse")).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            assert!(matches!(
                SigningKey::from_pkcs8_pem(&pem, Some("wrong horse")),
                Err(SignError::WrongPassphrase)
            ));
            assert!(matches!(
                SigningKey::from_pkcs8_pem(&pem, None),
                Err(SignError::PassphraseRequired)
            ));
            assert!(matches!(
                SigningKey::from_pkcs8_pem(&pem, Some("")),
                Err(SignError::EmptyPassphrase)
            ));
        }
        assert!(matches!(
            fixed_key(Algorithm::Ed25519).to_pkcs8_pem(Some("")),
            Err(SignError::EmptyPassphrase)
        ));
    }

    #[test]
    fn wrong_pem_labels_are_rejected() {
        let public = fixed_key(Algorithm::Ed25519).public_key().to_spki_pem();
        assert!(matches!(SigningKey::from_pkcs8_pem(&public, None), Err(SignError::Pem { .. })));
        assert!(matches!(PublicKey::from_spki_pem(ED25519_PEM), Err(SignError::Pem { .. })));
        assert!(matches!(
            SigningKey::from_pkcs8_pem("not pem at all", None),
            Err(SignError::Pem { .. })
        ));
    }

    #[test]
    fn unsupported_curve_is_rejected() {
        // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 | openssl pkey -pubout`
        let p384 = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEDSfjv8OxigTIaU6r3gbruqFDVlW6u0FO
DjOWLlgPUrg9KBSByQ9bZuMAtXUF20aGj2PtwC/vfuMi+ixzH0rXrp7xiTW+dLjn
WwQV3zltzxgWFLf5+zC3zW8QhYepyaum
-----END PUBLIC KEY-----
";
        assert!(matches!(
            PublicKey::from_spki_pem(p384),
            Err(SignError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn signatures_are_deterministic_and_verify() {
        for alg in Algorithm::ALL {
            let key = fixed_key(alg);
            let a = key.sign(b"message").unwrap();
            let b = key.sign(b"message").unwrap();
            assert_eq!(a, b, "{alg}");
            key.public_key().verify(b"message", &a).unwrap();
            assert!(matches!(
                key.public_key().verify(b"messagE", &a),
                Err(SignError::BadSignature)
            ));
            let other = SigningKey::generate(alg).unwrap();
            assert!(matches!(
                other.public_key().verify(b"message", &a),
                Err(SignError::BadSignature)
            ));
        }
    }

    #[test]
    fn ed25519_rejects_wrong_length() {
        let key = fixed_key(Algorithm::Ed25519);
        let mut sig = key.sign(b"m").unwrap();
        sig.push(0);
        assert!(matches!(
            key.public_key().verify(b"m", &sig),
            Err(SignError::MalformedSignature { .. })
        ));
    }

    #[test]
    fn ecdsa_accepts_only_canonical_low_s_der() {
        let key = fixed_key(Algorithm::EcdsaP256);
        let der = key.sign(b"m").unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        // Raw r||s is not DER.
        assert!(matches!(
            key.public_key().verify(b"m", &sig.to_bytes()),
            Err(SignError::MalformedSignature { .. })
        ));
        // The high-S twin is mathematically valid but rejected.
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(high, sig);
        assert!(matches!(
            key.public_key().verify(b"m", high.to_der().as_bytes()),
            Err(SignError::HighS)
        ));
        // Trailing bytes after the DER value.
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(matches!(
            key.public_key().verify(b"m", &trailing),
            Err(SignError::MalformedSignature { .. })
        ));
        // Cross-algorithm: an Ed25519 signature handed to a P-256 key.
        let ed = fixed_key(Algorithm::Ed25519).sign(b"m").unwrap();
        assert!(key.public_key().verify(b"m", &ed).is_err());
    }

    #[test]
    fn write_keypair_modes_and_refuses_overwrite() {
        for alg in Algorithm::ALL {
            let dir = tempfile::tempdir().unwrap();
            let prefix = dir.path().join("release.v2");
            let public = write_keypair(&prefix, alg, None).unwrap();
            let (key_path, pub_path) = keypair_paths(&prefix);
            assert_eq!(key_path, dir.path().join("release.v2.key"));
            let key_mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(key_mode, 0o600);
            let pub_mode = fs::metadata(&pub_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(pub_mode & 0o600, 0o600);
            assert_eq!(pub_mode & 0o133, 0, "no write or exec for others");

            let key = SigningKey::read_pem_file(&key_path, None).unwrap();
            assert_eq!(key.public_key(), &public);
            assert_eq!(key.algorithm(), alg);
            assert_eq!(PublicKey::read_pem_file(&pub_path).unwrap(), public);

            let before = fs::read(&key_path).unwrap();
            assert!(matches!(write_keypair(&prefix, alg, None), Err(SignError::Exists { .. })));
            assert_eq!(fs::read(&key_path).unwrap(), before, "existing key untouched");

            // A stray .pub blocks the pair and leaves no .key behind.
            let lone = dir.path().join("lone");
            fs::write(dir.path().join("lone.pub"), "x").unwrap();
            assert!(matches!(write_keypair(&lone, alg, None), Err(SignError::Exists { .. })));
            assert!(!dir.path().join("lone.key").exists());
        }
    }

    #[test]
    fn write_keypair_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("enc");
        let public = write_keypair(&prefix, Algorithm::EcdsaP256, Some("pw")).unwrap();
        let (key_path, _) = keypair_paths(&prefix);
        let text = fs::read_to_string(&key_path).unwrap();
        assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let key = SigningKey::read_pem_file(&key_path, Some("pw")).unwrap();
        assert_eq!(key.public_key(), &public);
    }

    #[test]
    fn oversized_key_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.key");
        fs::write(&path, vec![b'A'; (MAX_KEY_FILE + 1) as usize]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(SigningKey::read_pem_file(&path, None), Err(SignError::TooLarge { .. })));
    }

    #[test]
    fn private_key_open_to_group_or_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (key_path, _) = keypair_paths(&dir.path().join("k"));
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        fs::write(&key_path, key.to_pkcs8_pem(None).unwrap().as_bytes()).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
            fs::set_permissions(&key_path, fs::Permissions::from_mode(mode)).unwrap();
            match SigningKey::read_pem_file(&key_path, None) {
                Err(e @ SignError::Unprotected { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(&format!("{mode:04o}")), "{text}");
                    assert!(text.contains(&format!("chmod 600 {}", key_path.display())), "{text}");
                }
                other => panic!("mode {mode:o}: {:?}", other.map(|_| ())),
            }
        }
        for mode in [0o600, 0o400, 0o700] {
            fs::set_permissions(&key_path, fs::Permissions::from_mode(mode)).unwrap();
            assert!(SigningKey::read_pem_file(&key_path, None).is_ok(), "mode {mode:o}");
        }
    }
}
