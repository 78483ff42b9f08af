//! `cairn sigstore`: Sigstore bundles from upstream, checked offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::diag::Rejection;
use crate::sigstore::trust::{self, Instance, SelectedRoot};
use crate::sigstore::tuf::{self, TufSource};
use crate::sigstore::{self, TrustAnchor};

/// Work with Sigstore bundles signed upstream.
///
/// Keyless verification uses --trusted-root FILE when given, else the trusted root last
/// refreshed by `cairn sigstore update-trust-root`, else the Sigstore public-good (or
/// --staging) trusted root snapshot built into cairn.
///
/// Examples:
///   cairn sigstore verify-bundle --bundle a.sigstore.json --key upstream.pub a.tar
///   cairn sigstore verify-bundle --bundle a.sigstore.json \
///     --certificate-identity https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1 \
///     --certificate-oidc-issuer https://token.actions.githubusercontent.com sha256:<hex>
///   cairn sigstore update-trust-root
#[derive(Debug, clap::Subcommand)]
#[command(verbatim_doc_comment)]
pub enum SigstoreCommand {
    VerifyBundle(VerifyBundleArgs),
    UpdateTrustRoot(UpdateTrustRootArgs),
}

/// Refresh the Sigstore trusted root through TUF (needs the network).
///
/// Trust starts from the TUF root.json built into cairn; the repository's signed metadata
/// (root chain, timestamp, snapshot, targets) is verified before its trusted_root.json is
/// downloaded and checked against the sha256 the metadata pins. The result goes to
/// <cache dir>/cairn/sigstore/<public-good|staging>/trusted_root.json (cache dir:
/// $XDG_CACHE_HOME, else ~/.cache), which keyless verification then prefers over the
/// built-in snapshot. Nothing is written when any check fails.
///
/// Examples:
///   cairn sigstore update-trust-root
///   cairn sigstore update-trust-root --staging
///   cairn sigstore update-trust-root --tuf-url https://tuf.mirror.example --tuf-root root.json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct UpdateTrustRootArgs {
    /// Refresh the staging instance's root (from https://tuf-repo-cdn.sigstage.dev).
    #[arg(long)]
    pub staging: bool,

    /// Another TUF repository (a mirror) to refresh from. Default: the instance's own,
    /// https://tuf-repo-cdn.sigstore.dev for public-good.
    #[arg(long, value_name = "URL")]
    pub tuf_url: Option<String>,

    /// The TUF root.json to start trusting that repository from (default: the one built in).
    #[arg(long, value_name = "FILE", requires = "tuf_url")]
    pub tuf_root: Option<PathBuf>,
}

/// Verify a Sigstore bundle over an artifact (Sigstore conformance CLI protocol).
///
/// Exit 0 when the bundle verifies, 1 when it does not, 2 on bad usage or unreadable input;
/// the reason goes to stderr. Nothing is fetched. Keyless verification checks the bundle
/// against --trusted-root (a sigstore TrustedRoot JSON) when given, else the copy
/// `cairn sigstore update-trust-root` refreshed, else the built-in snapshot of the
/// public-good (or --staging) instance; stderr names the root used and its age, with a
/// warning past 180 days. With --key, a bundle without log entries or timestamps is
/// checked on its signature alone; log entries and timestamps must verify against the
/// trusted root, chosen the same way.
///
/// FILE_OR_DIGEST is a path, or `sha256:<64 hex>` when no such path exists.
///
/// Examples:
///   cairn sigstore verify-bundle --bundle a.sigstore.json --key upstream.pub a.tar
///   cairn sigstore verify-bundle --bundle a.sigstore.json --certificate-identity me@example.com \
///     --certificate-oidc-issuer https://accounts.example.com a.tar
///   cairn sigstore verify-bundle --bundle a.sigstore.json --certificate-identity me@example.com \
///     --certificate-oidc-issuer https://accounts.example.com --trusted-root root.json a.tar
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyBundleArgs {
    /// Use the Sigstore staging instance's trusted root (when no --trusted-root is given).
    #[arg(long)]
    pub staging: bool,

    /// The Sigstore bundle (JSON).
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,

    /// PEM public key the bundle must be signed with.
    #[arg(long, value_name = "PEM_FILE", conflicts_with_all = ["certificate_identity", "certificate_oidc_issuer"], required_unless_present = "certificate_identity")]
    pub key: Option<PathBuf>,

    /// Exact identity (SAN email or URI) of the signing certificate.
    #[arg(long, value_name = "IDENTITY", requires = "certificate_oidc_issuer")]
    pub certificate_identity: Option<String>,

    /// Exact OIDC issuer of the signing certificate.
    #[arg(long, value_name = "URL", requires = "certificate_identity")]
    pub certificate_oidc_issuer: Option<String>,

    /// Trusted root JSON (CAs, transparency logs, CT logs, timestamp authorities).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,

    /// The artifact: a file path or sha256:<hex>.
    #[arg(value_name = "FILE_OR_DIGEST")]
    pub artifact: String,
}

