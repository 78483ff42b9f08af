//! Upstream component signatures (`upstream:` rules of a policy).
//!
//! A rule says: every component whose reference starts with `reference` must carry a
//! Sigstore bundle by `signer` (a public key, or a keyless identity checked against the
//! rule's trusted root) over the component's pinned digest, the digest the lock and the
//! provenance record. Bundles are looked up, never fetched: `--upstream-bundles DIR` holds
//! one file per signed component, `sha256-<hex>.sigstore.json` (the name a registry's
//! signature tag fallback uses, `sha256-<hex>.sig`, with cairn's bundle suffix). A rule
//! with no matching component, a component with no bundle, or a bundle that does not verify
//! is a failed check: upstream rules fail closed. A keyless rule's check names the trusted
//! root it used and its age (the rule's `trustedRoot`, else the root
//! [`crate::sigstore::trust::select`] picks for the public-good instance).

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::policy::{Timestamp, UpstreamRule, UpstreamSigner};
use crate::sigstore::trust::{self, Instance, TrustError};
use crate::sigstore::{Artifact, SigstoreError, TrustAnchor, verify_bundle};

use super::report::Check;
use super::source_matches;

/// A component image the provenance lists, as the upstream check sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamComponent {
    /// `<role>/<name>` as in the provenance's resolved dependencies.
    pub name: String,
    /// The normalized reference, e.g. `docker.io/library/alpine:3.20`.
    pub reference: String,
    /// The pinned top digest.
    pub digest: Digest,
}

/// What the upstream check gets to work with.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamInput<'a> {
    pub rules: &'a [UpstreamRule],
    pub components: &'a [UpstreamComponent],
    /// Where upstream bundles are looked up (`--upstream-bundles`).
    pub bundles_dir: Option<&'a Path>,
    /// The verification time.
    pub at: Timestamp,
}

/// Upper bound on one bundle file.
const MAX_BUNDLE: u64 = 16 << 20;

/// Why a component's upstream signature was not accepted (a failed check's detail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("{reference} must be signed upstream, but no --upstream-bundles directory was given")]
    NoBundlesDir { reference: String },
    #[error("{reference}: no upstream bundle ({}: {source})", file.display())]
    NoBundle { reference: String, file: PathBuf, source: std::io::Error },
    #[error("{}: bundle larger than {MAX_BUNDLE} bytes", file.display())]
    TooLarge { file: PathBuf },
    #[error("{}: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error(transparent)]
    TrustedRoot(#[from] TrustError),
    #[error("{reference} {digest}: upstream signature rejected: {source}")]
    Rejected { reference: String, digest: Digest, source: SigstoreError },
}

/// The checks for the policy's `upstream:` rules: none when there are no rules.
pub fn check(input: &UpstreamInput<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    for rule in input.rules {
        let matching: Vec<&UpstreamComponent> = input
            .components
            .iter()
            .filter(|c| source_matches(&rule.reference, &c.reference))
            .collect();
        if matching.is_empty() {
            checks.push(Check {
                name: format!("upstream {}", rule.reference),
                ok: false,
                detail: format!("no component of the image comes from {}", rule.reference),
            });
            continue;
        }
        for c in matching {
            let (ok, detail) = match check_one(rule, c, input.bundles_dir, input.at) {
                Ok(detail) => (true, detail),
                Err(reason) => (false, reason.to_string()),
            };
            checks.push(Check { name: format!("upstream {}", c.name), ok, detail });
        }
    }
    checks
}

fn check_one(
    rule: &UpstreamRule,
    c: &UpstreamComponent,
    bundles_dir: Option<&Path>,
    at: Timestamp,
) -> Result<String, UpstreamError> {
    let reference = || c.reference.clone();
    let dir = bundles_dir.ok_or_else(|| UpstreamError::NoBundlesDir { reference: reference() })?;
    let file = dir.join(format!("sha256-{}.sigstore.json", c.digest.hex()));
    let len = match std::fs::metadata(&file) {
        Ok(m) => m.len(),
        Err(source) => {
            return Err(UpstreamError::NoBundle { reference: reference(), file, source });
        }
    };
    if len > MAX_BUNDLE {
        return Err(UpstreamError::TooLarge { file });
    }
    let bundle = match std::fs::read(&file) {
        Ok(b) => b,
        Err(source) => return Err(UpstreamError::Read { file, source }),
    };
    let (anchor, root_note) = match &rule.signer {
        UpstreamSigner::PublicKey { pem } => {
            let trusted_root_json = match &rule.trusted_root {
                Some(p) => Some(trust::read_root(p)?),
                None => None,
            };
            let note = rule.trusted_root.as_ref().map(|p| format!("trusted root {}", p.display()));
            (TrustAnchor::PublicKey { pem: pem.as_bytes().to_vec(), trusted_root_json }, note)
        }
        UpstreamSigner::Keyless { certificate_identity, certificate_oidc_issuer } => {
            let root = trust::select(Instance::PublicGood, rule.trusted_root.as_deref())?;
            let now = jiff::Timestamp::from_second(i64::try_from(at.secs()).unwrap_or(i64::MAX))
                .unwrap_or(jiff::Timestamp::MAX);
            let mut note = root.describe(now);
            if let Some(w) = root.staleness_warning(now) {
                note = format!("{note}; warning: {w}");
            }
            let anchor = TrustAnchor::Keyless {
                identity: certificate_identity.clone(),
                issuer: certificate_oidc_issuer.clone(),
                trusted_root_json: root.json,
            };
            (anchor, Some(note))
        }
    };
    let how = match root_note {
        Some(note) => format!("{}; {note}", file.display()),
        None => file.display().to_string(),
    };
    verify_bundle(&bundle, Artifact::Digest(c.digest), &anchor)
        .map(|_| format!("{} {} signed upstream ({how})", c.reference, c.digest))
        .map_err(|source| UpstreamError::Rejected {
            reference: reference(),
            digest: c.digest,
            source,
        })
}
