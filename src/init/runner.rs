//! The system half of the built-in runner: performs a [`BundlePlan`] and execs the program.
//!
//! Stage 1 (`cairn internal run-bundle DIR`): runtime.json mkdirs and mounts in the caller's
//! mount namespace, then `unshare`/`setns`. Without a new PID namespace it continues with
//! stage 2 in the same process; with one it spawns `cairn internal run-bundle --stage2 DIR`
//! (which becomes PID 1 of the new namespace), forwards termination signals to it and exits
//! with its status.
//!
//! Stage 2: mounts inside the rootfs, `pivot_root` (with an `MS_MOVE` + `chroot` fallback
//! when the current root cannot be pivoted, e.g. the initramfs rootfs), hostname, sysctls,
//! masked and read-only paths, rlimits, user, capabilities, no_new_privs, `execve`.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use caps::{CapSet, CapsHashSet};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, chdir, chroot, execve, pivot_root};

use super::plan::{self, BundlePlan, DeviceOp, MountOp, NsOp};

/// `cairn internal run-bundle [--stage2] DIR`.
pub fn run_bundle(dir: &Path, stage2: bool) -> Result<ExitCode> {
    let plan = plan::load(dir)?;
    if stage2 {
        let never = enter_container(&plan)?;
        match never {}
    }
    for w in &plan.warnings {
        eprintln!("cairn run-bundle: {}: warning: {w}", plan.id());
    }
    prepare(&plan)?;
    enter_namespaces(&plan)?;
    if plan.new_pid_ns() {
        return supervise_stage2(&plan);
    }
    let never = enter_container(&plan)?;
    match never {}
}

/// The runtime.json part: directories and mounts in the current mount namespace (the
/// init's), as LinuxKit's runtime does before starting a container. Also used before
/// handing a bundle to runc.
pub fn prepare(plan: &BundlePlan) -> Result<()> {
    prepare_runtime(&plan.id(), &plan.mkdir, &plan.prepare)
}

/// [`prepare`] for a runtime.json alone (before runc).
pub fn prepare_runtime(id: &str, mkdir: &[PathBuf], mounts: &[MountOp]) -> Result<()> {
    for dir in mkdir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("bundle {id}: mkdir {}", dir.display()))?;
    }
    for m in mounts {
        std::fs::create_dir_all(&m.target)
            .with_context(|| format!("bundle {id}: mkdir {}", m.target.display()))?;
        if m.fstype == "overlay" {
            // upperdir and workdir live on the tmpfs just mounted: create them.
            for opt in m.data.split(',') {
                if let Some(d) = opt.strip_prefix("upperdir=").or(opt.strip_prefix("workdir=")) {
                    std::fs::create_dir_all(d)
                        .with_context(|| format!("bundle {id}: mkdir {d}"))?;
                }
            }
        }
        do_mount(m, &m.target).with_context(|| format!("bundle {id}"))?;
    }
    Ok(())
}

fn enter_namespaces(plan: &BundlePlan) -> Result<()> {
    let mut new = CloneFlags::empty();
    for ns in &plan.namespaces {
        if let NsOp::New(f) = ns {
            new |= *f;
        }
    }
    unshare(new).with_context(|| format!("bundle {}: unshare({new:?})", plan.id()))?;
    for ns in &plan.namespaces {
        if let NsOp::Join(f, path) = ns {
            let fd = std::fs::File::open(path)
                .with_context(|| format!("bundle {}: opening {}", plan.id(), path.display()))?;
            setns(&fd, *f)
                .with_context(|| format!("bundle {}: setns {}", plan.id(), path.display()))?;
        }
    }
    Ok(())
}

/// Runs stage 2 as PID 1 of the new PID namespace and waits for it, forwarding SIGTERM,
/// SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2.
fn supervise_stage2(plan: &BundlePlan) -> Result<ExitCode> {
    let set = {
        use Signal::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
        block_signals(&[SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])?
    };
    let exe = self_exe()?;
    // std resets the signal mask in the child.
    let child = std::process::Command::new(&exe)
        .args(["internal", "run-bundle", "--stage2"])
        .arg(&plan.bundle)
        .spawn()
        .with_context(|| format!("bundle {}: spawning {}", plan.id(), exe.display()))?;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match set.wait().context("waiting for signals")? {
            Signal::SIGCHLD => loop {
                match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(ExitCode::from(code as u8)),
                    Ok(WaitStatus::Signaled(_, sig, _)) => {
                        return Ok(ExitCode::from(128u8.wrapping_add(sig as u8)));
                    }
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(_) => continue,
                    Err(Errno::EINTR) => continue,
                    Err(e) => bail!("bundle {}: waiting for the container: {e}", plan.id()),
                }
            },
            sig => {
                let _ = kill(pid, sig);
            }
        }
    }
}

