//! `cairn import`: bring an image or a root filesystem into the store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::reference::ImageRef;
use crate::store::import::{ImportOptions, import};

use super::GlobalArgs;

/// Import an image, a root filesystem or a Debian package into the store.
///
/// The kind of SOURCE is detected: an OCI image layout directory, an OCI archive tar, a
/// `docker save` tar, a Debian .deb (its data archive becomes one layer; its control
/// fields are kept as config labels), or a root filesystem as a directory or a tar
/// (gzip, zstd or xz compressed or not), which becomes a one-layer image. A directory is
/// normalized so that the same files give the same digest anywhere: owner 0:0, mode 0755
/// or 0644 (from the execute bit), mtime SOURCE_DATE_EPOCH or 0.
///
/// Examples:
///   cairn import ./busybox.oci.tar --name example/busybox:1
///   cairn import ./rootfs/ --name example/base:1
///   cairn import ./busybox-static_1.35.0-4_amd64.deb
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// What to import.
    pub source: PathBuf,

    /// Name (and tag) to record, e.g. example/busybox:1. Required for root filesystems;
    /// archives that carry names keep theirs unless this is given.
    #[arg(long, value_name = "REF")]
    pub name: Option<String>,

    /// Refuse any single blob larger than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    pub max_blob_size: u64,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.as_deref().map(ImageRef::parse).transpose().context("parsing --name")?;
    let source_date = super::env_source_date()?.unwrap_or(crate::source_date::SourceDate::ZERO);
    let store = global.open_store()?;
    let opts =
        ImportOptions { max_blob_size: args.max_blob_size, ..ImportOptions::new(source_date) };
    let imported = import(&store, &args.source, name.as_ref(), &opts)
        .with_context(|| format!("importing {}", args.source.display()))?;
    if !global.quiet {
        for i in imported {
            super::outln!("{}\t{}", i.name, i.digest)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
