//! `cairn completions`: shell completion scripts generated from the CLI definition.

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
    clap_complete::generate(args.shell, &mut cmd, "cairn", &mut std::io::stdout().lock());
    Ok(ExitCode::SUCCESS)
}
