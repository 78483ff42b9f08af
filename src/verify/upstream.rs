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

use std::path::Path;

use crate::digest::Digest;
use crate::policy::{Timestamp, UpstreamRule, UpstreamSigner};
use crate::sigstore::{Artifact, TrustAnchor, verify_bundle};

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
                Err(reason) => (false, reason),
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
) -> Result<String, String> {
    let dir = bundles_dir.ok_or_else(|| {
        format!(
            "{} must be signed upstream, but no --upstream-bundles directory was given",
            c.reference
        )
    })?;
    let file = dir.join(format!("sha256-{}.sigstore.json", c.digest.hex()));
    let len = std::fs::metadata(&file)
        .map_err(|e| format!("{}: no upstream bundle ({}: {e})", c.reference, file.display()))?
        .len();
    if len > MAX_BUNDLE {
        return Err(format!("{}: bundle larger than {MAX_BUNDLE} bytes", file.display()));
    }
    let bundle = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let trusted_root = match &rule.trusted_root {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| format!("trusted root {}: {e}", p.display()))?)
        }
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
                    format!("upstream rule {}: keyless needs a trustedRoot", rule.reference)
                })?,
            }
        }
    };
    verify_bundle(&bundle, Artifact::Digest(c.digest), &anchor)
        .map(|_| format!("{} {} signed upstream ({})", c.reference, c.digest, file.display()))
        .map_err(|e| format!("{} {}: upstream signature rejected: {e}", c.reference, c.digest))
}
