//! `cairn internal init`: PID 1 of the payload.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Result;
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::runner::{block_signals, prepare_runtime, self_exe};

/// Where runc is looked for in the image, in order.
pub const RUNC_PATHS: [&str; 2] = ["/usr/bin/runc", "/usr/sbin/runc"];

/// Seconds an onshutdown container may run before it is killed.
const ONSHUTDOWN_TIMEOUT: u32 = 30;
/// Seconds between SIGTERM and SIGKILL for the remaining processes.
const KILL_GRACE: u32 = 5;

/// Options of `cairn internal init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The directory holding `onboot/`, `onshutdown/`, `services/` (normally `/containers`).
    pub containers: PathBuf,
    /// Mount /proc, /sys, /dev… (off only for tests that provide them).
    pub mount_system: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { containers: PathBuf::from("/containers"), mount_system: true }
    }
}

/// Prints one event line on the console (stdout; errors are ignored: the init must not die
/// because the console went away).
pub fn log(msg: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "cairn-init: {msg}");
    let _ = out.flush();
}

/// The bundles of one section (`onboot`, `onshutdown`, `services`) in sorted order; a
/// missing section is empty.
pub fn bundles(containers: &Path, section: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(containers.join(section)) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("config.json").is_file())
        .collect();
    v.sort();
    v
}

fn name_of(bundle: &Path) -> String {
    bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// How a child ended, as printed in the log.
pub fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {}", sig.as_str()),
        other => format!("{other:?}"),
    }
}

struct Init {
    opts: InitOptions,
    exe: PathBuf,
    runc: Option<PathBuf>,
    signals: SigSet,
    shutdown_requested: bool,
    /// Children we started and still wait for: pid → (kind, name).
    children: BTreeMap<i32, (&'static str, String)>,
    /// Exit statuses of onboot/onshutdown containers not yet picked up.
    exited: BTreeMap<i32, WaitStatus>,
    is_pid1: bool,
}

/// Runs the init to power-off. Returns only when not PID 1 (tests), or on a fatal error.
pub fn run(opts: InitOptions) -> Result<ExitCode> {
    let is_pid1 = nix::unistd::getpid() == Pid::from_raw(1);
    let signals = {
        use Signal::{SIGALRM, SIGCHLD, SIGINT, SIGPWR, SIGTERM, SIGUSR1, SIGUSR2};
        block_signals(&[SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGUSR1, SIGUSR2, SIGALRM])?
    };
    if is_pid1 {
        // Ctrl-Alt-Del sends SIGINT to us instead of rebooting at once.
        let _ = nix::sys::reboot::set_cad_enabled(false);
    } else {
        // Reap the grandchildren that get re-parented to us.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    log(format!("starting (pid {})", nix::unistd::getpid()));
    if opts.mount_system {
        mount_system();
        set_hostname();
        make_resolv_conf();
    }
    let exe = self_exe()?;
    let runc = RUNC_PATHS.iter().map(PathBuf::from).find(|p| p.is_file());
    if let Some(r) = &runc {
        log(format!("using {}", r.display()));
    }
    let mut init = Init {
        opts,
        exe,
        runc,
        signals,
        shutdown_requested: false,
        children: BTreeMap::new(),
        exited: BTreeMap::new(),
        is_pid1,
    };
    init.boot();
    init.shutdown()
}

impl Init {
    fn boot(&mut self) {
        for b in bundles(&self.opts.containers, "onboot") {
            if self.shutdown_requested {
                break;
            }
            let name = name_of(&b);
            match self.run_to_completion(&b, "onboot", None) {
                Some(status) => log(format!("onboot {name} {}", describe(status))),
                None => log(format!("onboot {name} could not be started")),
            }
        }
        if self.shutdown_requested {
            return;
        }
        let mut services = 0;
        for b in bundles(&self.opts.containers, "services") {
            let name = name_of(&b);
            if let Some(pid) = self.start(&b, "service") {
                log(format!("service {name} started (pid {pid})"));
                services += 1;
            }
        }
        if services == 0 {
            log("no services running");
            return;
        }
        while !self.shutdown_requested && self.children.values().any(|(k, _)| *k == "service") {
            self.wait_event();
        }
        if !self.shutdown_requested {
            log("all services exited");
        }
    }

    fn shutdown(&mut self) -> Result<ExitCode> {
        log("shutting down");
        for b in bundles(&self.opts.containers, "onshutdown") {
            let name = name_of(&b);
            match self.run_to_completion(&b, "onshutdown", Some(ONSHUTDOWN_TIMEOUT)) {
                Some(status) => log(format!("onshutdown {name} {}", describe(status))),
                None => log(format!("onshutdown {name} could not be started")),
            }
        }
        self.kill_all(Signal::SIGTERM);
        nix::unistd::alarm::set(KILL_GRACE);
        while self.has_children() {
            if self.wait_event() == Some(Signal::SIGALRM) {
                break;
            }
        }
        nix::unistd::alarm::cancel();
        if self.has_children() {
            self.kill_all(Signal::SIGKILL);
            while self.has_children() {
                self.reap();
            }
        }
        nix::unistd::sync();
        if self.is_pid1 {
            log("power off");
            let e =
                nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF).unwrap_err();
            anyhow::bail!("reboot(RB_POWER_OFF): {e}");
        }
        log("done (not PID 1: not powering off)");
        Ok(ExitCode::SUCCESS)
    }

    /// Whether any child remains (any process at all when PID 1 or a subreaper).
    fn has_children(&mut self) -> bool {
        self.reap();
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => false,
            Ok(WaitStatus::StillAlive) => true,
            Ok(status) => {
                self.note_exit(status);
                true
            }
            Err(_) => true,
        }
    }