/// Blocks `signals` in this thread and returns them as the set to `wait` on: they are taken
/// synchronously, never by a handler. Children started by `std::process::Command` get an
/// empty mask again.
pub(super) fn block_signals(signals: &[Signal]) -> Result<SigSet> {
    let set: SigSet = signals.iter().copied().collect();
    set.thread_block().context("blocking signals")?;
    Ok(set)
}

/// The path of the running binary, for re-executing it.
pub fn self_exe() -> Result<PathBuf> {
    let p = PathBuf::from("/proc/self/exe");
    if p.exists() {
        return Ok(p);
    }
    std::env::current_exe().context("finding the cairn binary (is /proc mounted?)")
}

fn enter_container(plan: &BundlePlan) -> Result<Infallible> {
    let id = &plan.id();
    if plan.new_pid_ns() {
        // Die with the supervising stage 1.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    // Keep the container's mounts from propagating back. When `/` is not a mount point
    // (the runner runs in a chroot) the change is made on the rootfs bind mount below.
    let root_done =
        match mount(None::<&str>, "/", None::<&str>, plan.root_propagation, None::<&str>) {
            Ok(()) => true,
            Err(Errno::EINVAL) => false,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("bundle {id}: making / {:?}", plan.root_propagation));
            }
        };
    let root = &plan.rootfs;
    if !root.is_dir() {
        bail!("bundle {id}: root {} is not a directory", root.display());
    }
    // pivot_root needs the new root to be a mount point.
    mount(Some(root), root, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .with_context(|| format!("bundle {id}: bind mounting {} onto itself", root.display()))?;
    if !root_done {
        mount(None::<&str>, root, None::<&str>, plan.root_propagation, None::<&str>).with_context(
            || format!("bundle {id}: making the rootfs {:?}", plan.root_propagation),
        )?;
    }

    let mut dev_mounted = false;
    let mut read_only_later: Vec<(PathBuf, MountOp)> = Vec::new();
    for m in &plan.mounts {
        let target = secure_target(root, &m.target, m)?;
        if m.fstype == "cgroup" || m.fstype == "cgroup2" {
            // cgroup v1 hierarchies are not set up by cairn's init; cgroup2 is best effort.
            let mut m2 = m.clone();
            m2.fstype = "cgroup2".into();
            m2.source = "cgroup2".into();
            m2.data.clear();
            if let Err(e) = do_mount(&m2, &target) {
                eprintln!("cairn run-bundle: {id}: warning: {e:#}");
            }
            continue;
        }
        if !m.is_bind() && m.flags.contains(MsFlags::MS_RDONLY) {
            // As runc does: a read-only filesystem (a read-only container's /dev tmpfs) is
            // mounted writable so that later mount points and device nodes can be created
            // in it, and made read-only once they are.
            let mut writable = m.clone();
            writable.flags.remove(MsFlags::MS_RDONLY);
            do_mount(&writable, &target).with_context(|| format!("bundle {id}"))?;
            read_only_later.push((target.clone(), m.clone()));
        } else {
            do_mount(m, &target).with_context(|| format!("bundle {id}"))?;
        }
        if m.target == Path::new("/dev") {
            dev_mounted = true;
        }
    }
    if dev_mounted {
        default_devices(root).with_context(|| format!("bundle {id}: populating /dev"))?;
    }
    for d in &plan.devices {
        make_device(root, d)
            .with_context(|| format!("bundle {id}: device {}", d.path.display()))?;
    }
    // Innermost first, so that a parent turning read-only does not block a child's remount.
    for (target, m) in read_only_later.iter().rev() {
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        mount(None::<&str>, target, None::<&str>, m.flags | MsFlags::MS_REMOUNT, data)
            .with_context(|| format!("bundle {id}: making {} read-only", target.display()))?;
    }
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).with_context(|| format!("bundle {id}: sethostname {h:?}"))?;
    }

    enter_root(root).with_context(|| format!("bundle {id}: entering {}", root.display()))?;

    for (key, value) in &plan.sysctl {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value)
            .with_context(|| format!("bundle {id}: sysctl {key}={value}"))?;
    }
    for p in &plan.masked_paths {
        mask_path(p);
    }
    for p in &plan.readonly_paths {
        readonly_path(p).with_context(|| format!("bundle {id}: read-only {}", p.display()))?;
    }
    if plan.readonly_root {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .with_context(|| format!("bundle {id}: remounting / read-only"))?;
    }
    let p = &plan.process;
    chdir(&p.cwd).with_context(|| format!("bundle {id}: chdir {}", p.cwd.display()))?;
    for r in &p.rlimits {
        nix::sys::resource::setrlimit(r.resource, r.soft, r.hard)
            .with_context(|| format!("bundle {id}: setrlimit {:?}", r.resource))?;
    }
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .with_context(|| format!("bundle {id}: oom_score_adj"))?;
    }
    let program = resolve_program(&p.args[0], &p.env)
        .with_context(|| format!("bundle {id}: finding {}", p.args[0]))?;
    set_identity_and_caps(plan).with_context(|| format!("bundle {id}"))?;
    if p.no_new_privileges {
        nix::sys::prctl::set_no_new_privs()
            .with_context(|| format!("bundle {id}: no_new_privs"))?;
    }
    let cstr = |s: &str| CString::new(s).expect("NUL bytes are refused by the plan");
    let args: Vec<CString> = p.args.iter().map(|a| cstr(a)).collect();
    let env: Vec<CString> = p.env.iter().map(|e| cstr(e)).collect();
    let prog = CString::new(program.as_os_str().as_bytes()).context("program path has a NUL")?;
    let e = execve(&prog, &args, &env).unwrap_err();
    bail!("bundle {id}: exec {}: {e}", program.display())
}

