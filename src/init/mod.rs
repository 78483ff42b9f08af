//! The payload's init, cairn's built-in container runner, and the verified-boot
//! verifier (PID 1 of the verifier initramfs, in [`verifier`]).
//!
//! # `cairn internal init`: PID 1 of the payload
//!
//! Runs the image the way LinuxKit's init does:
//! 1. mounts `/proc`, `/sys`, `/dev` (devtmpfs), `/dev/pts`, `/dev/shm`, `/run`, `/tmp`
//!    (tmpfs) and `/sys/fs/cgroup` (cgroup2), skipping any already mounted; sets the hostname
//!    from `/etc/hostname`; when `/etc/resolv.conf` is a symlink (cairn and LinuxKit make it
//!    one to `/run/resolvconf/resolv.conf`), creates an empty file at its target; disables
//!    Ctrl-Alt-Del (the kernel then sends SIGINT to PID 1);
//! 2. runs each `containers/onboot/*` bundle in sorted order to completion
//!    (`cairn-init: onboot NAME exited N`);
//! 3. starts every `containers/services/*` bundle in sorted order in the background
//!    (`cairn-init: service NAME started (pid P)`, later `service NAME exited N`) and reaps
//!    every child and orphan;
//! 4. shuts down when SIGTERM, SIGINT, SIGPWR, SIGUSR1 or SIGUSR2 arrives (busybox `halt`
//!    sends SIGUSR1, `poweroff` SIGUSR2, `reboot` SIGTERM: all power off), or when every
//!    service has exited, or right after onboot when the image has no services: runs the
//!    `containers/onshutdown/*` bundles in order (each killed after 30 s), sends SIGTERM to
//!    every process, SIGKILL after 5 s, `sync`s and powers off (`reboot(RB_POWER_OFF)`).
//!
//! Every event is one `cairn-init: …` line on stdout, which is the console when the kernel
//! (or the verifier) starts the init. The network is not configured (not even `lo`): that
//! is an onboot container's job, as in LinuxKit.
//!
//! Containers are started by spawning the running binary again through `/proc/self/exe`
//! (`cairn internal run-bundle DIR`), so the init may live at any path. When the image has
//! `runc` (`/usr/bin/runc` or `/usr/sbin/runc`), the init performs the bundle's
//! `runtime.json` mounts itself and runs `runc run --bundle DIR NAME` instead, as LinuxKit.
//!
//! # `cairn internal run-bundle DIR`: the built-in runner
//!
//! What it does, in order:
//! - `runtime.json`: creates `mkdir` directories and performs `mounts` in the caller's
//!   mount namespace (a writable container's tmpfs + overlay, a read-only container's bind
//!   mount; both on the container's copy of its image, which is the first container's copy
//!   when several use the same image), creating overlay `upperdir`/`workdir`;
//! - namespaces: a new mount namespace always; new `pid`, `network`, `ipc`, `uts`,
//!   `cgroup` namespaces when listed without a path; `setns` into those listed with a path
//!   (not `mount`). A new PID namespace takes a second process: `run-bundle --stage2 DIR`
//!   becomes PID 1 inside it; the first stays as its parent, forwards SIGTERM, SIGINT,
//!   SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and exits with its status (128+N for signal N);
//! - `/` is made `rootfsPropagation` (default `rslave`), the rootfs is bind-mounted onto
//!   itself, the config's `mounts` are performed inside it in order (options parsed as runc
//!   does: flags, propagation keywords, the rest as filesystem data; bind mounts are
//!   remounted for `ro`/`nosuid`/…; mount points are created and must resolve inside the
//!   rootfs); a tmpfs `/dev` gets runc's default devices (null, zero, full, random,
//!   urandom, tty) and symlinks (fd, stdin, stdout, stderr, ptmx, core); `linux.devices`
//!   are created with `mknod`;
//! - hostname (requires a new uts namespace), then `pivot_root` into the rootfs; when `/`
//!   cannot be pivoted (the initramfs rootfs) the rootfs mount is moved onto `/` with
//!   `MS_MOVE` and the runner `chroot`s, as `runc --no-pivot` does;
//! - `linux.sysctl` (written under `/proc/sys`), `maskedPaths` (best effort: `/dev/null`
//!   over files, a read-only tmpfs over directories), `readonlyPaths` (read-only bind),
//!   `root.readonly` (read-only remount of `/`);
//! - `cwd`, `rlimits`, `oomScoreAdj`;
//! - the bounding set is reduced to `bounding`, then `setgroups`/`setgid`/`setuid` from
//!   `process.user` (keeping capabilities), then the inheritable, effective, permitted and
//!   ambient sets are set exactly as listed; `noNewPrivileges`;
//! - `execve` of `args` with exactly `env` (a bare `args[0]` is looked up in the env's
//!   `PATH`). stdin/stdout/stderr are inherited.
//!
//! What it does NOT support. Refused with an error naming the bundle (running without them
//! would weaken the container): seccomp, AppArmor profiles, SELinux labels, hooks, user
//! namespaces and uid/gid mappings (also id-mapped mounts), joining a mount namespace by
//! path, `terminal: true`. Ignored with a warning on stderr: `linux.resources` (no cgroup
//! limits, including the devices cgroup: device access is not restricted beyond the
//! capabilities), runtime.json `cgroups`, `interfaces`, `bindNS` and `namespace`. Also
//! not done: cgroup v1 hierarchies (a `cgroup` mount becomes a best-effort cgroup2 mount),
//! `process.user.umask`, console sockets, `personality`, intel RDT, time namespaces,
//! `linux.cgroupsPath`, the OCI state/lifecycle commands (create/start/kill/delete): the
//! runner is one process that becomes the container. Add `runc` to the image for any of
//! these.

mod pid1;
pub mod plan;
mod runner;
pub mod verifier;

pub use pid1::{InitOptions, RUNC_PATHS, bundles, describe, log, run as run_init};
pub use plan::{
    BundlePlan, CapsPlan, DeviceOp, MountOp, NsOp, PlanError, ProcessPlan, RlimitOp, RuntimePlan,
};
pub use runner::{prepare, prepare_runtime, run_bundle, self_exe};
