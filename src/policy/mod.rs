//! Verification policies: YAML files that say which keys are trusted and what a deploy
//! accepts (`policies/*.yaml`, documented in `policies/README.md`).
//!
//! This module owns the step from policy text to a checked [`Policy`] value and nothing
//! else; [`crate::verify`] applies it. Parsing is strict: every mapping rejects unknown
//! fields, every value is checked while it is deserialized so the error names
//! `file:line:column`, empty allow-lists are errors (an empty list would allow nothing,
//! which is never what was meant), and a rule naming a key that does not exist is an error.
//!
//! Two steps: [`parse`] is pure (text → [`PolicyDoc`]); [`PolicyDoc::resolve`] reads the
//! files a policy names (`path:` keys, `trustedRoot:`) relative to the policy file and
//! yields the [`Policy`] verification uses. [`load`] does both.
//!
//! Field names are camelCase, as in the image spec's LinuxKit fields.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::digest::Digest;
use crate::sign::keys::{PublicKey, SignError};
use crate::yaml_diag::{InvalidYaml, TooLarge};

pub mod version;

pub use version::{Version, VersionRange};

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_LEN: usize = 1024 * 1024;

/// Why a policy could not be used. Every variant names the policy file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("reading policy {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// Larger than [`MAX_POLICY_LEN`].
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// Malformed YAML, an unknown field, a wrong type or a bad value ([`ValueError`],
    /// placed at the value's line and column).
    #[error(transparent)]
    Invalid(#[from] InvalidYaml),
    /// A state the parser rules out was reached: a bug in cairn, not in the policy.
    #[error("{source_name}: internal error: {what}; please report this as a bug")]
    Internal { source_name: String, what: &'static str },
    /// A file the policy names (a key, a trusted root) is missing or bad.
    #[error("{source_name}: {what} {path}: {reason}")]
    File { source_name: String, what: String, path: String, reason: String },
}

/// Why one value of a policy failed a check. It is raised while the value is deserialized,
/// so it reaches the user as the message of [`PolicyError::Invalid`] at the value's position.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("{0:?} is not an RFC 3339 time (like 2026-01-02T03:04:05Z)")]
    Time(String),
    #[error("{0:?} is not an RFC 3339 UTC time (like 2026-01-02T03:04:05Z)")]
    TimeNotUtc(String),
    #[error("an empty list here would allow nothing; remove the field to allow everything")]
    EmptyList,
    #[error("a key's name must not be empty")]
    EmptyKeyName,
    #[error("key `{name}`: pem: {source}")]
    KeyPem { name: String, source: SignError },
    #[error("key `{0}`: path is empty")]
    KeyPathEmpty(String),
    #[error("key `{0}` has both `pem` and `path`; give exactly one")]
    KeyPemAndPath(String),
    #[error("key `{0}` needs `pem` (inline PEM) or `path` (a file)")]
    KeyNoSource(String),
    #[error("key `{name}`: notBefore {not_before} is not before notAfter {not_after}")]
    KeyWindow { name: String, not_before: Timestamp, not_after: Timestamp },
    #[error("signatures.keys names a key twice")]
    ThresholdKeyTwice,
    #[error("signatures.threshold must be at least 1")]
    ThresholdZero,
    #[error("signatures.threshold is {threshold} but only {keys} keys are named")]
    ThresholdTooHigh { threshold: usize, keys: usize },
    #[error("upstream: reference must not be empty")]
    UpstreamEmptyReference,
    #[error("upstream rule for {0}: publicKey needs exactly one of `pem` and `path`")]
    UpstreamPemOrPath(String),
    #[error(
        "upstream rule for {0}: certificateIdentity and certificateOidcIssuer must not be empty"
    )]
    UpstreamEmptyIdentity(String),
    #[error("upstream rule for {0} needs exactly one of `publicKey` and `keyless`")]
    UpstreamSigner(String),
}