/// One mount entry at `target` (already resolved), plus its bind remount and propagation.
fn do_mount(m: &MountOp, target: &Path) -> Result<()> {
    let src = (!m.source.is_empty()).then_some(m.source.as_str());
    let fstype = (!m.fstype.is_empty()).then_some(m.fstype.as_str());
    let data = (!m.data.is_empty()).then_some(m.data.as_str());
    if m.needs_mount() {
        // Bind mounts take the flags on a second call.
        let flags =
            if m.is_bind() { m.flags & (MsFlags::MS_BIND | MsFlags::MS_REC) } else { m.flags };
        mount(src, target, fstype, flags, data).with_context(|| {
            format!(
                "mount {} on {} (type {:?}, {:?}, {:?})",
                m.source,
                target.display(),
                m.fstype,
                m.flags,
                m.data
            )
        })?;
        if let Some(flags) = m.bind_remount_flags() {
            mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
                .with_context(|| format!("remounting {} {flags:?}", target.display()))?;
        }
    }
    for p in &m.propagation {
        mount(None::<&str>, target, None::<&str>, *p, None::<&str>)
            .with_context(|| format!("making {} {p:?}", target.display()))?;
    }
    Ok(())
}

/// `root` + `inside`, created if missing (a file for a bind mount of a file), and checked
/// to still be under `root` after symlinks are resolved.
fn secure_target(root: &Path, inside: &Path, m: &MountOp) -> Result<PathBuf> {
    let rel = inside.strip_prefix("/").unwrap_or(inside);
    let joined = root.join(rel);
    if std::fs::symlink_metadata(&joined).is_err() {
        let source_is_file = m.is_bind() && Path::new(&m.source).is_file();
        if source_is_file {
            if let Some(parent) = joined.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::File::create(&joined)
                .with_context(|| format!("creating mount point {}", joined.display()))?;
        } else {
            std::fs::create_dir_all(&joined)
                .with_context(|| format!("creating mount point {}", joined.display()))?;
        }
    }
    let real = joined.canonicalize()?;
    let real_root = root.canonicalize()?;
    if !real.starts_with(&real_root) {
        bail!("mount point {} resolves outside the container root", inside.display());
    }
    Ok(real)
}