    fn kill_all(&mut self, sig: Signal) {
        if self.is_pid1 {
            // Every process but us.
            let _ = kill(Pid::from_raw(-1), sig);
        } else {
            for pid in self.children.keys() {
                let _ = kill(Pid::from_raw(*pid), sig);
            }
        }
    }

    fn command(&self, bundle: &Path) -> Command {
        match &self.runc {
            Some(runc) => {
                let mut c = Command::new(runc);
                c.args(["run", "--bundle"]).arg(bundle).arg(name_of(bundle));
                c
            }
            None => {
                let mut c = Command::new(&self.exe);
                c.args(["internal", "run-bundle"]).arg(bundle);
                c
            }
        }
    }

    fn start(&mut self, bundle: &Path, kind: &'static str) -> Option<i32> {
        let name = name_of(bundle);
        if self.runc.is_some() {
            // runc does not read runtime.json: do its part here, as LinuxKit's init does.
            let plan = match super::plan::load_runtime(bundle) {
                Ok(p) => p,
                Err(e) => {
                    log(format!("{kind} {name}: {e}"));
                    return None;
                }
            };
            for w in &plan.warnings {
                log(format!("{kind} {name}: warning: {w}"));
            }
            if let Err(e) = prepare_runtime(&name, &plan.mkdir, &plan.prepare) {
                log(format!("{kind} {name}: {}", crate::diag::render_error(&e)));
                return None;
            }
        }
        match self.command(bundle).spawn() {
            Ok(child) => {
                let pid = child.id() as i32;
                self.children.insert(pid, (kind, name));
                Some(pid)
            }
            Err(e) => {
                log(format!("{kind} {name}: starting: {e}"));
                None
            }
        }
    }

    /// Starts a bundle and waits for it, handling other events meanwhile. A timeout kills it.
    fn run_to_completion(
        &mut self,
        bundle: &Path,
        kind: &'static str,
        timeout: Option<u32>,
    ) -> Option<WaitStatus> {
        let pid = self.start(bundle, kind)?;
        if let Some(t) = timeout {
            nix::unistd::alarm::set(t);
        }
        let status = loop {
            if let Some(s) = self.take_exit(pid) {
                break s;
            }
            if self.wait_event() == Some(Signal::SIGALRM) && timeout.is_some() {
                log(format!("{kind} {} timed out: killing it", name_of(bundle)));
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        };
        nix::unistd::alarm::cancel();
        Some(status)
    }

    /// Waits for one signal and handles it; returns it.
    fn wait_event(&mut self) -> Option<Signal> {
        let sig = match self.signals.wait() {
            Ok(s) => s,
            Err(_) => return None,
        };
        match sig {
            Signal::SIGCHLD => self.reap(),
            Signal::SIGALRM => {}
            other => {
                if !self.shutdown_requested {
                    log(format!("received {}: shutting down", other.as_str()));
                }
                self.shutdown_requested = true;
            }
        }
        Some(sig)
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => self.note_exit(status),
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }

    fn note_exit(&mut self, status: WaitStatus) {
        let Some(pid) = status.pid() else { return };
        if !matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
            return;
        }
        if let Some((kind, name)) = self.children.get(&pid.as_raw()).cloned() {
            if kind == "service" {
                log(format!("service {name} {}", describe(status)));
                self.children.remove(&pid.as_raw());
            } else {
                // onboot/onshutdown: kept for run_to_completion to pick up.
                self.exited.insert(pid.as_raw(), status);
                self.children.remove(&pid.as_raw());
            }
        }
    }

    fn take_exit(&mut self, pid: i32) -> Option<WaitStatus> {
        self.exited.remove(&pid)
    }
}

/// The filesystems every LinuxKit image expects. Failures are logged, not fatal; already
/// mounted ones (EBUSY) are skipped quietly.
fn mount_system() {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let table: [(&str, &str, &str, MsFlags, &str); 8] = [
        ("proc", "/proc", "proc", nosuid_nodev_noexec, ""),
        ("sysfs", "/sys", "sysfs", nosuid_nodev_noexec, ""),
        ("dev", "/dev", "devtmpfs", MsFlags::MS_NOSUID, "mode=0755"),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        ("shm", "/dev/shm", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=1777"),
        ("tmpfs", "/run", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=0755"),
        ("tmpfs", "/tmp", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=1777"),
        ("cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid_nodev_noexec, ""),
    ];
    for (src, target, fstype, flags, data) in table {
        if let Err(e) = std::fs::create_dir_all(target) {
            log(format!("mkdir {target}: {e}"));
            continue;
        }
        let data = (!data.is_empty()).then_some(data);
        match mount(Some(src), target, Some(fstype), flags, data) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(e) => log(format!("mount {fstype} on {target}: {e}")),
        }
    }
}

/// As LinuxKit's rc.init: when `/etc/resolv.conf` is a symlink (an init image's points to
/// `/run/resolvconf/resolv.conf`), creates its target's directory and an empty file there,
/// so that containers binding it (and dhcpcd, which writes it) find a file.
fn make_resolv_conf() {
    let Ok(link) = std::fs::read_link("/etc/resolv.conf") else { return };
    let target = Path::new("/etc").join(link);
    if let Some(dir) = target.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        log(format!("mkdir {}: {e}", dir.display()));
        return;
    }
    if let Err(e) = std::fs::write(&target, "") {
        log(format!("creating {}: {e}", target.display()));
    }
}

fn set_hostname() {
    let Ok(name) = std::fs::read_to_string("/etc/hostname") else { return };
    let name = name.trim();
    if name.is_empty() {
        return;
    }
    match nix::unistd::sethostname(name) {
        Ok(()) => log(format!("hostname {name}")),
        Err(e) => log(format!("sethostname {name:?}: {e}")),
    }
}
