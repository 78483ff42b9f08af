//! Verification: do these artifacts carry signed attestations, by keys we trust, that
//! describe exactly these bytes, and does the policy accept what the attestations say?
//!
//! [`verify`] takes the artifacts (an output directory or single files), the attestation
//! files (`.intoto.jsonl` DSSE envelopes, `.sigstore.json` Sigstore bundles), the trusted
//! keys and a [`Policy`], and returns a [`Report`] with every check plus, only when every
//! check passed, a [`Verified`] witness. Nothing else constructs a `Verified`.
//!
//! Fail closed: a check that cannot be made is a failed check. Unknown predicate types,
//! duplicate subjects, unparseable files, a bundle whose key hint names no trusted key,
//! an envelope without a valid signature by a usable trusted key, a file in the directory
//! that no subject names: each is a rejection with its reason.
//!
//! Signatures are counted one by one (`statements::check_signatures`): an envelope is accepted when
//! at least one of its signatures verifies under a trusted key that is usable at the
//! verification time (not revoked, inside its validity window); a signature that claims a
//! trusted key and does not verify is reported and not counted. The K-of-N threshold counts
//! the distinct usable keys that signed a statement naming the subjects.
//!
//! The errors of this module ([`VerifyError`]) mean "could not run" (bad usage, no
//! trusted key, a directory that does not exist); every finding about the artifacts is a
//! check in the report.
//!
//! Parts: [`statements`] finds and reads the attestations (with the `attest` types; unknown
//! fields as SECURITY.md says), `checks` holds the checks over the statements and the
//! policy, [`artifact`] hashes what is on disk, [`upstream`] checks upstream signatures and
//! [`report`] is the report.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::policy::{Policy, Timestamp};
use crate::sign::bundle;
use crate::sign::keys::PublicKey;

pub mod artifact;
mod checks;
pub mod report;
pub mod statements;
pub mod upstream;

pub use artifact::subject_digest;
pub use checks::source_matches;
use checks::{check_artifacts, check_packages, check_provenance, check_threshold, components_of};
pub use report::{ArtifactDigest, Check, Report};
pub use statements::SignatureResults;
use statements::{SignedStatement, read_statements, sources};

/// Largest attestation file read.
pub const MAX_ATTESTATION_FILE: u64 = bundle::MAX_COLLECTION_BYTES as u64;

/// Suffixes of the files a build writes beside its image outputs.
pub const ATTESTATION_SUFFIXES: [&str; 5] =
    [".spdx.json", ".cdx.json", ".provenance.json", ".intoto.jsonl", ".sigstore.json"];

/// What to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A build's output directory: its contents must be exactly the subjects.
    Dir(PathBuf),
    /// Single artifacts: each must be a subject; the others need not be present.
    Files(Vec<PathBuf>),
}

/// The inputs of a verification.
#[derive(Clone, Debug)]
pub struct Request {
    pub target: Target,
    /// Extra `.intoto.jsonl` files (independent rebuilders' signatures, …).
    pub attestations: Vec<PathBuf>,
    /// Sigstore bundle files: one bundle or a JSON array of them.
    pub bundles: Vec<PathBuf>,
    /// Trusted keys given outside the policy (`--key`), with a display name.
    pub keys: Vec<(String, PublicKey)>,
    pub policy: Policy,
    /// Directory of upstream component bundles (`sha256-<hex>.sigstore.json`).
    pub upstream_bundles: Option<PathBuf>,
    /// The verification time: key validity windows are checked against it.
    pub at: Timestamp,
}

/// Why verification could not run at all (as opposed to a rejection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("no trusted keys: give --key or a policy with keys")]
    NoTrustedKeys,
    #[error("{path}: {reason}")]
    Input { path: String, reason: String },
}

/// Proof that a verification passed; only [`verify`] makes one.
#[derive(Debug)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub fn get(&self) -> &T {
        &self.0
    }
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// What a passing verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedImage {
    /// The subjects of the signed statements (name, digest), sorted by name.
    pub subjects: Vec<(String, Digest)>,
    /// The artifacts that were hashed and matched (name, digest).
    pub artifacts: Vec<(String, Digest)>,
    /// Names of the usable trusted keys that signed, sorted.
    pub signers: Vec<String>,
}

/// A rejection: the first failing check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub reason: String,
}

/// The report and the verdict.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub verdict: Result<Verified<VerifiedImage>, Rejected>,
}

/// A key verification may count.
struct TrustedKey {
    name: String,
    id: String,
    key: PublicKey,
    /// Why it may not be used at the verification time.
    unusable: Option<String>,
}

fn trusted_keys(req: &Request) -> Result<Vec<TrustedKey>, VerifyError> {
    let mut out: Vec<TrustedKey> = Vec::new();
    for k in &req.policy.keys {
        out.push(TrustedKey {
            name: k.name.clone(),
            id: k.key.key_id(),
            key: k.key.clone(),
            unusable: k.unusable_at(req.at),
        });
    }
    for (name, key) in &req.keys {
        let id = key.key_id();
        // A policy entry for the same key keeps its name, window and revocation.
        if !out.iter().any(|t| t.id == id) {
            out.push(TrustedKey { name: name.clone(), id, key: key.clone(), unusable: None });
        }
    }
    if out.is_empty() {
        return Err(VerifyError::NoTrustedKeys);
    }
    Ok(out)
}

