//! `cairn verify`: check artifacts against their signed attestations and a policy.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::diag::Rejection;
use crate::policy::{self, Policy, Timestamp};
use crate::reference::ImageRef;
use crate::registry::{Progress, RegistryError};
use crate::sign::keys::PublicKey;
use crate::store::Store;
use crate::verify::{self, Request, Target};

use super::GlobalArgs;
use super::pull::RegistryArgs;

/// Verify artifacts against their signed attestations and a policy.
///
/// ARTIFACT is a build's output directory (it must hold exactly the signed subjects plus
/// cairn's attestation files) or one or more single artifact files (each must be a subject;
/// the others need not be present). Attestations are every *.intoto.jsonl and
/// *.sigstore.json in the directory (beside the files when none are given), plus
/// --attestations and --bundle.
///
/// ARTIFACT may instead be one registry reference pinned by digest (REF@sha256:…; an
/// argument that names an existing path is always a path). The image is fetched as an OCI
/// layout NAME.oci, NAME being the one its attached attestations name, together with the
/// attestations attached to that digest (through the referrers API, else the
/// `sha256-<hex>` tag schema), into a temporary directory, and checked as that layout
/// would be on disk. A reference without a digest is refused (exit 2): a tag can be moved
/// to another image between verification and deployment, so verify what you deploy, by
/// digest (`cairn push` prints it). Content the registry sends that does not match its
/// digest is a rejection (exit 1), as is an image with no attestations attached.
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
///   cairn verify registry.example/team/hello@sha256:… --key release.pub --policy prod.yaml
///
/// Exit status: 0 verified, 1 rejected (a check failed), 2 bad usage or input (unreadable
/// or malformed policy, missing key file, no such artifact).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory, artifact files, or one registry reference REF@sha256:….
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
    #[arg(long, value_name = "FILE")]
    pub attestations: Vec<PathBuf>,

    /// Directory of upstream component signatures for the policy's `upstream:` rules: one
    /// Sigstore bundle per component, named sha256-<hex of its pinned digest>.sigstore.json.
    #[arg(long, value_name = "DIR")]
    pub upstream_bundles: Option<PathBuf>,

    /// Verification time (RFC 3339) for key validity windows. Default: now.
    #[arg(long, value_name = "TIME", value_parser = Timestamp::parse)]
    pub at: Option<Timestamp>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// When the only ARTIFACT names no existing path: the registry reference it is.
fn as_reference(artifacts: &[PathBuf]) -> Option<&str> {
    match artifacts {
        [one] if std::fs::symlink_metadata(one).is_err() => one.to_str(),
        _ => None,
    }
}

/// Fetches the image `arg` names and its attached attestations into `work`; returns the
/// layout (`work/NAME.oci`, the attestation files beside it).
fn fetch_remote(
    arg: &str,
    work: &std::path::Path,
    registry: &RegistryArgs,
    global: &GlobalArgs,
) -> anyhow::Result<PathBuf> {
    let reference = ImageRef::parse(arg).with_context(|| {
        format!("{arg}: no such file or directory, and not a registry reference")
    })?;
    let Some(digest) = reference.digest().copied() else {
        anyhow::bail!(
            "{arg}: no such file or directory, and as a registry reference it has no digest\n\nverify checks an image by digest, never by tag (a tag can move): give {}@sha256:<digest> (`cairn push` prints it)",
            reference.without_digest()
        );
    };
    let options = registry.options()?;
    let progress = Progress::for_stderr(global.quiet);
    // A registry that sends bytes not matching their digest is refused as a verdict.
    let verdict = |e: RegistryError| -> anyhow::Error {
        match e {
            e @ RegistryError::Verification { .. } => {
                Rejection::new(format!("verification failed: {e}")).into()
            }
            e => anyhow::Error::new(e).context(format!("fetching {reference}")),
        }
    };
    let attestations = work.join("image");
    let files = crate::registry::fetch_referrers(&reference, &digest, &attestations, &options)
        .map_err(verdict)?;
    // The layout is named as the build named it, which the provenance subject records.
    let mut names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str())
        .filter_map(|n| n.strip_suffix(".intoto.jsonl").or(n.strip_suffix(".sigstore.json")))
        .map(str::to_string)
        .collect();
    names.dedup();
    let name = match names.as_slice() {
        [one] => one.clone(),
        _ => "image".to_string(),
    };
    let store = Store::open(&work.join("store"))?;
    let layout = attestations.join(format!("{name}.oci"));
    crate::registry::pull_layout(&reference, &store, &layout, &options, &progress)
        .map_err(verdict)?;
    Ok(layout)
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let at = match args.at {
        Some(at) => at,
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
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    let remote = match as_reference(&args.artifacts) {
        Some(arg) => Some(fetch_remote(arg, work.path(), &args.registry, global)?),
        None => None,
    };
    let target = match args.artifacts.as_slice() {
        _ if remote.is_some() => Target::Files(remote.into_iter().collect()),
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
    let written = if args.json {
        stdout.write_all(&outcome.report.to_json())
    } else {
        outcome.report.write_human(&mut stdout)
    }
    .and_then(|()| stdout.flush());
    // The verdict before any write error: a closed stdout exits 0 quietly (see
    // `super::exit_status`), which must never turn a rejection into a success.
    match outcome.verdict {
        Ok(_verified) => written.map(|()| ExitCode::SUCCESS).map_err(Into::into),
        Err(rejected) => {
            Err(Rejection::new(format!("verification failed: {}", rejected.reason)).into())
        }
    }
}