/// A point in time, seconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Seconds since the epoch.
    pub fn from_secs(secs: u64) -> Timestamp {
        Timestamp(secs)
    }

    pub fn secs(self) -> u64 {
        self.0
    }

    /// Parses RFC 3339 in UTC only (`2026-01-02T03:04:05Z`, fractional seconds dropped).
    pub fn parse_utc(s: &str) -> Result<Timestamp, ValueError> {
        if !s.ends_with('Z') {
            return Err(ValueError::TimeNotUtc(s.to_string()));
        }
        Timestamp::parse(s)
    }

    /// Parses RFC 3339 with any offset.
    pub fn parse(s: &str) -> Result<Timestamp, ValueError> {
        crate::source_date::parse_rfc3339(s)
            .map(Timestamp)
            .ok_or_else(|| ValueError::Time(s.to_string()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::source_date::SourceDate::new(self.0) {
            Ok(d) => f.write_str(&crate::source_date::rfc3339(d)),
            Err(_) => write!(f, "@{}", self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML may read an unquoted timestamp as a string; anything else is an error.
        let s = String::deserialize(d)?;
        Timestamp::parse_utc(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for VersionRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VersionRange::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A list that must have at least one element (an empty allow-list would allow nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonEmpty<T>(Vec<T>);

impl<T> NonEmpty<T> {
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        if v.is_empty() {
            return Err(serde::de::Error::custom(ValueError::EmptyList));
        }
        Ok(NonEmpty(v))
    }
}

/// Where a key's PEM comes from, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `pem:` inline, already parsed.
    Inline(PublicKey),
    /// `path:` relative to the policy file, not yet read.
    File(String),
}

/// One entry of `keys:` as parsed.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawKey")]
pub struct KeyDoc {
    pub name: String,
    pub source: KeySource,
    pub validity: KeyValidity,
}

/// When a key may be used: its window (`notBefore` inclusive, `notAfter` exclusive) and
/// whether it is revoked. `not_before < not_after` whenever both are set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyValidity {
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    pub revoked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKey {
    name: String,
    pem: Option<String>,
    path: Option<String>,
    not_before: Option<Timestamp>,
    not_after: Option<Timestamp>,
    #[serde(default)]
    revoked: bool,
}

impl TryFrom<RawKey> for KeyDoc {
    type Error = ValueError;
    fn try_from(raw: RawKey) -> Result<Self, ValueError> {
        let name = raw.name;
        if name.trim().is_empty() {
            return Err(ValueError::EmptyKeyName);
        }
        let source = match (raw.pem, raw.path) {
            (Some(pem), None) => match PublicKey::from_spki_pem(&pem) {
                Ok(key) => KeySource::Inline(key),
                Err(source) => return Err(ValueError::KeyPem { name, source }),
            },
            (None, Some(path)) if !path.is_empty() => KeySource::File(path),
            (None, Some(_)) => return Err(ValueError::KeyPathEmpty(name)),
            (Some(_), Some(_)) => return Err(ValueError::KeyPemAndPath(name)),
            (None, None) => return Err(ValueError::KeyNoSource(name)),
        };
        if let (Some(not_before), Some(not_after)) = (raw.not_before, raw.not_after)
            && not_before >= not_after
        {
            return Err(ValueError::KeyWindow { name, not_before, not_after });
        }
        let validity = KeyValidity {
            not_before: raw.not_before,
            not_after: raw.not_after,
            revoked: raw.revoked,
        };
        Ok(KeyDoc { name, source, validity })
    }
}

/// `require:` — which attestations must be present and who must have signed.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Require {
    /// A signed SLSA provenance statement must be present (default true).
    #[serde(default = "yes")]
    pub provenance: bool,
    /// A signed SBOM statement must be present (default false).
    #[serde(default)]
    pub sbom: bool,
    /// K of the named keys must have signed provenance over the same subjects. Absent: one
    /// signature by any trusted key.
    #[serde(default)]
    pub signatures: Option<Threshold>,
}

fn yes() -> bool {
    true
}

impl Default for Require {
    fn default() -> Self {
        Require { provenance: true, sbom: false, signatures: None }
    }
}

/// `require.signatures`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "RawThreshold")]
pub struct Threshold {
    pub threshold: usize,
    pub keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    threshold: usize,
    keys: Vec<String>,
}

impl TryFrom<RawThreshold> for Threshold {
    type Error = ValueError;
    fn try_from(raw: RawThreshold) -> Result<Self, ValueError> {
        let unique: BTreeSet<&String> = raw.keys.iter().collect();
        if unique.len() != raw.keys.len() {
            return Err(ValueError::ThresholdKeyTwice);
        }
        if raw.threshold == 0 {
            return Err(ValueError::ThresholdZero);
        }
        if raw.threshold > raw.keys.len() {
            return Err(ValueError::ThresholdTooHigh {
                threshold: raw.threshold,
                keys: raw.keys.len(),
            });
        }
        Ok(Threshold { threshold: raw.threshold, keys: raw.keys })
    }
}

/// `components:` — rules over the component images the provenance lists.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Components {
    /// Registry/repository prefixes a component reference must start with (at a `/`, `:`
    /// or `@` boundary). Absent: any source.
    #[serde(default)]
    pub allowed_sources: Option<NonEmpty<String>>,
    /// Component digests allowed whatever their source.
    #[serde(default)]
    pub allowed_digests: Vec<Digest>,
    /// Digests that must not appear anywhere among the resolved dependencies.
    #[serde(default)]
    pub denied_digests: Vec<Digest>,
}

/// `packages:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    #[serde(default)]
    pub deny: Vec<DenyPackage>,
}

/// One `packages.deny` entry: an OS package name and a version range.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DenyPackage {
    pub name: String,
    pub versions: VersionRange,
}

/// `artifacts:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Artifacts {
    /// Subjects that may be absent from the directory (e.g. an OCI layout not shipped).
    #[serde(default)]
    pub optional: Vec<String>,
}

