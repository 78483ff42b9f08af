//! `cairn sigstore`: Sigstore bundles from upstream, checked offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::diag::Rejection;
use crate::sigstore::{self, TrustAnchor};

/// Work with Sigstore bundles signed upstream.
///
/// Examples:
///   cairn sigstore verify-bundle --bundle a.sigstore.json --key upstream.pub a.tar
///   cairn sigstore verify-bundle --bundle a.sigstore.json \
///     --certificate-identity https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1 \
///     --certificate-oidc-issuer https://token.actions.githubusercontent.com \
///     --trusted-root trusted_root.json sha256:<hex>
#[derive(Debug, clap::Subcommand)]
#[command(verbatim_doc_comment)]
pub enum SigstoreCommand {
    VerifyBundle(VerifyBundleArgs),
}

/// Verify a Sigstore bundle over an artifact (Sigstore conformance CLI protocol).
///
/// Exit 0 when the bundle verifies, 1 when it does not, 2 on bad usage or unreadable input;
/// the reason goes to stderr. Nothing is fetched: keyless verification needs
/// --trusted-root (a sigstore TrustedRoot JSON). With --key, a bundle without log entries
/// or timestamps is checked on its signature alone; with --trusted-root too, its log
/// entries and timestamps must verify against that root.
///
/// FILE_OR_DIGEST is a path, or `sha256:<64 hex>` when no such path exists.
///
/// Examples:
///   cairn sigstore verify-bundle --bundle a.sigstore.json --key upstream.pub a.tar
///   cairn sigstore verify-bundle --bundle a.sigstore.json --certificate-identity me@example.com \
///     --certificate-oidc-issuer https://accounts.example.com --trusted-root root.json a.tar
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyBundleArgs {
    /// Use the Sigstore staging instance (needs --trusted-root here: nothing is fetched).
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
    let trusted_root = match &args.trusted_root {
        Some(p) => Some(read(p, "trusted root")?),
        None => None,
    };
    let anchor = match (&args.key, args.certificate_identity, args.certificate_oidc_issuer) {
        (Some(key), None, None) => TrustAnchor::PublicKey {
            pem: read(key, "public key")?,
            trusted_root_json: trusted_root,
        },
        (None, Some(identity), Some(issuer)) => {
            let Some(trusted_root_json) = trusted_root else {
                let instance = if args.staging { "staging" } else { "public-good" };
                anyhow::bail!(
                    "keyless verification needs --trusted-root FILE: cairn does not fetch the Sigstore {instance} trusted root (no network at verify time)"
                );
            };
            TrustAnchor::Keyless { identity, issuer, trusted_root_json }
        }
        _ => anyhow::bail!(
            "give either --key, or both --certificate-identity and --certificate-oidc-issuer"
        ),
    };
    let bundle = read(&args.bundle, "bundle")?;
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
