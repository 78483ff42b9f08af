//! The command line: argument definitions, dispatch, and the one place errors are printed.
//!
//! Each subcommand lives in its own file with one `Args` struct and one `run` that turns
//! arguments into stage inputs and calls the stage. Exit codes: 0 success, 1 a check said
//! no (stale lock, store corruption found), 2 an error (bad usage or input, I/O).

mod build;
mod completions;
mod fetch;
mod import;
mod internal;
mod keygen;
mod lock;
mod pull;
mod push;
mod run;
mod sign;
mod sigstore;
mod spinner;
mod store;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::{Rejection, render_error};
use crate::lock::StaleLock;
use crate::source_date::SourceDate;

/// Exit status for "a check said no".
const EXIT_REJECTED: u8 = 1;
/// Exit status for errors, including usage errors.
const EXIT_ERROR: u8 = 2;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  a check said no (stale lock with --locked or `lock --check`, corrupt store with `store fsck`)
  2  error: bad usage, bad input, missing image, I/O failure";

/// Compose Linux OS images from pinned components, byte-identical on any machine.
///
/// cairn reads a LinuxKit-style YAML spec, pins every input by sha256 in a lock file,
/// and assembles the image from a local content-addressed store (an OCI image layout).
/// The same spec, lock and store contents give the same output bytes on any machine.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, after_long_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Content store directory (an OCI image layout). Default: $CAIRN_STORE, else
    /// the user cache directory (~/.cache/cairn/store).
    #[arg(long, global = true, value_name = "DIR", env = "CAIRN_STORE", hide_env = true)]
    pub store: Option<PathBuf>,

    /// Print only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Import(import::Args),
    Pull(pull::Args),
    Push(push::Args),
    Fetch(fetch::Args),
    Lock(lock::Args),
    Build(build::Args),
    Keygen(keygen::Args),
    Sign(sign::Args),
    Verify(verify::Args),
    Run(run::Args),
    #[command(subcommand)]
    Store(store::StoreCommand),
    #[command(subcommand)]
    Sigstore(sigstore::SigstoreCommand),
    Completions(completions::Args),
    #[command(subcommand, hide = true)]
    Internal(internal::InternalCommand),
}

/// Parses the command line, runs it, prints any error, and returns the exit status.
pub fn main() -> ExitCode {
    // PID 1 named /init: the verified-boot verifier initramfs (see crate::init::verifier).
    if crate::init::verifier::is_verifier_invocation() {
        return crate::init::verifier::boot_verify_main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_ERROR) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let (status, message) = exit_status(&e);
            if let Some(message) = message {
                eprintln!("cairn: {message}");
            }
            ExitCode::from(status)
        }
    }
}

/// The one place an error becomes an exit status: a verdict (a check said no, see
/// [`Rejection`] and [`StaleLock`]) exits 1 with its own message alone; a closed stdout
/// (the reader went away, as in `cairn store ls | grep -q x`) is a normal end and exits 0
/// quietly, as `ls` does; anything else exits 2 with the whole chain.
fn exit_status(e: &anyhow::Error) -> (u8, Option<String>) {
    for cause in e.chain() {
        if cause.is::<Rejection>() || cause.is::<StaleLock>() {
            return (EXIT_REJECTED, Some(cause.to_string()));
        }
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return (0, None);
        }
    }
    (EXIT_ERROR, Some(render_error(e)))
}

/// Writes one line of output to stdout, returning the error instead of panicking as
/// `println!` does, so a closed pipe reaches [`exit_status`]. Use through [`outln!`].
pub(crate) fn write_stdout_line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// `println!` that propagates write errors: `outln!("{x}")?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Import(args) => import::run(args, &cli.global),
        Command::Pull(args) => pull::run(args, &cli.global),
        Command::Push(args) => push::run(args, &cli.global),
        Command::Fetch(args) => fetch::run(args, &cli.global),
        Command::Lock(args) => lock::run(args, &cli.global),
        Command::Build(args) => build::run(args, &cli.global),
        Command::Keygen(args) => keygen::run(args, &cli.global),
        Command::Sign(args) => sign::run(args, &cli.global),
        Command::Verify(args) => verify::run(args, &cli.global),
        Command::Run(args) => run::run(args, &cli.global),
        Command::Store(cmd) => store::run(cmd, &cli.global),
        Command::Sigstore(cmd) => sigstore::run(cmd),
        Command::Completions(args) => completions::run(args),
        Command::Internal(cmd) => internal::run(cmd),
    }
}

