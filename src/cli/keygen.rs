//! `cairn keygen`: make a signing key pair.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::sign::keys::{Algorithm, keypair_paths, write_keypair};

use super::GlobalArgs;

/// Generate a signing key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM).
///
/// If CAIRN_KEY_PASSPHRASE is set, the private key is encrypted with it (scrypt +
/// AES-256-CBC); passphrases are never taken from the command line. Existing files are
/// never overwritten. The key id printed is base64(sha256(SPKI DER)), the hint Sigstore
/// bundles carry.
///
/// Examples:
///   cairn keygen --out release
///   cairn keygen --out fleet --alg ecdsa-p256
///   CAIRN_KEY_PASSPHRASE="$(pass show cairn)" cairn keygen --out release
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Path prefix of the two files (PREFIX.key, PREFIX.pub).
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,

    /// Key algorithm: ed25519 or ecdsa-p256 (ECDSA P-256 with SHA-256).
    #[arg(long, value_name = "ALG", default_value = "ed25519")]
    pub alg: Algorithm,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let passphrase = super::key_passphrase()?;
    let (key_path, pub_path) = keypair_paths(&args.out);
    let public = write_keypair(&args.out, args.alg, passphrase.as_deref().map(String::as_str))
        .with_context(|| format!("writing key pair {}", key_path.display()))?;
    if !global.quiet {
        super::outln!("{}", public.key_id())?;
        eprintln!(
            "cairn: wrote {} ({}{}) and {}",
            key_path.display(),
            args.alg,
            if passphrase.is_some() { ", encrypted" } else { "" },
            pub_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
