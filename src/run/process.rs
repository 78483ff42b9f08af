//! Runs QEMU: spawns it, forwards the guest console, enforces the timeout.
//!
//! QEMU's stdin and stderr are inherited (so `-nographic`'s console is interactive on a
//! terminal, Ctrl-A x quits, and QEMU's own errors reach the user). Its stdout, the guest
//! console, is read by a thread that copies every byte to the caller's writer as it arrives
//! and feeds a [`ConsoleScan`]. On timeout QEMU gets SIGTERM (it restores the terminal and
//! exits), then SIGKILL if it has not gone within [`KILL_GRACE`].

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{ConsoleScan, Outcome};

/// How long QEMU gets to exit after SIGTERM before it is killed.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// How often the wait loop polls QEMU.
const POLL: Duration = Duration::from_millis(50);

/// Why QEMU could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Environment: QEMU could not be started.
    #[error("starting {program}: {source}")]
    Spawn { program: String, source: io::Error },
    /// Environment: waiting for or signalling QEMU failed.
    #[error("waiting for {program}: {source}")]
    Wait { program: String, source: io::Error },
}

/// Boots `argv` (program first, see [`super::RunPlan::argv`]), copying the guest console
/// to `console`, and waits at most `timeout` (`None`: forever). Errors writing to `console`
/// (a closed pipe, say) stop the copying, not the guest.
pub fn boot<W: Write + Send>(
    argv: &[OsString],
    timeout: Option<Duration>,
    console: W,
) -> Result<Outcome, ProcessError> {
    let (program, args) = argv.split_first().expect("RunPlan::argv always names the program");
    let name = program.to_string_lossy().into_owned();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ProcessError::Spawn { program: name.clone(), source })?;
    let stdout = child.stdout.take().expect("stdout was set to piped");
    thread::scope(|s| {
        let reader = s.spawn(move || forward(stdout, console));
        let waited = wait(&mut child, timeout);
        // On an error the child may still run: make sure the reader sees EOF.
        if waited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let scan = reader.join().unwrap_or_default();
        match waited {
            Ok(Some(code)) => Ok(Outcome::from_qemu(code, &scan)),
            Ok(None) => Ok(Outcome::TimedOut),
            Err(source) => Err(ProcessError::Wait { program: name, source }),
        }
    })
}

/// Copies the console to `out` until EOF, scanning it on the way.
fn forward(mut from: impl Read, mut out: impl Write) -> ConsoleScan {
    let mut scan = ConsoleScan::default();
    let mut buf = [0u8; 8192];
    let mut out_ok = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                scan.feed(&buf[..n]);
                if out_ok {
                    out_ok = out.write_all(&buf[..n]).and_then(|()| out.flush()).is_ok();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    scan.finish();
    scan
}

/// Waits for QEMU: `Some(exit code)` when it ended (`None` inside for a signal), `None` when
/// the timeout passed (QEMU has then been terminated and reaped).
fn wait(child: &mut Child, timeout: Option<Duration>) -> io::Result<Option<Option<i32>>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status.code()));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            terminate(child)?;
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// SIGTERM, a grace period, then SIGKILL; reaps the child.
fn terminate(child: &mut Child) -> io::Result<()> {
    // The child is not reaped yet, so its pid cannot have been reused. kill only fails if
    // the child already exited, which the wait below handles.
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM);
    }
    let grace = Instant::now() + KILL_GRACE;
    while Instant::now() < grace {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(POLL);
    }
    child.kill()?;
    child.wait().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn console_is_forwarded_and_status_mapped() {
        let mut out = Vec::new();
        let o = boot(&sh("printf 'hello\\nCAIRN_EXIT=5\\n'"), None, &mut out).unwrap();
        assert_eq!(o, Outcome::Exited(5));
        assert_eq!(out, b"hello\nCAIRN_EXIT=5\n");
        // Status 7 is what QEMU's debug-exit device gives for a guest writing 3.
        let o = boot(&sh("echo x; exit 7"), None, Vec::new()).unwrap();
        assert_eq!(o, Outcome::Exited(3));
    }

    #[test]
    fn timeout_terminates() {
        let start = Instant::now();
        let o =
            boot(&sh("echo booting; exec sleep 30"), Some(Duration::from_millis(300)), io::sink())
                .unwrap();
        assert_eq!(o, Outcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = boot(&["/nonexistent/qemu".into()], None, io::sink()).unwrap_err();
        assert!(err.to_string().starts_with("starting /nonexistent/qemu: "), "{err}");
    }
}
