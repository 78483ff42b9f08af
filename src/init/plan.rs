//! The pure half of the runner: `config.json` + `runtime.json` bytes → a typed [`BundlePlan`].
//!
//! Nothing here touches the system, so every rule (mount options, namespaces, capabilities,
//! rlimits, what is refused) is unit-tested. Errors name the bundle.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use caps::Capability;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use serde::Deserialize;

/// Why a bundle cannot be run. Every variant names the bundle directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("bundle {bundle}: reading {file}: {source}")]
    Read { bundle: String, file: &'static str, source: std::io::Error },
    #[error("bundle {bundle}: {file} is not valid: {reason}")]
    Json { bundle: String, file: &'static str, reason: String },
    #[error("bundle {bundle}: {field}: {reason}")]
    Invalid { bundle: String, field: &'static str, reason: String },
    /// A path, mount, capability or rlimit the runner cannot parse.
    #[error("bundle {bundle}: {field}: {source}")]
    Field { bundle: String, field: &'static str, source: FieldError },
    #[error(
        "bundle {bundle}: {feature} is not supported by cairn's built-in runner (add runc to the image to use it)"
    )]
    Unsupported { bundle: String, feature: String },
}

/// What is wrong with a path, mount, capability or rlimit of a bundle
/// ([`PlanError::Field`] names the bundle and the field).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
    #[error("{0:?} contains '..'")]
    DotDot(String),
    #[error("empty path")]
    EmptyPath,
    #[error("{0}: filesystem options without a type")]
    OptionsWithoutType(String),
    #[error("{0}: bind mount without a source")]
    BindWithoutSource(String),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("unknown rlimit {0:?}")]
    UnknownRlimit(String),
}

/// One mount(2) call (plus the propagation change and read-only remount it may need).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOp {
    pub source: String,
    /// For runtime.json mounts an absolute host path; for config.json mounts the path
    /// inside the container (absolute, no `..`).
    pub target: PathBuf,
    pub fstype: String,
    /// The flags of the main mount call (without propagation flags).
    pub flags: MsFlags,
    /// Propagation changes applied after the mount, one call each.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
}

impl MountOp {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Whether a first mount call is needed at all (a bare `private` entry only changes
    /// propagation).
    pub fn needs_mount(&self) -> bool {
        !self.fstype.is_empty() || !self.flags.is_empty() || !self.data.is_empty()
    }

    /// A bind mount with `ro` (or other per-mount flags) needs a second, remounting call:
    /// the kernel ignores them on the bind itself.
    pub fn bind_remount_flags(&self) -> Option<MsFlags> {
        if !self.is_bind() || self.flags.contains(MsFlags::MS_REMOUNT) {
            return None;
        }
        let extra = self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
        (!extra.is_empty()).then_some(MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra)
    }
}

/// A namespace the container gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsOp {
    /// A new namespace (`unshare`).
    New(CloneFlags),
    /// Join an existing one (`setns` on the path).
    Join(CloneFlags, PathBuf),
}

/// The capability sets of the process, exactly as config.json lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapsPlan {
    pub bounding: Vec<Capability>,
    pub effective: Vec<Capability>,
    pub permitted: Vec<Capability>,
    pub inheritable: Vec<Capability>,
    pub ambient: Vec<Capability>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RlimitOp {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// A device node to create in the container's `/dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOp {
    pub path: PathBuf,
    /// `c`, `b`, `u` or `p`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
}

/// The process to exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub caps: CapsPlan,
    pub rlimits: Vec<RlimitOp>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
}

/// Everything the built-in runner does for one bundle, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundlePlan {
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// runtime.json `mkdir`: host directories to create first.
    pub mkdir: Vec<PathBuf>,
    /// runtime.json `mounts`: host mounts performed before the container starts, in the
    /// init's mount namespace.
    pub prepare: Vec<MountOp>,
    pub namespaces: Vec<NsOp>,
    pub hostname: Option<String>,
    /// The container's root, absolute.
    pub rootfs: PathBuf,
    pub readonly_root: bool,
    /// `linux.rootfsPropagation` as mount flags (default: recursive slave, as runc).
    pub root_propagation: MsFlags,
    /// config.json `mounts`, in order.
    pub mounts: Vec<MountOp>,
    pub devices: Vec<DeviceOp>,
    pub sysctl: BTreeMap<String, String>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub process: ProcessPlan,
    /// Things present in the bundle that the built-in runner ignores (printed, not fatal).
    pub warnings: Vec<String>,
}

