//! Upstream component signatures (`upstream:` rules of a policy): the hook verification
//! calls. This build has no Sigstore verifier, so any rule fails closed.

use crate::digest::Digest;
use crate::policy::{Timestamp, UpstreamRule};

use super::report::Check;

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
    /// The verification time.
    pub at: Timestamp,
}

/// The checks for the policy's `upstream:` rules: none when there are no rules.
pub fn check(input: &UpstreamInput<'_>) -> Vec<Check> {
    if input.rules.is_empty() {
        return Vec::new();
    }
    vec![Check {
        name: "upstream".into(),
        ok: false,
        detail: format!(
            "the policy has {} upstream rule(s), but upstream signature verification is not available in this build",
            input.rules.len()
        ),
    }]
}
