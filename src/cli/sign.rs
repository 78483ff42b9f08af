//! `cairn sign`: sign the attestations of outputs that already exist.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::attest::intoto::{self, ResourceDescriptor, Statement};
use crate::attest::{STATEMENT_TYPE, sbom_statement_for};
use crate::diag::Rejection;
use crate::digest::Digest;
use crate::sign::attestations::sign_statements;

use super::GlobalArgs;

/// Sign the attestations of an unsigned build in DIR.
///
/// For keys held on another host: run `cairn build` without --sign-key, move the output
/// directory to the signing host, and sign there. Every subject of NAME.provenance.json is
/// re-hashed first; cairn refuses (exit 1) to sign outputs that do not match it. Writes
/// NAME.intoto.jsonl and NAME.sigstore.json, byte-identical to what `build --sign-key`
/// writes with the same key.
///
/// Examples:
///   cairn sign out/ --key release.key
///   CAIRN_KEY_PASSPHRASE=... cairn sign out/ --key release.key --name hello
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The output directory of a build.
    pub dir: PathBuf,

    /// Private key (PKCS#8 PEM); CAIRN_KEY_PASSPHRASE decrypts an encrypted one.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// Base name of the outputs. Default: the only NAME.provenance.json in DIR.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let key = super::load_signing_key(&args.key)?;
    let name = match args.name {
        Some(n) => n,
        None => only_provenance_name(&args.dir)?,
    };
    let provenance_path = args.dir.join(format!("{name}.provenance.json"));
    let provenance = read_json(&provenance_path)?;
    // Signed as read (`provenance`); parsed only for its type and subjects.
    let statement: Statement<Value> = serde_json::from_value(provenance.clone())
        .ok()
        .filter(|s: &Statement<Value>| s.type_ == STATEMENT_TYPE)
        .with_context(|| {
            format!("reading {}: not an in-toto Statement v1", provenance_path.display())
        })?;
    check_subjects(&args.dir, &statement.subject)?;
    let spdx = read_json(&args.dir.join(format!("{name}.spdx.json")))?;
    let sbom = sbom_statement_for(statement.subject, spdx);
    let signed = sign_statements(&provenance, &sbom, &key)
        .with_context(|| format!("signing {}", provenance_path.display()))?;
    // Both files as one set: never a new envelope beside an old bundle.
    let files = [
        (format!("{name}.intoto.jsonl"), &signed.intoto_jsonl[..]),
        (format!("{name}.sigstore.json"), &signed.sigstore_json[..]),
    ];
    crate::build::publish_files(&args.dir, &files)
        .with_context(|| format!("writing the signatures into {}", args.dir.display()))?;
    if !global.quiet {
        for (file, bytes) in &files {
            super::outln!("{}  {}", Digest::of(bytes), args.dir.join(file).display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("reading {}: not JSON", path.display()))
}

fn only_provenance_name(dir: &Path) -> anyhow::Result<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(n) = entry.file_name().to_str().and_then(|f| f.strip_suffix(".provenance.json"))
        {
            names.push(n.to_string());
        }
    }
    names.sort();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("{}: no NAME.provenance.json to sign", dir.display()),
        _ => anyhow::bail!(
            "{}: several builds ({}); choose one with --name",
            dir.display(),
            names.join(", ")
        ),
    }
}

/// Re-hashes every subject: a file's sha256, or for an OCI layout directory the digest of
/// the manifest its index.json names (checked against the blob itself). A subject that
/// does not match is a refusal (exit 1), not an error.
fn check_subjects(dir: &Path, subjects: &[ResourceDescriptor]) -> Result<(), Rejection> {
    let refuse =
        |reason: String| Rejection::new(format!("refusing to sign {}: {reason}", dir.display()));
    for (name, want) in intoto::subjects(subjects).map_err(|e| refuse(e.to_string()))? {
        let have = crate::verify::subject_digest(&dir.join(&name))
            .map_err(|e| refuse(format!("{name}: {e}")))?;
        if have != want {
            return Err(refuse(format!("{name} is {have}, but the provenance says {want}")));
        }
    }
    Ok(())
}
