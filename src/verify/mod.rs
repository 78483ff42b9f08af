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
//! Signatures are counted one by one ([`check_signatures`]): an envelope is accepted when
//! at least one of its signatures verifies under a trusted key that is usable at the
//! verification time (not revoked, inside its validity window); a signature that claims a
//! trusted key and does not verify is reported and not counted. The K-of-N threshold counts
//! the distinct usable keys that signed a statement naming the subjects.
//!
//! The errors of this module ([`VerifyError`]) mean "could not run" (bad usage, no
//! trusted key, a directory that does not exist); every finding about the artifacts is a
//! check in the report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::attest::{SPDX_PREDICATE_TYPE, STATEMENT_TYPE, provenance};
use crate::digest::Digest;
use crate::policy::{Policy, Timestamp};
use crate::sign::bundle::{self, Bundle};
use crate::sign::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::sign::keys::PublicKey;

pub mod artifact;
pub mod report;
pub mod upstream;

pub use artifact::subject_digest;
pub use report::{ArtifactDigest, Check, Report};

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

/// Which statement a signed envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Provenance,
    Sbom,
}

/// An in-toto Statement v1, parsed strictly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Value>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Value,
}

/// A statement whose envelope verified.
struct SignedStatement {
    labels: Vec<String>,
    kind: Kind,
    /// The statement's canonical payload bytes (for merging duplicates).
    payload: Vec<u8>,
    statement: Value,
    subjects: Vec<(String, Digest)>,
    /// Ids of usable trusted keys whose signatures verified.
    signers: BTreeSet<String>,
}

/// The result of checking every signature of one envelope.
pub struct SignatureResults {
    /// Key ids of trusted, usable keys whose signature verified.
    pub verified: BTreeSet<String>,
    /// One note per signature that did not count, with the reason.
    pub notes: Vec<String>,
}

/// Checks each signature of `envelope` on its own (unlike [`dsse::verify`], a bad signature
/// does not spoil the others, so a K-of-N threshold can be counted).
fn check_signatures(envelope: &Envelope, trusted: &[TrustedKey]) -> SignatureResults {
    let message = dsse::pae(envelope.payload_type(), envelope.payload());
    let mut verified = BTreeSet::new();
    let mut notes = Vec::new();
    for s in envelope.signatures() {
        let Some(k) = trusted.iter().find(|k| k.id == s.keyid()) else {
            notes.push(format!("signature by untrusted key {}", s.keyid()));
            continue;
        };
        match k.key.verify(&message, s.sig()) {
            Err(e) => notes.push(format!("signature by key `{}` does not verify: {e}", k.name)),
            Ok(()) => match &k.unusable {
                Some(why) => {
                    notes.push(format!("signature by key `{}` not counted: {why}", k.name))
                }
                None => {
                    verified.insert(k.id.clone());
                }
            },
        }
    }
    SignatureResults { verified, notes }
}

/// An attestation source.
enum Source {
    Jsonl(PathBuf),
    Bundles(PathBuf),
}

fn list_dir(dir: &Path) -> Result<Vec<String>, VerifyError> {
    let err = |e: std::io::Error| VerifyError::Input {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(err)? {
        let e = e.map_err(err)?;
        match e.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(n) => names.push(n.to_string_lossy().into_owned()),
        }
    }
    names.sort();
    Ok(names)
}

fn discover(dir: &Path, out: &mut Vec<Source>) -> Result<(), VerifyError> {
    for n in list_dir(dir)? {
        if n.ends_with(".intoto.jsonl") {
            out.push(Source::Jsonl(dir.join(n)));
        } else if n.ends_with(".sigstore.json") {
            out.push(Source::Bundles(dir.join(n)));
        }
    }
    Ok(())
}

