//! `cairn push`: an OCI layout output and its signed attestations to a registry.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::reference::ImageRef;
use crate::registry::{Progress, PushOptions};

use super::GlobalArgs;
use super::pull::RegistryArgs;

/// Push an OCI layout (as `cairn build -f oci` writes it) and attach its attestations.
///
/// Blobs the repository already has are skipped (HEAD first; --mount-from tries a
/// cross-repository mount). NAME.intoto.jsonl and NAME.sigstore.json beside the layout are
/// attached as OCI 1.1 artifacts whose subject is the image manifest: through the referrers
/// API where the registry offers it, else the `sha256-<hex>` tag schema. Pushing twice
/// uploads nothing new. Prints the reference with the pushed digest.
///
/// Examples:
///   cairn push out/hello.oci registry.example/team/hello:1
///   cairn push out/hello.oci 127.0.0.1:5000/hello:1 --mount-from team/base
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The OCI layout directory (out/NAME.oci).
    pub layout: PathBuf,

    /// Where to push it.
    pub reference: String,

    /// A repository on the same registry to mount existing blobs from (repeatable).
    #[arg(long, value_name = "REPO")]
    pub mount_from: Vec<String>,

    /// Upload blobs larger than this in chunks of this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20, hide = true)]
    pub chunk_size: u64,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let reference = ImageRef::parse(&args.reference)?;
    let options = args.registry.options()?;
    let push = PushOptions { chunk_size: args.chunk_size.max(1), mount_from: args.mount_from };
    let progress = Progress::for_stderr(global.quiet);
    let pushed = crate::registry::push_layout(&args.layout, &reference, &push, &options, &progress)
        .with_context(|| format!("pushing {} to {reference}", args.layout.display()))?;
    if !global.quiet {
        super::outln!("{}", pushed.reference)?;
    }
    Ok(ExitCode::SUCCESS)
}
