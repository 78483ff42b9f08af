//! `cairn build`: assemble a spec from pinned inputs and write the outputs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::attest::DEFAULT_BUILDER_ID;
use crate::build::{self, BuildOptions, CacheUse, Format, LoadedSpec, VerifiedBootOptions};
use crate::emit::{self, Codec};
use crate::lock::LockMode;
use crate::output_name::OutputName;

use super::GlobalArgs;

/// Build an image from a spec, using only pinned inputs; never touches the network.
///
/// Every image must be pinned by the lock (SPEC.lock) or by an @sha256: reference in the
/// spec. Output names follow LinuxKit: NAME.tar, NAME-kernel, NAME-initrd.img,
/// NAME-cmdline, NAME.oci/. Several formats share one assembly. Outputs appear only
/// when the whole build succeeded. All timestamps are clamped to SOURCE_DATE_EPOCH, else
/// the spec's x-cairn.source-date-epoch, else the value the lock recorded.
///
/// Formats: tar, kernel+initrd (gzip initrd), kernel+initrd:zstd, oci.
///
/// A build whose spec, lock, inputs, formats and source date are unchanged since an
/// earlier build on the same store reuses that build's outputs from the store (each file
/// re-hashed before it is published; signatures made afresh); --no-cache builds anew.
///
/// Examples:
///   cairn build examples/hello.yml --format tar --format kernel+initrd -o out/
///   cairn build examples/hello.yml --locked --format oci -o out/
///   SOURCE_DATE_EPOCH=1700000000 cairn build hello.yml --name hello-2023 -o out/
///   cairn build examples/hello.yml --no-cache -f tar -o out/
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The spec file (LinuxKit YAML).
    pub spec: PathBuf,

    /// Output format; repeat for several. Default: kernel+initrd.
    #[arg(long = "format", short = 'f', value_name = "FORMAT")]
    pub formats: Vec<Format>,

    /// Output directory (created if missing).
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    pub output: PathBuf,

    /// Base name of the outputs. Default: the spec file's name without extension.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Fail (exit 1) if SPEC.lock is missing or does not match the spec.
    #[arg(long)]
    pub locked: bool,

    /// Sign the provenance and SBOM attestations with this private key (PKCS#8 PEM;
    /// CAIRN_KEY_PASSPHRASE decrypts an encrypted one): writes NAME.intoto.jsonl and
    /// NAME.sigstore.json.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// The SLSA builder id recorded in the provenance (who ran this build).
    #[arg(long, value_name = "URI", default_value = DEFAULT_BUILDER_ID)]
    pub builder_id: String,

    /// verified-boot: the policy embedded in the verifier initramfs (YAML; keys given by
    /// `path:` are inlined). Default: a signed provenance by a trusted key.
    #[arg(long, value_name = "FILE")]
    pub boot_policy: Option<PathBuf>,

    /// verified-boot: a public key (SPKI PEM) the verifier trusts; repeatable. Default: the
    /// public key of --sign-key.
    #[arg(long = "boot-key", value_name = "FILE")]
    pub boot_keys: Vec<PathBuf>,

    /// verified-boot: the statically linked cairn binary used as the verifier's /init and
    /// the payload's /sbin/cairn. Default: this cairn (refused unless statically linked).
    #[arg(long, value_name = "FILE")]
    pub verifier_binary: Option<PathBuf>,

    /// Also allow `files[].source` paths under DIR, outside the spec's directory
    /// (repeatable). Without it a spec reads only files under its own directory.
    #[arg(long, value_name = "DIR")]
    pub allow_source_outside: Vec<PathBuf>,

    /// Refuse layers that unpack to more than this many bytes in total.
    #[arg(long, value_name = "BYTES", default_value_t = crate::assemble::DEFAULT_MAX_UNPACKED_SIZE)]
    pub max_unpacked_size: u64,

    /// Refuse a compressed layer that unpacks to more than this many times its size
    /// (past 64 MiB).
    #[arg(long, value_name = "RATIO", default_value_t = crate::assemble::DEFAULT_MAX_EXPANSION_RATIO)]
    pub max_expansion_ratio: u64,

    /// Build in full even when the store holds the outputs of an identical earlier build
    /// (and do not file this build's outputs there).
    #[arg(long, env = "CAIRN_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = LoadedSpec::read(&args.spec)?;
    let name = match &args.name {
        Some(n) => n.as_str(),
        None => loaded
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("choosing an output name: the spec file name is not UTF-8; pass --name")?,
    };
    let name = OutputName::parse(name).map_err(|e| {
        anyhow::anyhow!("invalid output name {:?}: it must be a plain file name", e.0)
    })?;
    let formats = if args.formats.is_empty() {
        vec![Format::Image(emit::Format::KernelInitrd(Codec::Gzip))]
    } else {
        args.formats
    };
    let env_source_date = super::env_source_date()?;
    // A bad key or passphrase should fail before minutes of work, not after.
    let sign_key = args.sign_key.as_deref().map(super::load_signing_key).transpose()?;
    let lock = loaded.read_lock()?;
    let store = global.open_store()?;
    let opts = BuildOptions {
        name,
        formats,
        output_dir: args.output,
        lock_mode: if args.locked { LockMode::Locked } else { LockMode::PinnedOnly },
        env_source_date,
        sign_key: sign_key.as_ref(),
        builder_id: args.builder_id,
        allow_source_outside: args.allow_source_outside,
        max_unpacked_size: args.max_unpacked_size,
        max_expansion_ratio: args.max_expansion_ratio,
        use_cache: !args.no_cache,
        verified_boot: VerifiedBootOptions {
            policy: args.boot_policy,
            keys: args.boot_keys,
            verifier_binary: args.verifier_binary,
        },
    };
    let spinner = super::spinner::Spinner::new(global.quiet);
    let built = build::build(&loaded, lock.as_ref(), &store, &opts, &spinner);
    spinner.finish();
    let built = built?;
    if !global.quiet {
        for o in &built.outputs {
            super::outln!("{}  {}", o.digest, opts.output_dir.join(&o.rel_path).display())?;
        }
        if let CacheUse::Reused(key) = built.cache {
            eprintln!("cairn: reused the outputs of an identical earlier build (cache key {key})");
        }
    }
    Ok(ExitCode::SUCCESS)
}