pub fn run(cmd: SigstoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SigstoreCommand::VerifyBundle(args) => verify_bundle(args),
        SigstoreCommand::UpdateTrustRoot(args) => update_trust_root(args),
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading {what} {}", path.display()))?;
    if meta.len() > sigstore::MAX_JSON_BYTES as u64 {
        anyhow::bail!(
            "reading {what} {}: larger than {} bytes",
            path.display(),
            sigstore::MAX_JSON_BYTES
        );
    }
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

fn verify_bundle(args: VerifyBundleArgs) -> anyhow::Result<ExitCode> {
    let bundle = read(&args.bundle, "bundle")?;
    let instance = Instance::from_staging(args.staging);
    let mut root_used: Option<SelectedRoot> = None;
    let anchor = match (&args.key, args.certificate_identity, args.certificate_oidc_issuer) {
        (Some(key), None, None) => {
            let pem = read(key, "public key")?;
            // A key needs no trusted root, but log entries and timestamps are checked
            // against one: the named file, else the instance's default.
            if args.trusted_root.is_some() || sigstore::has_log_or_timestamp(&bundle) {
                root_used = Some(trust::select(instance, args.trusted_root.as_deref())?);
            }
            let trusted_root_json = root_used.as_ref().map(|r| r.json.clone());
            TrustAnchor::PublicKey { pem, trusted_root_json }
        }
        (None, Some(identity), Some(issuer)) => {
            let root = trust::select(instance, args.trusted_root.as_deref())?;
            let trusted_root_json = root.json.clone();
            root_used = Some(root);
            TrustAnchor::Keyless { identity, issuer, trusted_root_json }
        }
        _ => anyhow::bail!(
            "give either --key, or both --certificate-identity and --certificate-oidc-issuer"
        ),
    };
    if let Some(root) = &root_used {
        let now = jiff::Timestamp::now();
        eprintln!("cairn: using the {}", root.describe(now));
        if let Some(w) = root.staleness_warning(now) {
            eprintln!("cairn: warning: {w}");
        }
    }
    let artifact = sigstore::artifact_arg(&args.artifact);
    match sigstore::verify_bundle(&bundle, artifact.as_artifact(), &anchor) {
        Ok(verified) => {
            eprintln!("cairn: verified {} for {}", args.bundle.display(), verified.artifact());
            Ok(ExitCode::SUCCESS)
        }
        // The message is the bundle and the error alone, whether it is a verdict or not.
        Err(e) if e.is_input_error() => anyhow::bail!("{}: {}", args.bundle.display(), e),
        Err(e) => Err(Rejection::new(format!("{}: {}", args.bundle.display(), e)).into()),
    }
}

fn update_trust_root(args: UpdateTrustRootArgs) -> anyhow::Result<ExitCode> {
    let instance = Instance::from_staging(args.staging);
    let mut source = TufSource::of(instance);
    if let Some(url) = args.tuf_url {
        source.url = url;
    }
    if let Some(p) = &args.tuf_root {
        source.root = read(p, "TUF root")?;
    }
    let cache_dir = trust::user_cache_dir()
        .context("no cache directory is known for this user (set XDG_CACHE_HOME or HOME)")?;
    let done = tuf::update_trust_root(instance, &source, &cache_dir)?;
    eprintln!(
        "cairn: refreshed the {} trusted root through TUF from {} (TUF root version {}): {} ({})",
        instance.name(),
        source.url,
        done.tuf_root_version,
        done.path.display(),
        done.sha256
    );
    Ok(ExitCode::SUCCESS)
}