/// Who must have signed a component upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamSigner {
    /// A public key (PEM text, any algorithm the Sigstore verifier supports).
    PublicKey { pem: String },
    /// A Sigstore keyless identity: the certificate's SAN and the OIDC issuer.
    Keyless { certificate_identity: String, certificate_oidc_issuer: String },
}

/// One `upstream:` rule: components whose reference starts with `reference` must carry an
/// upstream signature by `signer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRule {
    pub reference: String,
    pub signer: UpstreamSigner,
    /// The Sigstore trusted root JSON (resolved to a path beside the policy).
    pub trusted_root: Option<PathBuf>,
}

/// `upstream:` entry as written: `publicKey: {pem|path}` or `keyless: {…}`, with an optional
/// `trustedRoot` (without one, keyless rules use the refreshed or built-in public-good root).
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawUpstream")]
pub struct UpstreamDoc(RawUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawUpstream {
    reference: String,
    public_key: Option<PemSource>,
    keyless: Option<RawKeyless>,
    trusted_root: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKeyless {
    certificate_identity: String,
    certificate_oidc_issuer: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PemSource {
    pem: Option<String>,
    path: Option<String>,
}

impl TryFrom<RawUpstream> for UpstreamDoc {
    type Error = ValueError;
    fn try_from(raw: RawUpstream) -> Result<Self, ValueError> {
        let r = &raw.reference;
        if r.trim().is_empty() {
            return Err(ValueError::UpstreamEmptyReference);
        }
        match (&raw.public_key, &raw.keyless) {
            (Some(k), None) => {
                if k.pem.is_some() == k.path.is_some() {
                    return Err(ValueError::UpstreamPemOrPath(r.clone()));
                }
            }
            (None, Some(k)) => {
                if k.certificate_identity.is_empty() || k.certificate_oidc_issuer.is_empty() {
                    return Err(ValueError::UpstreamEmptyIdentity(r.clone()));
                }
            }
            _ => return Err(ValueError::UpstreamSigner(r.clone())),
        }
        Ok(UpstreamDoc(raw))
    }
}

/// A parsed policy whose files (`path:` keys, trusted roots) are not read yet. Only
/// [`parse`] makes one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyDoc {
    #[serde(default)]
    keys: Vec<KeyDoc>,
    #[serde(default)]
    require: Require,
    #[serde(default)]
    builders: Option<NonEmpty<String>>,
    #[serde(default)]
    build_types: Option<NonEmpty<String>>,
    #[serde(default)]
    components: Components,
    #[serde(default)]
    packages: Packages,
    #[serde(default)]
    artifacts: Artifacts,
    #[serde(default)]
    upstream: Vec<UpstreamDoc>,
}

/// A trusted key of a policy, with its validity window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyKey {
    pub name: String,
    pub key: PublicKey,
    pub validity: KeyValidity,
}

impl PolicyKey {
    /// Why the key cannot be used at `at`, or `None` when it can.
    pub fn unusable_at(&self, at: Timestamp) -> Option<String> {
        let KeyValidity { not_before, not_after, revoked } = self.validity;
        if revoked {
            return Some(format!("key `{}` is revoked", self.name));
        }
        if let Some(b) = not_before
            && at < b
        {
            return Some(format!(
                "key `{}` is not valid before {b} (verification time {at})",
                self.name
            ));
        }
        if let Some(a) = not_after
            && at >= a
        {
            return Some(format!("key `{}` expired at {a} (verification time {at})", self.name));
        }
        None
    }
}

/// A complete policy: what [`crate::verify`] applies. Made by [`PolicyDoc::resolve`] (or
/// [`Policy::builtin_default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub keys: Vec<PolicyKey>,
    pub require: Require,
    pub builders: Option<Vec<String>>,
    pub build_types: Option<Vec<String>>,
    pub components: Components,
    pub packages: Packages,
    pub artifacts: Artifacts,
    pub upstream: Vec<UpstreamRule>,
    /// Where the policy came from (for the report).
    pub source: String,
}

impl Policy {
    /// The policy used when none is given: a signature by a trusted key (`--key`) over a
    /// provenance statement; nothing else is restricted.
    pub fn builtin_default() -> Policy {
        Policy {
            keys: Vec::new(),
            require: Require::default(),
            builders: None,
            build_types: None,
            components: Components::default(),
            packages: Packages::default(),
            artifacts: Artifacts::default(),
            upstream: Vec::new(),
            source: "built-in default policy".into(),
        }
    }
}

