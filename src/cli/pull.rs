//! `cairn pull`: an image from a registry into the store (the registry options shared by
//! `pull`, `push` and `fetch` live here too).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::reference::ImageRef;
use crate::registry::{Credentials, Options, Progress};

use super::GlobalArgs;

/// Pull an image from an OCI registry into the store.
///
/// REF is normalized as Docker does (`busybox` is docker.io/library/busybox:latest). A tag
/// is resolved to a digest and a multi-platform index to the --platform manifest; only the
/// config and layers the store lacks are transferred, each verified against its digest and
/// size before it is stored. Prints NAME<TAB>DIGEST as `cairn import` does.
///
/// Credentials: $CAIRN_REGISTRY_AUTH (HOST=USER:PASSWORD, comma separated), else the
/// `auths` of $DOCKER_CONFIG/config.json or ~/.docker/config.json.
///
/// Examples:
///   cairn pull busybox:1.36
///   cairn pull 127.0.0.1:5000/team/base:1 --name example/base:1
///   cairn pull registry.example:5000/app@sha256:… --insecure-registry registry.example:5000
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The image reference.
    pub reference: String,

    /// Name (and tag) to record in the store; default: REF without its digest.
    #[arg(long, value_name = "REF")]
    pub name: Option<String>,

    /// The platform to pick from a multi-platform index.
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How to reach registries.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Allow plain HTTP to this registry (HOST:PORT). Loopback addresses always may.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,

    /// Also trust the CA certificates in this PEM file (besides the system's).
    #[arg(long, value_name = "FILE", env = "CAIRN_REGISTRY_CA", hide_env = true)]
    pub registry_ca: Option<PathBuf>,

    /// Parallel transfers.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,

    /// Seconds a registry may stall before the request is retried.
    #[arg(long, value_name = "SECS", default_value_t = 30, hide = true)]
    pub registry_timeout: u64,

    /// Attempts per request.
    #[arg(long, value_name = "N", default_value_t = 4, hide = true)]
    pub registry_attempts: u32,
}

impl RegistryArgs {
    pub fn options(&self) -> anyhow::Result<Options> {
        Ok(Options {
            credentials: Credentials::from_environment().context("reading registry credentials")?,
            insecure: self.insecure_registry.clone(),
            ca_file: self.registry_ca.clone(),
            jobs: self.jobs.max(1),
            attempts: self.registry_attempts.max(1),
            timeout: Duration::from_secs(self.registry_timeout.max(1)),
            ..Options::default()
        })
    }
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let reference = ImageRef::parse(&args.reference)?;
    let name = args.name.as_deref().map(ImageRef::parse).transpose().context("parsing --name")?;
    let options = args.registry.options()?;
    let store = global.open_store()?;
    let progress = Progress::for_stderr(global.quiet);
    let pulled = crate::registry::pull(
        &store,
        &reference,
        name.as_ref(),
        &args.platform,
        &options,
        &progress,
    )
    .with_context(|| format!("pulling {reference}"))?;
    if !global.quiet {
        super::outln!("{}\t{}", pulled.name, pulled.digest)?;
    }
    Ok(ExitCode::SUCCESS)
}