fn show_subjects(s: &[(String, Digest)]) -> String {
    s.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
}

/// Runs every check (see the module docs).
pub fn verify(req: &Request) -> Result<Outcome, VerifyError> {
    let trusted = trusted_keys(req)?;
    if let Target::Dir(d) = &req.target
        && !d.is_dir()
    {
        return Err(VerifyError::Input {
            path: d.display().to_string(),
            reason: "not a directory".into(),
        });
    }
    if let Target::Files(files) = &req.target {
        for f in files {
            if std::fs::symlink_metadata(f).is_err() {
                return Err(VerifyError::Input {
                    path: f.display().to_string(),
                    reason: "no such file".into(),
                });
            }
        }
    }
    let mut r = Report::default();
    let policy = &req.policy;
    r.pass(
        "policy",
        format!("{}; {} trusted keys; verification time {}", policy.source, trusted.len(), req.at),
    );
    for k in &trusted {
        if let Some(why) = &k.unusable {
            r.pass("keys", format!("{why}: its signatures are not counted"));
        }
    }

    let sources = sources(req)?;
    if sources.is_empty() {
        r.fail(
            "attestations",
            "no attestations found: no *.intoto.jsonl or *.sigstore.json beside the artifacts, and no --attestations or --bundle",
        );
    }
    let statements = read_statements(&sources, &trusted, &mut r);
    let provenances: Vec<&SignedStatement> =
        statements.iter().filter(|s| s.provenance().is_some()).collect();
    let sboms: Vec<&SignedStatement> = statements.iter().filter(|s| s.sbom().is_some()).collect();
    if policy.require.provenance && provenances.is_empty() {
        r.fail("provenance", "no signed SLSA provenance statement, and the policy requires one");
    }
    if policy.require.sbom && sboms.is_empty() {
        r.fail("sbom", "no signed SBOM statement, and the policy requires one");
    }
    let subject_statements = if provenances.is_empty() { &sboms } else { &provenances };
    let Some(first) = subject_statements.first() else {
        r.fail("subjects", "no signed statement names the artifacts");
        return Ok(finish(r, None));
    };
    let subjects = first.subjects.clone();
    let mut subjects_ok = true;
    for s in subject_statements.iter().skip(1) {
        if s.subjects != subjects {
            subjects_ok = false;
            r.fail(
                "subjects",
                format!(
                    "{} names other subjects than {} ({} vs {})",
                    s.labels.join(", "),
                    first.labels.join(", "),
                    show_subjects(&s.subjects),
                    show_subjects(&subjects)
                ),
            );
        }
    }
    if subjects_ok {
        r.pass("subjects", format!("{} subjects: {}", subjects.len(), show_subjects(&subjects)));
    }
    for s in &sboms {
        if s.subjects == subjects {
            r.pass("sbom-subjects", format!("{}: same subjects as the provenance", s.labels[0]));
        } else {
            r.fail(
                "sbom-subjects",
                format!(
                    "{}: the SBOM statement names other subjects than the provenance ({} vs {})",
                    s.labels.join(", "),
                    show_subjects(&s.subjects),
                    show_subjects(&subjects)
                ),
            );
        }
    }

    let checked = check_artifacts(req, &subjects, &provenances, &sboms, &mut r)?;
    for p in &provenances {
        check_provenance(p, policy, &mut r);
    }
    check_packages(policy, &sboms, &mut r);
    let threshold_ok = check_threshold(policy, subject_statements, &trusted, &mut r);
    let components: Vec<upstream::UpstreamComponent> =
        provenances.first().and_then(|p| p.provenance()).map(components_of).unwrap_or_default();
    r.checks.extend(upstream::check(&upstream::UpstreamInput {
        rules: &policy.upstream,
        components: &components,
        bundles_dir: req.upstream_bundles.as_deref(),
        at: req.at,
    }));

    let signers: BTreeSet<String> = subject_statements
        .iter()
        .flat_map(|s| s.signers.iter())
        .filter_map(|id| trusted.iter().find(|k| &k.id == id).map(|k| k.name.clone()))
        .collect();
    let image = (threshold_ok && !checked.is_empty()).then(|| VerifiedImage {
        subjects,
        artifacts: checked,
        signers: signers.into_iter().collect(),
    });
    Ok(finish(r, image))
}

fn finish(report: Report, image: Option<VerifiedImage>) -> Outcome {
    let verdict = match (report.first_failure(), image) {
        (None, Some(image)) => Ok(Verified(image)),
        (Some(reason), _) => Err(Rejected { reason }),
        (None, None) => Err(Rejected { reason: "nothing was verified".into() }),
    };
    Outcome { report, verdict }
}

#[cfg(test)]
mod tests;
