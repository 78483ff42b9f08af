//! `cairn verify`: check artifacts against their signed attestations and a policy.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::diag::Rejection;
use crate::policy::{self, Policy, Timestamp};
use crate::sign::keys::PublicKey;
use crate::verify::{self, Request, Target};

use super::GlobalArgs;

/// Verify artifacts against their signed attestations and a policy.
///
/// ARTIFACT is a build's output directory (it must hold exactly the signed subjects plus
/// cairn's attestation files) or one or more single artifact files (each must be a subject;
/// the others need not be present). Attestations are every *.intoto.jsonl and
/// *.sigstore.json in the directory (beside the files when none are given), plus
/// --attestations and --bundle.
///
/// Every check is listed with its result; scripts should read --json (schema:
/// attestations/verify-report.schema.json), not the human output. Without --policy the
/// built-in default applies: a signed SLSA provenance by a trusted key (--key).
///
/// Key validity windows in the policy are checked against --at, or else against the
/// system clock: this is the only place cairn reads the clock.
///
/// Examples:
///   cairn verify out/ --key release.pub --policy policies/production.yaml
///   cairn verify out/hello-initrd.img --bundle out/hello.sigstore.json --key release.pub --json
///   cairn verify out/ --key release.pub --attestations rebuilder.intoto.jsonl
///
/// Exit status: 0 verified, 1 rejected (a check failed), 2 bad usage or input (unreadable
/// or malformed policy, missing key file, no such artifact).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory, or artifact files.
    #[arg(required = true, value_name = "ARTIFACT")]
    pub artifacts: Vec<PathBuf>,

    /// Trusted public key (SPKI PEM); repeatable. Added to the policy's keys.
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,

    /// Policy file (YAML, see policies/README.md). Default: the built-in default policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Sigstore bundle file (one bundle or a JSON array of them); repeatable.
    #[arg(long = "bundle", value_name = "FILE")]
    pub bundles: Vec<PathBuf>,

    /// Extra DSSE envelopes (.intoto.jsonl), e.g. from independent rebuilders; repeatable.
    #[arg(long = "attestations", value_name = "FILE")]
    pub attestations: Vec<PathBuf>,

    /// Directory of upstream component signatures for the policy's `upstream:` rules: one
    /// Sigstore bundle per component, named sha256-<hex of its pinned digest>.sigstore.json.
    #[arg(long, value_name = "DIR")]
    pub upstream_bundles: Option<PathBuf>,

    /// Verification time (RFC 3339) for key validity windows. Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let at = match &args.at {
        Some(s) => Timestamp::parse(s).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("reading the system clock: it is before 1970")?
                .as_secs();
            Timestamp::from_secs(secs)
        }
    };
    let policy = match &args.policy {
        Some(p) => policy::load(p)?,
        None => Policy::builtin_default(),
    };
    let mut keys = Vec::new();
    for k in &args.keys {
        let key = PublicKey::read_pem_file(k)
            .with_context(|| format!("reading public key {}", k.display()))?;
        keys.push((k.display().to_string(), key));
    }
    let target = match args.artifacts.as_slice() {
        [one] if one.is_dir() => Target::Dir(one.clone()),
        many => {
            if let Some(d) = many.iter().find(|p| p.is_dir()) {
                anyhow::bail!(
                    "{}: a directory can only be verified on its own (give it as the only ARTIFACT)",
                    d.display()
                );
            }
            Target::Files(many.to_vec())
        }
    };
    let req = Request {
        target,
        attestations: args.attestations,
        bundles: args.bundles,
        upstream_bundles: args.upstream_bundles,
        keys,
        policy,
        at,
    };
    let outcome = verify::verify(&req).context("verifying")?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        stdout.write_all(&outcome.report.to_json())?;
    } else {
        outcome.report.write_human(&mut stdout)?;
    }
    stdout.flush()?;
    match outcome.verdict {
        Ok(_verified) => Ok(ExitCode::SUCCESS),
        Err(rejected) => {
            Err(Rejection::new(format!("verification failed: {}", rejected.reason)).into())
        }
    }
}