fn sources(req: &Request) -> Result<Vec<Source>, VerifyError> {
    let mut out = Vec::new();
    match &req.target {
        Target::Dir(d) => discover(d, &mut out)?,
        Target::Files(files) if req.attestations.is_empty() && req.bundles.is_empty() => {
            let dirs: BTreeSet<PathBuf> = files
                .iter()
                .map(|f| match f.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                })
                .collect();
            for d in dirs {
                discover(&d, &mut out)?;
            }
        }
        Target::Files(_) => {}
    }
    out.extend(req.attestations.iter().cloned().map(Source::Jsonl));
    out.extend(req.bundles.iter().cloned().map(Source::Bundles));
    // The same file named twice (found in the directory and given as a flag) counts once.
    let mut seen = BTreeSet::new();
    out.retain(|s| {
        let p = match s {
            Source::Jsonl(p) | Source::Bundles(p) => p,
        };
        seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
    });
    Ok(out)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_ATTESTATION_FILE {
        return Err(format!("{} bytes, over the {MAX_ATTESTATION_FILE}-byte limit", meta.len()));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Parses the subjects of a statement: non-empty, plain unique names, exactly a sha256.
fn parse_subjects(list: &[Value]) -> Result<Vec<(String, Digest)>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Subject {
        name: String,
        digest: DigestSet,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DigestSet {
        sha256: String,
    }
    if list.is_empty() {
        return Err("the statement has no subjects".into());
    }
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for v in list {
        let s: Subject =
            serde_json::from_value(v.clone()).map_err(|e| format!("malformed subject {v}: {e}"))?;
        if crate::output_name::OutputName::parse(&s.name).is_err() {
            return Err(format!("subject name {:?} is not a plain file name", s.name));
        }
        let d = Digest::from_hex(&s.digest.sha256)
            .ok_or_else(|| format!("subject {} has a malformed sha256", s.name))?;
        if !names.insert(s.name.clone()) {
            return Err(format!("duplicate subject {}", s.name));
        }
        out.push((s.name, d));
    }
    out.sort();
    Ok(out)
}

/// Checks one envelope: signatures, payload type, statement shape and predicate type.
fn check_envelope(
    label: &str,
    envelope: &Envelope,
    trusted: &[TrustedKey],
    r: &mut Report,
) -> Option<SignedStatement> {
    let sigs = check_signatures(envelope, trusted);
    let names = |ids: &BTreeSet<String>| {
        ids.iter()
            .map(|id| {
                trusted.iter().find(|k| &k.id == id).map(|k| k.name.clone()).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let notes =
        if sigs.notes.is_empty() { String::new() } else { format!("; {}", sigs.notes.join("; ")) };
    if sigs.verified.is_empty() {
        let why =
            if sigs.notes.is_empty() { "no signatures".into() } else { sigs.notes.join("; ") };
        r.fail("signature", format!("{label}: no valid signature by a usable trusted key ({why})"));
        return None;
    }
    r.pass("signature", format!("{label}: verified by {}{notes}", names(&sigs.verified)));
    if envelope.payload_type() != IN_TOTO_PAYLOAD_TYPE {
        r.fail(
            "payload-type",
            format!(
                "{label}: payload type {:?}, expected {IN_TOTO_PAYLOAD_TYPE}",
                envelope.payload_type()
            ),
        );
        return None;
    }
    let statement: Statement = match serde_json::from_slice(envelope.payload()) {
        Ok(s) => s,
        Err(e) => {
            r.fail("statement", format!("{label}: not an in-toto statement: {e}"));
            return None;
        }
    };
    if statement.type_ != STATEMENT_TYPE {
        r.fail(
            "statement",
            format!("{label}: _type {:?}, expected {STATEMENT_TYPE}", statement.type_),
        );
        return None;
    }
    let kind = match statement.predicate_type.as_str() {
        provenance::PREDICATE_TYPE => Kind::Provenance,
        SPDX_PREDICATE_TYPE => Kind::Sbom,
        other => {
            r.fail(
                "predicate-type",
                format!(
                    "{label}: unknown predicate type {other:?} (cairn accepts {} and {SPDX_PREDICATE_TYPE})",
                    provenance::PREDICATE_TYPE
                ),
            );
            return None;
        }
    };
    let subjects = match parse_subjects(&statement.subject) {
        Ok(s) => s,
        Err(e) => {
            r.fail("subjects", format!("{label}: {e}"));
            return None;
        }
    };
    let value = serde_json::json!({
        "_type": statement.type_,
        "subject": statement.subject,
        "predicateType": statement.predicate_type,
        "predicate": statement.predicate,
    });
    Some(SignedStatement {
        labels: vec![label.to_owned()],
        kind,
        payload: envelope.payload().to_vec(),
        statement: value,
        subjects,
        signers: sigs.verified,
    })
}

/// Reads and checks every attestation source; returns the accepted statements, duplicates
/// (the same payload in several files) merged.
fn read_statements(
    sources: &[Source],
    trusted: &[TrustedKey],
    r: &mut Report,
) -> Vec<SignedStatement> {
    let mut out: Vec<SignedStatement> = Vec::new();
    let push = |s: SignedStatement, out: &mut Vec<SignedStatement>| {
        if let Some(e) = out.iter_mut().find(|e| e.payload == s.payload) {
            e.labels.extend(s.labels);
            e.signers.extend(s.signers);
        } else {
            out.push(s);
        }
    };
    for source in sources {
        match source {
            Source::Jsonl(path) => {
                let name = file_label(path);
                let parsed = read_bounded(path)
                    .and_then(|b| dsse::parse_jsonl(&b).map_err(|e| e.to_string()));
                match parsed {
                    Err(e) => r.fail("attestations", format!("{name}: {e}")),
                    Ok(envs) if envs.is_empty() => {
                        r.fail("attestations", format!("{name}: holds no envelopes"))
                    }
                    Ok(envs) => {
                        r.pass("attestations", format!("{name}: {} DSSE envelopes", envs.len()));
                        for (i, env) in envs.iter().enumerate() {
                            let label = format!("{name}#{}", i + 1);
                            if let Some(s) = check_envelope(&label, env, trusted, r) {
                                push(s, &mut out);
                            }
                        }
                    }
                }
            }
            Source::Bundles(path) => {
                let name = file_label(path);
                let parsed = read_bounded(path).and_then(|b| {
                    let first = b.iter().find(|c| !c.is_ascii_whitespace());
                    if first == Some(&b'[') {
                        bundle::parse_collection(&b).map_err(|e| e.to_string())
                    } else {
                        Bundle::from_json(&b).map(|b| vec![b]).map_err(|e| e.to_string())
                    }
                });
                match parsed {
                    Err(e) => r.fail("attestations", format!("{name}: {e}")),
                    Ok(bundles) if bundles.is_empty() => {
                        r.fail("attestations", format!("{name}: holds no bundles"))
                    }
                    Ok(bundles) => {
                        r.pass(
                            "attestations",
                            format!("{name}: {} Sigstore bundles", bundles.len()),
                        );
                        for (i, b) in bundles.iter().enumerate() {
                            let label = format!("{name}#{}", i + 1);
                            if !trusted.iter().any(|k| k.id == b.hint()) {
                                r.fail(
                                    "signature",
                                    format!(
                                        "{label}: the bundle's key hint {} names no trusted key",
                                        b.hint()
                                    ),
                                );
                                continue;
                            }
                            if let Some(s) = check_envelope(&label, b.envelope(), trusted, r) {
                                push(s, &mut out);
                            }
                        }
                    }
                }
            }
        }
    }
    out
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
        statements.iter().filter(|s| s.kind == Kind::Provenance).collect();
    let sboms: Vec<&SignedStatement> = statements.iter().filter(|s| s.kind == Kind::Sbom).collect();
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
        provenances.first().map(|p| components_of(&p.statement)).unwrap_or_default();
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

/// Hashes the artifacts and compares them with the subjects; in directory mode also
/// checks that the directory holds exactly the subjects (plus attestation files) and that
/// unsigned copies of the statements equal the signed ones.
fn check_artifacts(
    req: &Request,
    subjects: &[(String, Digest)],
    provenances: &[&SignedStatement],
    sboms: &[&SignedStatement],
    r: &mut Report,
) -> Result<Vec<(String, Digest)>, VerifyError> {
    let wanted: BTreeMap<&str, &Digest> = subjects.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let mut checked = Vec::new();
    let mut hash_one = |name: &str, path: &Path, r: &mut Report| {
        let Some(want) = wanted.get(name) else {
            r.fail("artifact", format!("{name} is not a subject of the signed statements"));
            return;
        };
        match subject_digest(path) {
            Err(e) => r.fail("artifact", format!("{name}: {e}")),
            Ok(have) => {
                r.artifacts.push(ArtifactDigest { name: name.to_owned(), sha256: have.hex() });
                if have == **want {
                    r.pass("artifact", format!("{name}: {have}"));
                    checked.push((name.to_owned(), have));
                } else {
                    r.fail(
                        "artifact",
                        format!("{name} is {have}, but the signed statement says {want}"),
                    );
                }
            }
        }
    };
    match &req.target {
        Target::Files(files) => {
            for f in files {
                let name = file_label(f);
                hash_one(&name, f, r);
            }
        }
        Target::Dir(dir) => {
            let build_name = provenances.first().and_then(|p| {
                p.statement
                    .pointer("/predicate/buildDefinition/externalParameters/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            let is_attestation = |n: &str| {
                n.ends_with(".intoto.jsonl")
                    || n.ends_with(".sigstore.json")
                    || match &build_name {
                        Some(b) => [".spdx.json", ".cdx.json", ".provenance.json"]
                            .iter()
                            .any(|s| n == format!("{b}{s}")),
                        None => ATTESTATION_SUFFIXES.iter().any(|s| n.ends_with(s)),
                    }
            };
            let names = list_dir(dir)?;
            let mut extra = Vec::new();
            for n in &names {
                if is_attestation(n) {
                    continue;
                }
                if wanted.contains_key(n.as_str()) {
                    hash_one(n, &dir.join(n), r);
                } else {
                    extra.push(n.clone());
                }
            }
            let mut missing = Vec::new();
            for (n, _) in subjects {
                if !names.contains(n) {
                    if req.policy.artifacts.optional.contains(n) {
                        r.pass("artifacts", format!("{n} is absent, which the policy allows"));
                    } else {
                        missing.push(n.clone());
                    }
                }
            }
            if !extra.is_empty() {
                r.fail(
                    "artifacts",
                    format!(
                        "unexpected file(s) in {}: {} (not subjects of the signed statements)",
                        dir.display(),
                        extra.join(", ")
                    ),
                );
            }
            if !missing.is_empty() {
                r.fail("artifacts", format!("missing subject(s): {}", missing.join(", ")));
            }
            if extra.is_empty() && missing.is_empty() {
                r.pass("artifacts", "the directory holds exactly the subjects");
            }
            for n in names.iter().filter(|n| is_attestation(n)) {
                check_unsigned_copy(dir, n, provenances, sboms, r);
            }
        }
    }
    Ok(checked)
}

/// `NAME.spdx.json` and `NAME.provenance.json` on disk must equal a signed statement's
/// content (they are unsigned copies a consumer may read instead of the envelopes).
fn check_unsigned_copy(
    dir: &Path,
    name: &str,
    provenances: &[&SignedStatement],
    sboms: &[&SignedStatement],
    r: &mut Report,
) {
    let (check, signed): (&str, Vec<&Value>) = if name.ends_with(".spdx.json") {
        ("sbom-file", sboms.iter().map(|s| &s.statement["predicate"]).collect())
    } else if name.ends_with(".provenance.json") {
        ("provenance-file", provenances.iter().map(|s| &s.statement).collect())
    } else {
        return;
    };
    let parsed = read_bounded(&dir.join(name))
        .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
    match parsed {
        Err(e) => r.fail(check, format!("{name}: {e}")),
        Ok(v) if signed.contains(&&v) => {
            r.pass(check, format!("{name} equals the signed statement"))
        }
        Ok(_) if signed.is_empty() => r.fail(
            check,
            format!("{name} is present but no signed statement of its kind covers it"),
        ),
        Ok(_) => r.fail(check, format!("{name} differs from the signed statement")),
    }
}

/// A resolved dependency of the provenance.
#[derive(Deserialize)]
struct Dependency {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    digest: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, Value>>,
}

fn dependencies(statement: &Value) -> Result<Vec<Dependency>, String> {
    match statement.pointer("/predicate/buildDefinition/resolvedDependencies") {
        None => Ok(Vec::new()),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| format!("resolvedDependencies: {e}"))
        }
    }
}

fn dep_label(d: &Dependency) -> String {
    d.name.clone().or_else(|| d.uri.clone()).unwrap_or_else(|| "(unnamed)".into())
}

fn dep_digest(d: &Dependency) -> Option<Digest> {
    d.digest.as_ref()?.get("sha256").and_then(|h| Digest::from_hex(h))
}

fn components_of(statement: &Value) -> Vec<upstream::UpstreamComponent> {
    let deps = dependencies(statement).unwrap_or_default();
    deps.iter()
        .filter_map(|d| {
            let a = d.annotations.as_ref()?;
            a.get("role")?.as_str()?;
            let reference = a.get("reference")?.as_str()?.to_owned();
            Some(upstream::UpstreamComponent {
                name: d.name.clone()?,
                reference,
                digest: dep_digest(d)?,
            })
        })
        .collect()
}

/// Whether `reference` starts with `prefix` at a boundary (`/`, `:`, `@` or the end), so
/// that `docker.io/linuxkit` does not admit `docker.io/linuxkit-evil/x`.
pub fn source_matches(prefix: &str, reference: &str) -> bool {
    let Some(rest) = reference.strip_prefix(prefix) else { return false };
    rest.is_empty() || prefix.ends_with(['/', ':', '@']) || rest.starts_with(['/', ':', '@'])
}

/// Builder id, build type, pinned dependencies and component rules of one provenance.
fn check_provenance(p: &SignedStatement, policy: &Policy, r: &mut Report) {
    let label = p.labels.join(", ");
    let st = &p.statement;
    let builder = st.pointer("/predicate/runDetails/builder/id").and_then(Value::as_str);
    let build_type = st.pointer("/predicate/buildDefinition/buildType").and_then(Value::as_str);
    for (check, value, allowed, what) in [
        ("builder", builder, &policy.builders, "builder id"),
        ("build-type", build_type, &policy.build_types, "build type"),
    ] {
        match (value, allowed) {
            (None, _) => r.fail(check, format!("{label}: the provenance has no {what}")),
            (Some(v), Some(list)) if !list.iter().any(|a| a == v) => r.fail(
                check,
                format!("{label}: {what} {v} is not allowed by the policy ({})", list.join(", ")),
            ),
            (Some(v), Some(_)) => r.pass(check, format!("{what} {v} is allowed")),
            (Some(v), None) => r.pass(check, format!("{what} {v} (any allowed)")),
        }
    }
    let deps = match dependencies(st) {
        Ok(d) => d,
        Err(e) => {
            r.fail("dependencies", format!("{label}: {e}"));
            return;
        }
    };
    let mut unpinned = Vec::new();
    for (i, d) in deps.iter().enumerate() {
        if dep_digest(d).is_some() {
            if d.digest.as_ref().is_some_and(|m| m.len() != 1) {
                unpinned.push(format!("{} (digest algorithms other than sha256)", dep_label(d)));
            }
            continue;
        }
        if d.digest.as_ref().is_some_and(|m| m.contains_key("sha256")) {
            unpinned.push(format!("{} (malformed sha256)", dep_label(d)));
            continue;
        }
        // A Debian package an imported .deb brought is described by, and pinned through,
        // its component entry earlier in the list.
        let described = d.uri.as_deref().is_some_and(|u| u.starts_with("pkg:deb/"))
            && d.annotations
                .as_ref()
                .and_then(|a| a.get("component"))
                .and_then(Value::as_str)
                .is_some_and(|c| {
                    d.name.as_deref().is_some_and(|n| n.starts_with(&format!("{c}/deb/")))
                        && deps
                            .iter()
                            .take(i)
                            .any(|e| e.name.as_deref() == Some(c) && dep_digest(e).is_some())
                });
        if !described {
            unpinned.push(dep_label(d));
        }
    }
    if unpinned.is_empty() {
        r.pass(
            "dependencies",
            format!("{} resolved dependencies, all pinned by sha256", deps.len()),
        );
    } else {
        r.fail(
            "dependencies",
            format!("{label}: not pinned by a sha256 digest: {}", unpinned.join(", ")),
        );
    }
    let rules = &policy.components;
    let denied: Vec<String> = deps
        .iter()
        .filter(|d| dep_digest(d).is_some_and(|g| rules.denied_digests.contains(&g)))
        .map(|d| {
            format!(
                "{} ({})",
                dep_label(d),
                dep_digest(d).map(|g| g.to_string()).unwrap_or_default()
            )
        })
        .collect();
    if !rules.denied_digests.is_empty() {
        if denied.is_empty() {
            r.pass("denied-digests", "no denied digest among the dependencies");
        } else {
            r.fail("denied-digests", format!("{label}: denied digest: {}", denied.join(", ")));
        }
    }
    if let Some(sources) = &rules.allowed_sources {
        let mut bad = Vec::new();
        for c in components_of(st) {
            let ok = sources.as_slice().iter().any(|s| source_matches(s, &c.reference))
                || rules.allowed_digests.contains(&c.digest);
            if !ok {
                bad.push(format!("{} from {}", c.name, c.reference));
            }
        }
        if bad.is_empty() {
            r.pass("component-sources", "every component comes from an allowed source");
        } else {
            r.fail(
                "component-sources",
                format!("{label}: component source not allowed by the policy: {}", bad.join(", ")),
            );
        }
    }
}

/// OS packages of an SPDX document: (name, version) of packages with a `pkg:deb`,
/// `pkg:apk` or `pkg:rpm` purl.
fn os_packages(spdx: &Value) -> Vec<(String, Option<String>)> {
    let Some(pkgs) = spdx.get("packages").and_then(Value::as_array) else { return Vec::new() };
    pkgs.iter()
        .filter(|p| {
            p.get("externalRefs").and_then(Value::as_array).is_some_and(|refs| {
                refs.iter().any(|r| {
                    r.get("referenceType").and_then(Value::as_str) == Some("purl")
                        && r.get("referenceLocator").and_then(Value::as_str).is_some_and(|l| {
                            ["pkg:deb/", "pkg:apk/", "pkg:rpm/"].iter().any(|t| l.starts_with(t))
                        })
                })
            })
        })
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?.to_owned();
            Some((name, p.get("versionInfo").and_then(Value::as_str).map(str::to_owned)))
        })
        .collect()
}

fn check_packages(policy: &Policy, sboms: &[&SignedStatement], r: &mut Report) {
    let rules = &policy.packages.deny;
    if rules.is_empty() {
        return;
    }
    if sboms.is_empty() {
        r.fail("packages", "the policy denies packages, but no signed SBOM lists the packages");
        return;
    }
    let mut hits = Vec::new();
    let mut count = 0;
    for s in sboms {
        let pkgs = os_packages(&s.statement["predicate"]);
        count += pkgs.len();
        for (name, version) in &pkgs {
            for rule in rules.iter().filter(|rule| &rule.name == name) {
                let parsed = version.as_deref().map(crate::policy::Version::parse);
                let hit = match parsed {
                    Some(Ok(v)) => rule.versions.contains(&v),
                    // A version that cannot be compared is denied unless every version is.
                    _ => true,
                };
                if hit {
                    hits.push(format!(
                        "{name} {} (denied: {})",
                        version.as_deref().unwrap_or("(no version)"),
                        rule.versions
                    ));
                }
            }
        }
    }
    hits.sort();
    hits.dedup();
    if hits.is_empty() {
        r.pass("packages", format!("{count} OS packages, none denied"));
    } else {
        r.fail("packages", format!("denied package present: {}", hits.join(", ")));
    }
}

fn check_threshold(
    policy: &Policy,
    statements: &[&SignedStatement],
    trusted: &[TrustedKey],
    r: &mut Report,
) -> bool {
    let signed: BTreeSet<&String> = statements.iter().flat_map(|s| s.signers.iter()).collect();
    match &policy.require.signatures {
        None => {
            let names: Vec<&str> = trusted
                .iter()
                .filter(|k| signed.contains(&k.id))
                .map(|k| k.name.as_str())
                .collect();
            if names.is_empty() {
                r.fail(
                    "threshold",
                    "no usable trusted key signed the statements naming the artifacts",
                );
                return false;
            }
            r.pass("threshold", format!("signed by {} (1 required)", names.join(", ")));
            true
        }
        Some(rule) => {
            let mut have = Vec::new();
            let mut notes = Vec::new();
            for n in &rule.keys {
                let Some(k) = trusted.iter().find(|k| &k.name == n) else {
                    notes.push(format!("{n}: unknown key"));
                    continue;
                };
                if let Some(why) = &k.unusable {
                    notes.push(why.clone());
                } else if signed.contains(&k.id) {
                    have.push(n.as_str());
                } else {
                    notes.push(format!("{n}: no valid signature"));
                }
            }
            let detail = format!(
                "{} of {} required keys signed the provenance over these subjects (signed: {}{}{})",
                have.len(),
                rule.threshold,
                if have.is_empty() { "none".into() } else { have.join(", ") },
                if notes.is_empty() { "" } else { "; " },
                notes.join("; ")
            );
            if have.len() >= rule.threshold {
                r.pass("threshold", detail);
                true
            } else {
                r.fail("threshold", detail);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
