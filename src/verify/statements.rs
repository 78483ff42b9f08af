//! Reading attestations: finding the attestation files, checking each envelope's signatures
//! one by one, and parsing its statement with the attest types (see SECURITY.md, "What
//! verify reads: unknown fields"). What comes out is the statements that verified, each with
//! its typed predicate and subjects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::artifact::{self, ArtifactError, Links};
use super::{MAX_ATTESTATION_FILE, Report, Request, Target, TrustedKey, VerifyError};
use crate::attest::intoto::{self, Statement};
use crate::attest::sbom::spdx;
use crate::attest::slsa::{self, Provenance};
use crate::attest::{SPDX_PREDICATE_TYPE, STATEMENT_TYPE};
use crate::digest::Digest;
use crate::sign::bundle::{self, Bundle, BundleError};
use crate::sign::dsse::{self, DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE};

/// The predicate of a signed statement, typed by its predicate type.
pub(super) enum Predicate {
    Provenance(Box<Provenance>),
    Sbom(Box<spdx::Document>),
}

/// A statement whose envelope verified.
pub(super) struct SignedStatement {
    pub(super) labels: Vec<String>,
    pub(super) predicate: Predicate,
    /// The statement's canonical payload bytes (for merging duplicates).
    pub(super) payload: Vec<u8>,
    /// The statement as JSON, every field kept: unsigned copies must equal it exactly.
    pub(super) json: Value,
    pub(super) subjects: Vec<(String, Digest)>,
    /// Ids of usable trusted keys whose signatures verified.
    pub(super) signers: BTreeSet<String>,
}

impl SignedStatement {
    pub(super) fn provenance(&self) -> Option<&Provenance> {
        match &self.predicate {
            Predicate::Provenance(p) => Some(p),
            Predicate::Sbom(_) => None,
        }
    }

    pub(super) fn sbom(&self) -> Option<&spdx::Document> {
        match &self.predicate {
            Predicate::Sbom(d) => Some(d),
            Predicate::Provenance(_) => None,
        }
    }
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
pub(super) enum Source {
    Jsonl(PathBuf),
    Bundles(PathBuf),
}

pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>, VerifyError> {
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

pub(super) fn sources(req: &Request) -> Result<Vec<Source>, VerifyError> {
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

/// Why an attestation file could not be read; the message is a failed check's detail.
#[derive(Debug, thiserror::Error)]
pub(super) enum FileError {
    #[error(transparent)]
    Read(#[from] ArtifactError),
    #[error(transparent)]
    Dsse(#[from] DsseError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// An attestation file (a symbolic link to one is followed: these are not subjects).
pub(super) fn read_attestation_file(path: &Path) -> Result<Vec<u8>, FileError> {
    Ok(artifact::read_bounded(path, MAX_ATTESTATION_FILE, Links::Follow)?)
}

/// The envelopes of a `.intoto.jsonl` file.
fn read_jsonl(path: &Path) -> Result<Vec<Envelope>, FileError> {
    Ok(dsse::parse_jsonl(&read_attestation_file(path)?)?)
}

/// The bundles of a `.sigstore.json` file: a JSON array of bundles, or one bundle.
fn read_bundles(path: &Path) -> Result<Vec<Bundle>, FileError> {
    let b = read_attestation_file(path)?;
    if b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[') {
        Ok(bundle::parse_collection(&b)?)
    } else {
        Ok(vec![Bundle::from_json(&b)?])
    }
}

pub(super) fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Checks one envelope: signatures, payload type, statement shape and predicate type.
pub(super) fn check_envelope(
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
    // The statement as JSON (kept whole for the unsigned copies), then typed from it.
    let parsed = serde_json::from_slice::<Value>(envelope.payload())
        .and_then(|json| Ok((Statement::<Value>::deserialize(&json)?, json)));
    let (statement, json) = match parsed {
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
    let parsed = match statement.predicate_type.as_str() {
        slsa::PREDICATE_TYPE => Provenance::deserialize(&statement.predicate)
            .map(|p| Predicate::Provenance(Box::new(p)))
            .map_err(|e| format!("the predicate is not a SLSA Provenance v1: {e}")),
        SPDX_PREDICATE_TYPE => spdx::Document::deserialize(&statement.predicate)
            .map(|d| Predicate::Sbom(Box::new(d)))
            .map_err(|e| format!("the predicate is not an SPDX 2.3 document: {e}")),
        other => {
            r.fail(
                "predicate-type",
                format!(
                    "{label}: unknown predicate type {other:?} (cairn accepts {} and {SPDX_PREDICATE_TYPE})",
                    slsa::PREDICATE_TYPE
                ),
            );
            return None;
        }
    };
    let predicate = match parsed {
        Ok(p) => p,
        Err(e) => {
            r.fail("statement", format!("{label}: {e}"));
            return None;
        }
    };
    let subjects = match intoto::subjects(&statement.subject) {
        Ok(s) => s,
        Err(e) => {
            r.fail("subjects", format!("{label}: {e}"));
            return None;
        }
    };
    Some(SignedStatement {
        labels: vec![label.to_owned()],
        predicate,
        payload: envelope.payload().to_vec(),
        json,
        subjects,
        signers: sigs.verified,
    })
}

/// Reads and checks every attestation source; returns the accepted statements, duplicates
/// (the same payload in several files) merged.
pub(super) fn read_statements(
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
        // Each envelope with its bundle's key hint (JSON Lines envelopes have none).
        let (path, what, read) = match source {
            Source::Jsonl(p) => (
                p,
                ("envelopes", "DSSE envelopes"),
                read_jsonl(p).map(|envs| envs.into_iter().map(|e| (None, e)).collect::<Vec<_>>()),
            ),
            Source::Bundles(p) => (
                p,
                ("bundles", "Sigstore bundles"),
                read_bundles(p).map(|bs| {
                    bs.into_iter()
                        .map(|b| (Some(b.hint().to_owned()), b.envelope().clone()))
                        .collect()
                }),
            ),
        };
        let name = file_label(path);
        let envelopes = match read {
            Err(e) => {
                r.fail("attestations", format!("{name}: {e}"));
                continue;
            }
            Ok(envs) if envs.is_empty() => {
                r.fail("attestations", format!("{name}: holds no {}", what.0));
                continue;
            }
            Ok(envs) => envs,
        };
        r.pass("attestations", format!("{name}: {} {}", envelopes.len(), what.1));
        for (i, (hint, env)) in envelopes.iter().enumerate() {
            let label = format!("{name}#{}", i + 1);
            if let Some(hint) = hint.as_deref().filter(|h| !trusted.iter().any(|k| k.id == *h)) {
                r.fail(
                    "signature",
                    format!("{label}: the bundle's key hint {hint} names no trusted key"),
                );
                continue;
            }
            if let Some(s) = check_envelope(&label, env, trusted, r) {
                push(s, &mut out);
            }
        }
    }
    out
}