impl GlobalArgs {
    /// Opens the store named by `--store`/`CAIRN_STORE`, else the default one.
    pub fn open_store(&self) -> anyhow::Result<crate::store::Store> {
        use anyhow::Context;
        let root = match &self.store {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => crate::store::Store::default_root().context(
                "finding the default store: no cache directory is known for this user\n\nSet --store DIR or CAIRN_STORE.",
            )?,
        };
        crate::store::Store::open(&root)
            .with_context(|| format!("opening the store {}", root.display()))
    }
}

/// The environment variable that holds the passphrase of an encrypted private key.
pub const PASSPHRASE_ENV: &str = "CAIRN_KEY_PASSPHRASE";

/// The key passphrase from the environment: unset or empty means none.
pub fn key_passphrase() -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
    match std::env::var(PASSPHRASE_ENV) {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => Ok(Some(zeroize::Zeroizing::new(v))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{PASSPHRASE_ENV} is not valid UTF-8")
        }
    }
}

/// Reads a private key, decrypting it with the passphrase from the environment if needed.
pub fn load_signing_key(path: &std::path::Path) -> anyhow::Result<crate::sign::keys::SigningKey> {
    use anyhow::Context;
    let passphrase = key_passphrase()?;
    crate::sign::keys::SigningKey::read_pem_file(path, passphrase.as_deref().map(String::as_str))
        .with_context(|| format!("reading signing key {}", path.display()))
}

/// `SOURCE_DATE_EPOCH` from the environment: unset or empty means none; malformed is an error.
pub fn env_source_date() -> anyhow::Result<Option<SourceDate>> {
    Ok(SourceDate::from_env()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verdicts_exit_1_with_their_own_message_and_errors_exit_2() {
        let stale = StaleLock {
            lock_path: "x.yml.lock".into(),
            spec_path: "x.yml".into(),
            reason: "the spec changed".into(),
        };
        let e = anyhow::Error::new(crate::lock::LockError::from(stale)).context("building x.yml");
        let (code, msg) = exit_status(&e);
        assert_eq!(code, EXIT_REJECTED);
        assert_eq!(
            msg.as_deref().unwrap_or_default(),
            "x.yml.lock: the spec changed\n\nRun `cairn lock x.yml` to update it."
        );
        let e = anyhow::Error::new(Rejection::new("verification failed: no")).context("verifying");
        assert_eq!(exit_status(&e), (EXIT_REJECTED, Some("verification failed: no".to_string())));
        let e = anyhow::anyhow!("disk on fire").context("writing x");
        assert_eq!(exit_status(&e), (EXIT_ERROR, Some("writing x: disk on fire".to_string())));
    }

    #[test]
    fn a_closed_stdout_anywhere_in_the_chain_is_a_quiet_success() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = anyhow::Error::new(pipe).context("listing").context("store");
        assert_eq!(exit_status(&e), (0, None));
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_each_verb() {
        for argv in [
            &["cairn", "import", "x.tar", "--name", "a/b:1"][..],
            &["cairn", "lock", "x.yml", "--check"],
            &[
                "cairn", "build", "x.yml", "--format", "tar", "--format", "oci", "-o", "out",
                "--locked",
            ],
            &["cairn", "--store", "/s", "store", "ls"],
            &["cairn", "store", "gc", "--dry-run"],
            &["cairn", "store", "fsck"],
            &[
                "cairn",
                "pull",
                "busybox",
                "--platform",
                "linux/amd64",
                "--insecure-registry",
                "h:5000",
            ],
            &["cairn", "push", "out/x.oci", "h:5000/x:1", "--mount-from", "base"],
            &["cairn", "fetch", "x.yml", "--registry-ca", "ca.pem"],
            &["cairn", "completions", "bash"],
            &["cairn", "internal", "init"],
            &["cairn", "internal", "init", "--containers", "/c", "--no-mount"],
            &["cairn", "internal", "run-bundle", "/containers/onboot/000-a"],
            &["cairn", "internal", "run-bundle", "--stage2", "/b"],
            &["cairn", "keygen", "--out", "release", "--alg", "ecdsa-p256"],
            &["cairn", "sign", "out", "--key", "release.key"],
            &["cairn", "sigstore", "verify-bundle", "--bundle", "b.json", "--key", "k.pub", "a"],
            &["cairn", "verify", "out", "--key", "k.pub", "--policy", "p.yaml", "--json"],
            &["cairn", "run", "out/img", "--mem", "1024", "--disk", "d.img", "--timeout", "0"],
            &[
                "cairn",
                "build",
                "x.yml",
                "--sign-key",
                "k.key",
                "--builder-id",
                "https://ci.example/b",
            ],
        ] {
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
    }
}