/// runc's default devices on a tmpfs `/dev`: null, zero, full, random, urandom, tty, plus
/// the usual symlinks.
fn default_devices(root: &Path) -> Result<()> {
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        make_device(
            root,
            &DeviceOp { path: Path::new("/dev").join(name), kind: 'c', major, minor, mode: 0o666 },
        )?;
    }
    let dev = root.join("dev");
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        let l = dev.join(link);
        if std::fs::symlink_metadata(&l).is_err() {
            std::os::unix::fs::symlink(to, &l)?;
        }
    }
    Ok(())
}

fn make_device(root: &Path, d: &DeviceOp) -> Result<()> {
    let rel = d.path.strip_prefix("/").unwrap_or(&d.path);
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let kind = match d.kind {
        'b' => SFlag::S_IFBLK,
        'p' => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let _ = std::fs::remove_file(&path);
    mknod(&path, kind, Mode::from_bits_truncate(d.mode & 0o7777), makedev(d.major, d.minor))
        .with_context(|| format!("mknod {}", path.display()))?;
    // mknod applies the umask; set the mode the config asked for.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(d.mode & 0o7777))?;
    Ok(())
}

/// Makes `root` the process's root: `pivot_root` when possible, else move the mount onto
/// `/` and `chroot` (what runc does with `--no-pivot`; needed on an initramfs rootfs).
fn enter_root(root: &Path) -> Result<()> {
    chdir(root)?;
    match pivot_root(".", ".") {
        Ok(()) => {
            // The old root is stacked under the new one: detach it.
            mount(
                None::<&str>,
                ".",
                None::<&str>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&str>,
            )
            .context("making the old root a slave")?;
            umount2(".", MntFlags::MNT_DETACH).context("detaching the old root")?;
        }
        Err(Errno::EINVAL) | Err(Errno::EPERM) => {
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .context("moving the root mount onto /")?;
            chroot(".").context("chroot")?;
        }
        Err(e) => return Err(e).context("pivot_root"),
    }
    chdir("/")?;
    Ok(())
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory. Best
/// effort, like runc (missing paths are skipped).
fn mask_path(p: &Path) {
    let Ok(meta) = std::fs::metadata(p) else { return };
    let r = if meta.is_dir() {
        mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>)
    } else {
        mount(Some("/dev/null"), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
    };
    if let Err(e) = r {
        eprintln!("cairn run-bundle: warning: masking {}: {e}", p.display());
    }
}

fn readonly_path(p: &Path) -> Result<()> {
    if !p.exists() {
        return Ok(());
    }
    mount(Some(p), p, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )?;
    Ok(())
}

/// `args[0]` as is when it holds a `/`, else the first match in the config's `PATH`
/// (default `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`).
fn resolve_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(candidate);
        }
    }
    bail!("{arg0:?} not found in PATH {path}")
}

/// Bounding set, then user and groups (keeping capabilities across setuid), then the
/// effective, permitted, inheritable and ambient sets exactly as listed.
fn set_identity_and_caps(plan: &BundlePlan) -> Result<()> {
    let p = &plan.process;
    let c = &p.caps;
    let set = |v: &[caps::Capability]| v.iter().copied().collect::<CapsHashSet>();
    let bounding = set(&c.bounding);
    for cap in caps::read(None, CapSet::Bounding).context("reading the bounding set")? {
        if !bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).context("PR_SET_KEEPCAPS")?;
    let groups: Vec<Gid> = p.additional_gids.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).context("setgroups")?;
    let (gid, uid) = (Gid::from_raw(p.gid), Uid::from_raw(p.uid));
    nix::unistd::setresgid(gid, gid, gid).with_context(|| format!("setgid {}", p.gid))?;
    nix::unistd::setresuid(uid, uid, uid).with_context(|| format!("setuid {}", p.uid))?;
    nix::sys::prctl::set_keepcaps(false).context("PR_SET_KEEPCAPS")?;
    // Inheritable first (needs CAP_SETPCAP, still effective), then effective ⊆ permitted.
    caps::set(None, CapSet::Inheritable, &set(&c.inheritable))
        .context("setting the inheritable set")?;
    caps::set(None, CapSet::Effective, &set(&c.effective)).context("setting the effective set")?;
    caps::set(None, CapSet::Permitted, &set(&c.permitted)).context("setting the permitted set")?;
    caps::set(None, CapSet::Ambient, &set(&c.ambient)).context("setting the ambient set")?;
    Ok(())
}