impl BundlePlan {
    /// The container id: the bundle directory's name (LinuxKit's convention).
    pub fn id(&self) -> String {
        self.bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

impl BundlePlan {
    /// Whether a new PID namespace is asked for (the runner then needs a second process).
    pub fn new_pid_ns(&self) -> bool {
        self.namespaces.iter().any(|n| matches!(n, NsOp::New(f) if *f == CloneFlags::CLONE_NEWPID))
    }
}

// ---- serde input types (only the fields the runner reads; others are ignored) ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciIn {
    process: Option<ProcessIn>,
    root: Option<RootIn>,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    mounts: Vec<MountIn>,
    #[serde(default)]
    linux: Option<LinuxIn>,
    #[serde(default)]
    hooks: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessIn {
    #[serde(default)]
    user: UserIn,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    cwd: String,
    #[serde(default)]
    capabilities: CapsIn,
    #[serde(default)]
    rlimits: Vec<RlimitIn>,
    #[serde(default)]
    no_new_privileges: bool,
    #[serde(default)]
    oom_score_adj: Option<i32>,
    #[serde(default)]
    apparmor_profile: String,
    #[serde(default)]
    selinux_label: String,
    #[serde(default)]
    terminal: bool,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIn {
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    #[serde(default)]
    additional_gids: Vec<u32>,
}

#[derive(Default, Deserialize)]
struct CapsIn {
    #[serde(default)]
    bounding: Vec<String>,
    #[serde(default)]
    effective: Vec<String>,
    #[serde(default)]
    inheritable: Vec<String>,
    #[serde(default)]
    permitted: Vec<String>,
    #[serde(default)]
    ambient: Vec<String>,
}

#[derive(Deserialize)]
struct RlimitIn {
    #[serde(rename = "type")]
    kind: String,
    hard: u64,
    soft: u64,
}

#[derive(Deserialize)]
struct RootIn {
    path: String,
    #[serde(default)]
    readonly: bool,
}

#[derive(Deserialize)]
struct MountIn {
    #[serde(default)]
    destination: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default, rename = "uidMappings")]
    uid_mappings: Vec<serde_json::Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinuxIn {
    #[serde(default)]
    uid_mappings: Vec<serde_json::Value>,
    #[serde(default)]
    sysctl: BTreeMap<String, String>,
    #[serde(default)]
    resources: Option<serde_json::Value>,
    #[serde(default)]
    namespaces: Vec<NamespaceIn>,
    #[serde(default)]
    devices: Vec<DeviceIn>,
    #[serde(default)]
    rootfs_propagation: String,
    #[serde(default)]
    masked_paths: Vec<String>,
    #[serde(default)]
    readonly_paths: Vec<String>,
    #[serde(default)]
    seccomp: Option<serde_json::Value>,
    #[serde(default)]
    mount_label: String,
}

#[derive(Deserialize)]
struct NamespaceIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceIn {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    major: u64,
    #[serde(default)]
    minor: u64,
    #[serde(default)]
    file_mode: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeIn {
    #[serde(default)]
    cgroups: Vec<String>,
    #[serde(default)]
    mounts: Vec<MountIn>,
    #[serde(default)]
    mkdir: Vec<String>,
    #[serde(default)]
    interfaces: Vec<serde_json::Value>,
    #[serde(default, rename = "bindNS")]
    bind_ns: BTreeMap<String, String>,
    #[serde(default)]
    namespace: String,
}

/// Reads `DIR/config.json` and `DIR/runtime.json` (optional) and plans the bundle.
pub fn load(bundle: &Path) -> Result<BundlePlan, PlanError> {
    let name = bundle.display().to_string();
    let read = |file: &'static str| std::fs::read(bundle.join(file));
    let config = read("config.json").map_err(|source| PlanError::Read {
        bundle: name.clone(),
        file: "config.json",
        source,
    })?;
    let runtime = match read("runtime.json") {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PlanError::Read { bundle: name, file: "runtime.json", source });
        }
    };
    let bundle = std::path::absolute(bundle).map_err(|source| PlanError::Read {
        bundle: name,
        file: "config.json",
        source,
    })?;
    plan(&bundle, &config, runtime.as_deref())
}

/// Plans a bundle from the bytes of its `config.json` and `runtime.json`.
pub fn plan(bundle: &Path, config: &[u8], runtime: Option<&[u8]>) -> Result<BundlePlan, PlanError> {
    let b = bundle.display().to_string();
    let invalid = |field: &'static str, reason: String| PlanError::Invalid {
        bundle: b.clone(),
        field,
        reason,
    };
    let bad_field = |field: &'static str, source: FieldError| PlanError::Field {
        bundle: b.clone(),
        field,
        source,
    };
    let unsupported =
        |feature: &str| PlanError::Unsupported { bundle: b.clone(), feature: feature.to_string() };

    let oci: OciIn = serde_json::from_slice(config).map_err(|e| PlanError::Json {
        bundle: b.clone(),
        file: "config.json",
        reason: e.to_string(),
    })?;
    let RuntimePlan { mkdir, prepare, mut warnings } = plan_runtime(bundle, runtime)?;

    // --- refusals: things whose absence would weaken the container ---
    if oci.hooks.as_ref().is_some_and(|h| !is_empty_json(h)) {
        return Err(unsupported("hooks"));
    }
    let linux = oci.linux.unwrap_or_default();
    if linux.seccomp.as_ref().is_some_and(|s| !is_empty_json(s)) {
        return Err(unsupported("linux.seccomp"));
    }
    if !linux.uid_mappings.is_empty() {
        return Err(unsupported("linux.uidMappings (user namespaces)"));
    }
    if !linux.mount_label.is_empty() {
        return Err(unsupported("linux.mountLabel (SELinux)"));
    }
    let process = oci.process.ok_or_else(|| invalid("process", "missing".into()))?;
    if !process.apparmor_profile.is_empty() {
        return Err(unsupported("process.apparmorProfile"));
    }
    if !process.selinux_label.is_empty() {
        return Err(unsupported("process.selinuxLabel"));
    }
    if process.terminal {
        return Err(unsupported("process.terminal"));
    }
    if process.args.is_empty() || process.args[0].is_empty() {
        return Err(invalid("process.args", "no program to run (args is empty)".into()));
    }
    if linux.resources.as_ref().is_some_and(|r| !is_empty_json(r)) {
        warnings.push("linux.resources (cgroup limits) ignored".to_string());
    }

    // --- namespaces ---
    let mut namespaces = Vec::new();
    for ns in &linux.namespaces {
        let flag = match ns.kind.as_str() {
            "pid" => CloneFlags::CLONE_NEWPID,
            "network" => CloneFlags::CLONE_NEWNET,
            "mount" => CloneFlags::CLONE_NEWNS,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            "cgroup" => CloneFlags::CLONE_NEWCGROUP,
            "user" => return Err(unsupported("user namespaces")),
            other => {
                return Err(invalid(
                    "linux.namespaces",
                    format!("unknown namespace type {other:?}"),
                ));
            }
        };
        if flag == CloneFlags::CLONE_NEWNS && !ns.path.is_empty() {
            return Err(unsupported("joining a mount namespace by path"));
        }
        namespaces.push(if ns.path.is_empty() {
            NsOp::New(flag)
        } else {
            NsOp::Join(flag, PathBuf::from(&ns.path))
        });
    }
    // The runner always works in its own mount namespace.
    if !namespaces.contains(&NsOp::New(CloneFlags::CLONE_NEWNS)) {
        namespaces.push(NsOp::New(CloneFlags::CLONE_NEWNS));
    }
    let new_uts = namespaces.contains(&NsOp::New(CloneFlags::CLONE_NEWUTS));
    let hostname = (!oci.hostname.is_empty()).then(|| oci.hostname.clone());
    if hostname.is_some() && !new_uts {
        return Err(invalid("hostname", "set without a new uts namespace".into()));
    }

    // --- root and mounts ---
    let root = oci.root.ok_or_else(|| invalid("root", "missing".into()))?;
    if root.path.is_empty() {
        return Err(invalid("root.path", "empty".into()));
    }
    let rootfs = bundle.join(&root.path);
    let mut mounts = Vec::new();
    for m in &oci.mounts {
        if !m.uid_mappings.is_empty() {
            return Err(unsupported("id-mapped mounts"));
        }
        let target = container_path(&m.destination).map_err(|r| bad_field("mounts", r))?;
        mounts.push(parse_mount(m, target).map_err(|r| bad_field("mounts", r))?);
    }
    let root_propagation = match linux.rootfs_propagation.as_str() {
        "" | "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(invalid("linux.rootfsPropagation", format!("unknown value {other:?}")));
        }
    };
    let devices = linux
        .devices
        .iter()
        .map(|d| {
            let path = container_path(&d.path).map_err(|r| bad_field("linux.devices", r))?;
            let kind = match d.kind.as_str() {
                "c" | "u" => 'c',
                "b" => 'b',
                "p" => 'p',
                other => {
                    return Err(invalid("linux.devices", format!("unknown device type {other:?}")));
                }
            };
            Ok(DeviceOp {
                path,
                kind,
                major: d.major,
                minor: d.minor,
                mode: d.file_mode.unwrap_or(0o666),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let paths = |list: &[String], field: &'static str| {
        list.iter()
            .map(|p| container_path(p).map_err(|r| bad_field(field, r)))
            .collect::<Result<Vec<_>, _>>()
    };
    let masked_paths = paths(&linux.masked_paths, "linux.maskedPaths")?;
    let readonly_paths = paths(&linux.readonly_paths, "linux.readonlyPaths")?;

    // --- process ---
    let cwd = if process.cwd.is_empty() { "/".to_string() } else { process.cwd.clone() };
    let cwd = container_path(&cwd).map_err(|r| bad_field("process.cwd", r))?;
    let caps_list = |list: &[String], field: &'static str| {
        list.iter()
            .map(|c| parse_capability(c).map_err(|r| bad_field(field, r)))
            .collect::<Result<Vec<_>, _>>()
    };
    let c = &process.capabilities;
    let caps = CapsPlan {
        bounding: caps_list(&c.bounding, "process.capabilities.bounding")?,
        effective: caps_list(&c.effective, "process.capabilities.effective")?,
        permitted: caps_list(&c.permitted, "process.capabilities.permitted")?,
        inheritable: caps_list(&c.inheritable, "process.capabilities.inheritable")?,
        ambient: caps_list(&c.ambient, "process.capabilities.ambient")?,
    };
    if let Some(cap) = caps.effective.iter().find(|c| !caps.permitted.contains(c)) {
        return Err(invalid(
            "process.capabilities",
            format!("{cap} is effective but not permitted"),
        ));
    }
    if let Some(cap) =
        caps.ambient.iter().find(|c| !caps.permitted.contains(c) || !caps.inheritable.contains(c))
    {
        return Err(invalid(
            "process.capabilities",
            format!("{cap} is ambient but not both permitted and inheritable"),
        ));
    }
    let rlimits = process
        .rlimits
        .iter()
        .map(|r| {
            let resource = parse_rlimit(&r.kind).map_err(|e| bad_field("process.rlimits", e))?;
            if r.soft > r.hard {
                return Err(invalid(
                    "process.rlimits",
                    format!("{}: soft limit above hard", r.kind),
                ));
            }
            Ok(RlimitOp { resource, soft: r.soft, hard: r.hard })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for e in &process.env {
        if !e.contains('=') {
            return Err(invalid("process.env", format!("{e:?} is not NAME=VALUE")));
        }
    }
    if process.args.iter().chain(&process.env).any(|s| s.contains('\0')) {
        return Err(invalid("process", "args or env contain a NUL byte".into()));
    }

    Ok(BundlePlan {
        bundle: bundle.to_path_buf(),
        mkdir,
        prepare,
        namespaces,
        hostname,
        rootfs,
        readonly_root: root.readonly,
        root_propagation,
        mounts,
        devices,
        sysctl: linux.sysctl,
        masked_paths,
        readonly_paths,
        process: ProcessPlan {
            args: process.args,
            env: process.env,
            cwd,
            uid: process.user.uid,
            gid: process.user.gid,
            additional_gids: process.user.additional_gids,
            caps,
            rlimits,
            no_new_privileges: process.no_new_privileges,
            oom_score_adj: process.oom_score_adj,
        },
        warnings,
    })
}

/// What `runtime.json` asks for before the container starts (also done before `runc`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimePlan {
    /// Host directories to create first.
    pub mkdir: Vec<PathBuf>,
    /// Host mounts, in the init's mount namespace.
    pub prepare: Vec<MountOp>,
    /// Fields the init does not act on (printed, not fatal).
    pub warnings: Vec<String>,
}

/// Reads `DIR/runtime.json` (a missing file plans nothing) without looking at config.json:
/// what the init does before handing a bundle to runc.
pub fn load_runtime(bundle: &Path) -> Result<RuntimePlan, PlanError> {
    match std::fs::read(bundle.join("runtime.json")) {
        Ok(b) => plan_runtime(bundle, Some(&b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => plan_runtime(bundle, None),
        Err(source) => Err(PlanError::Read {
            bundle: bundle.display().to_string(),
            file: "runtime.json",
            source,
        }),
    }
}

/// Plans the bytes of a `runtime.json`.
pub fn plan_runtime(bundle: &Path, runtime: Option<&[u8]>) -> Result<RuntimePlan, PlanError> {
    let b = bundle.display().to_string();
    let bad_field = |field: &'static str, source: FieldError| PlanError::Field {
        bundle: b.clone(),
        field,
        source,
    };
    let rt: RuntimeIn = match runtime {
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| PlanError::Json {
            bundle: b.clone(),
            file: "runtime.json",
            reason: e.to_string(),
        })?,
        None => RuntimeIn::default(),
    };
    let mut warnings = Vec::new();
    if !rt.cgroups.is_empty() {
        warnings.push(format!("runtime.json cgroups {:?} ignored", rt.cgroups));
    }
    if !rt.interfaces.is_empty() {
        warnings.push("runtime.json interfaces ignored".to_string());
    }
    if rt.bind_ns.values().any(|v| !v.is_empty()) {
        warnings.push("runtime.json bindNS ignored".to_string());
    }
    if !rt.namespace.is_empty() {
        warnings.push(format!("runtime.json namespace {:?} ignored", rt.namespace));
    }
    let mkdir = rt
        .mkdir
        .iter()
        .map(|d| host_path(d).map_err(|r| bad_field("runtime.json mkdir", r)))
        .collect::<Result<Vec<_>, _>>()?;
    let prepare = rt
        .mounts
        .iter()
        .map(|m| {
            let target =
                host_path(&m.destination).map_err(|r| bad_field("runtime.json mounts", r))?;
            parse_mount(m, target).map_err(|r| bad_field("runtime.json mounts", r))
        })
        .collect::<Result<Vec<_>, _>>()?;

    Ok(RuntimePlan { mkdir, prepare, warnings })
}

fn is_empty_json(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Object(m) => m.values().all(is_empty_json),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// An absolute host path from runtime.json, without `..`.
fn host_path(p: &str) -> Result<PathBuf, FieldError> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(FieldError::NotAbsolute(p.to_string()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(FieldError::DotDot(p.to_string()));
    }
    Ok(path.to_path_buf())
}

/// A path inside the container: relative ones are taken from `/`; `..` is refused.
fn container_path(p: &str) -> Result<PathBuf, FieldError> {
    if p.is_empty() {
        return Err(FieldError::EmptyPath);
    }
    let path = Path::new(p);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(FieldError::DotDot(p.to_string()));
    }
    Ok(Path::new("/").join(path))
}

/// Parses a mount entry's options as runc does: known flags set or clear `MsFlags`,
/// propagation keywords become separate calls, anything else is filesystem data.
fn parse_mount(m: &MountIn, target: PathBuf) -> Result<MountOp, FieldError> {
    let mut flags = MsFlags::empty();
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    for opt in &m.options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                let rec = if opt.starts_with('r') { MsFlags::MS_REC } else { MsFlags::empty() };
                propagation.push(base | rec);
                continue;
            }
            "" => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags |= set;
        flags -= clear;
    }
    if m.kind.is_empty()
        && !flags.intersects(MsFlags::MS_BIND | MsFlags::MS_REMOUNT)
        && !data.is_empty()
    {
        return Err(FieldError::OptionsWithoutType(m.destination.clone()));
    }
    if flags.contains(MsFlags::MS_BIND) && m.source.is_empty() {
        return Err(FieldError::BindWithoutSource(m.destination.clone()));
    }
    Ok(MountOp {
        source: m.source.clone(),
        target,
        fstype: if m.kind == "bind" { String::new() } else { m.kind.clone() },
        flags: if m.kind == "bind" { flags | MsFlags::MS_BIND } else { flags },
        propagation,
        data: data.join(","),
    })
}

fn parse_capability(name: &str) -> Result<Capability, FieldError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    Capability::from_str(&full).map_err(|_| FieldError::UnknownCapability(name.to_string()))
}

fn parse_rlimit(name: &str) -> Result<Resource, FieldError> {
    Ok(match name {
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        other => return Err(FieldError::UnknownRlimit(other.to_string())),
    })
}

#[cfg(test)]
mod tests;