/// Parses a policy. `source_name` is the path shown in error messages. Pure: files named
/// by the policy are read by [`PolicyDoc::resolve`].
pub fn parse(source_name: &str, yaml: &str) -> Result<PolicyDoc, PolicyError> {
    let doc: PolicyDoc = crate::yaml_diag::parse_bounded::<_, PolicyError>(
        source_name,
        "policy",
        yaml,
        MAX_POLICY_LEN,
    )?;
    let invalid =
        |message: String| PolicyError::Invalid(InvalidYaml::unplaced(source_name, message));
    let mut names = BTreeSet::new();
    for k in &doc.keys {
        if !names.insert(k.name.as_str()) {
            return Err(invalid(format!("keys: the name `{}` is used twice", k.name)));
        }
    }
    if let Some(t) = &doc.require.signatures {
        for n in &t.keys {
            if !names.contains(n.as_str()) {
                return Err(invalid(format!(
                    "require.signatures.keys names `{n}`, which is not in `keys`"
                )));
            }
        }
    }
    for d in &doc.packages.deny {
        if d.name.trim().is_empty() {
            return Err(invalid("packages.deny: a package name is empty".into()));
        }
    }
    Ok(doc)
}

impl PolicyDoc {
    /// Reads the files the policy names, relative to `base_dir` (the policy's directory).
    pub fn resolve(self, source_name: &str, base_dir: &Path) -> Result<Policy, PolicyError> {
        let file_err = |what: &str, path: &Path, reason: String| PolicyError::File {
            source_name: source_name.into(),
            what: what.into(),
            path: path.display().to_string(),
            reason,
        };
        let mut keys = Vec::new();
        for k in self.keys {
            let key = match k.source {
                KeySource::Inline(key) => key,
                KeySource::File(rel) => {
                    let path = base_dir.join(&rel);
                    PublicKey::read_pem_file(&path)
                        .map_err(|e| file_err(&format!("key `{}`", k.name), &path, e.to_string()))?
                }
            };
            keys.push(PolicyKey { name: k.name, key, validity: k.validity });
        }
        let mut ids = BTreeSet::new();
        for k in &keys {
            if !ids.insert(k.key.key_id()) {
                let message = format!("keys: key `{}` is the same key as another entry", k.name);
                return Err(InvalidYaml::unplaced(source_name, message).into());
            }
        }
        let mut upstream = Vec::new();
        for UpstreamDoc(u) in self.upstream {
            let signer = match (u.public_key, u.keyless) {
                (Some(PemSource { pem: Some(pem), .. }), _) => UpstreamSigner::PublicKey { pem },
                (Some(PemSource { path: Some(rel), .. }), _) => {
                    let path = base_dir.join(&rel);
                    let pem = read_key_text(&path).map_err(|e| {
                        file_err(&format!("upstream key for {}", u.reference), &path, e.to_string())
                    })?;
                    UpstreamSigner::PublicKey { pem }
                }
                (_, Some(k)) => UpstreamSigner::Keyless {
                    certificate_identity: k.certificate_identity,
                    certificate_oidc_issuer: k.certificate_oidc_issuer,
                },
                // UpstreamDoc's TryFrom guarantees one of the shapes above.
                _ => {
                    return Err(PolicyError::Internal {
                        source_name: source_name.into(),
                        what: "an upstream rule has no signer",
                    });
                }
            };
            let trusted_root = match u.trusted_root {
                Some(rel) => {
                    let path = base_dir.join(rel);
                    if !path.is_file() {
                        return Err(file_err("trusted root", &path, "not a readable file".into()));
                    }
                    Some(path)
                }
                None => None,
            };
            upstream.push(UpstreamRule { reference: u.reference, signer, trusted_root });
        }
        Ok(Policy {
            keys,
            require: self.require,
            builders: self.builders.map(|b| b.0),
            build_types: self.build_types.map(|b| b.0),
            components: self.components,
            packages: self.packages,
            artifacts: self.artifacts,
            upstream,
            source: source_name.into(),
        })
    }
}

/// Reads a key file a policy names, refusing one larger than [`MAX_POLICY_LEN`] (a policy
/// naming `/dev/zero` must not exhaust memory).
fn read_key_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?.take(MAX_POLICY_LEN as u64 + 1).read_to_string(&mut text)?;
    if text.len() > MAX_POLICY_LEN {
        return Err(std::io::Error::other(format!("larger than {MAX_POLICY_LEN} bytes")));
    }
    Ok(text)
}

/// Reads, parses and resolves the policy file at `path`.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let source_name = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|source| PolicyError::Read { path: source_name.clone(), source })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| InvalidYaml::unplaced(&source_name, "not UTF-8 text"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&source_name, &text)?.resolve(&source_name, base)
}

#[cfg(test)]
mod tests;
