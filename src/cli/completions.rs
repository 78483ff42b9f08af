//! `cairn completions`: shell completion scripts generated from the CLI definition.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Print a shell completion script.
///
/// Examples:
///   cairn completions bash > /etc/bash_completion.d/cairn
///   cairn completions zsh > "${fpath[1]}/_cairn"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell to generate for.
    pub shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    // Generated into memory first: `generate` panics on a write error, and a closed pipe
    // must reach the caller as an error (see `super::exit_status`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cairn", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
