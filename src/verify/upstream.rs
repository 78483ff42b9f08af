//! Upstream component signatures (`upstream:` rules of a policy).
//!
//! A rule says: every component whose reference starts with `reference` must carry a
//! Sigstore bundle by `signer` (a public key, or a keyless identity checked against the
//! rule's trusted root) over the component's pinned digest, the digest the lock and the
//! provenance record. Bundles are looked up, never fetched: `--upstream-bundles DIR` holds
//! one file per signed component, `sha256-<hex>.sigstore.json` (the name a registry's
//! signature tag fallback uses, `sha256-<hex>.sig`, with cairn's bundle suffix). A rule
//! with no matching component, a component with no bundle, or a bundle that does not verify
//! is a failed check: upstream rules fail closed.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::policy::{Timestamp, UpstreamRule, UpstreamSigner};
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
    #[error("trusted root {}: {source}", path.display())]
    TrustedRoot { path: PathBuf, source: std::io::Error },
    #[error("upstream rule {reference}: keyless needs a trustedRoot")]
    KeylessWithoutRoot { reference: String },
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
            let (ok, detail) = match check_one(rule, c, input.bundles_dir) {
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
    let trusted_root = match &rule.trusted_root {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|source| UpstreamError::TrustedRoot { path: p.clone(), source })?,
        ),
        None => None,
    };
    let anchor = match &rule.signer {
        UpstreamSigner::PublicKey { pem } => {
            TrustAnchor::PublicKey { pem: pem.as_bytes().to_vec(), trusted_root_json: trusted_root }
        }
        UpstreamSigner::Keyless { certificate_identity, certificate_oidc_issuer } => {
            TrustAnchor::Keyless {
                identity: certificate_identity.clone(),
                issuer: certificate_oidc_issuer.clone(),
                trusted_root_json: trusted_root.ok_or_else(|| {
                    UpstreamError::KeylessWithoutRoot { reference: rule.reference.clone() }
                })?,
            }
        }
    };
    verify_bundle(&bundle, Artifact::Digest(c.digest), &anchor)
        .map(|_| format!("{} {} signed upstream ({})", c.reference, c.digest, file.display()))
        .map_err(|source| UpstreamError::Rejected {
            reference: reference(),
            digest: c.digest,
            source,
        })
}
