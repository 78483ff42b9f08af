//! OCI runtime bundles for `onboot`, `onshutdown` and `services` containers, as LinuxKit
//! writes them: `config.json` (the OCI runtime config) and `runtime.json` (what LinuxKit's
//! init does around the container: mounts, cgroups, interfaces, namespace binds).
//!
//! This is a pure translation of LinuxKit's `ConfigToOCI` and the runtime part of its
//! `ImageBundle` (`src/cmd/linuxkit/moby/config.go`, `moby/build/image.go`). Settings come
//! from three places, later ones winning field by field: the image config (command, env,
//! working dir), the image's `org.mobyproject.config` label, then the spec entry.
//! LinuxKit semantics worth knowing, kept on purpose:
//! - `env` and `command` *replace* the image's values; they are not merged.
//! - No capabilities unless some are named; `all` and `none` are keywords.
//! - Network, IPC, UTS and user namespaces are the host's unless asked for; PID, mount and
//!   cgroup namespaces are new unless `pid: host`.
//!
//! Output is deterministic: fixed field order, maps sorted, mounts sorted by destination,
//! 4-space indentation as LinuxKit's `json.MarshalIndent`, plus a trailing newline.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::image::ImageConfiguration;
use serde::Serialize;

use crate::spec::{
    self, Container, ContainerConfig, DeviceCgroup, Id, IdMapping, Interface, Mount, Resources,
    Role,
};

/// Why a bundle config could not be generated. Every variant names the container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The image's `org.mobyproject.config` label is not a valid container config.
    #[error("container {container:?}: image label org.mobyproject.config is invalid: {reason}")]
    Label { container: String, reason: String },
    /// A field of the spec entry (or the label) cannot be translated.
    #[error("container {container:?}: {field}: {reason}")]
    Invalid { container: String, field: &'static str, reason: String },
}

/// The OCI runtime spec version written to `ociVersion`.
pub const OCI_VERSION: &str = "1.0.2";

/// The label through which an image ships its own LinuxKit container settings.
pub const LABEL: &str = "org.mobyproject.config";

/// Every capability LinuxKit knows, in kernel number order (what `all` expands to).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const RLIMITS: [&str; 16] = [
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// The OCI runtime config (`config.json`): the subset of the runtime spec LinuxKit sets,
/// with the runtime spec's JSON names and field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciConfig {
    pub oci_version: String,
    pub process: Process,
    pub root: Root,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub linux: Linux,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub user: User,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Capabilities,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_new_privileges: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounding: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effective: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inheritable: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permitted: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Root {
    pub path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    pub resources: Resources,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroups_path: String,
    pub namespaces: Vec<Namespace>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<LinuxDevice>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rootfs_propagation: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Namespace {
    /// `network`, `ipc`, `uts`, `pid`, `user`, `mount` or `cgroup`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Join this namespace instead of creating one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxDevice {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
}

/// LinuxKit's `runtime.json` contents, every field resolved (LinuxKit writes them all).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub cgroups: Vec<String>,
    pub mounts: Vec<Mount>,
    pub mkdir: Vec<String>,
    pub interfaces: Vec<Interface>,
    #[serde(rename = "bindNS")]
    pub bind_ns: BindNs,
    pub namespace: String,
}

/// Namespace bind paths; empty means "do not bind".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BindNs {
    pub cgroup: String,
    pub ipc: String,
    pub mnt: String,
    pub net: String,
    pub pid: String,
    pub user: String,
    pub uts: String,
}

/// Both files of a bundle, before the rootfs mounts are added to the runtime part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleConfig {
    pub oci: OciConfig,
    pub runtime: RuntimeConfig,
}

/// Where LinuxKit puts a container's bundle: `containers/onboot/000-name`,
/// `containers/onshutdown/000-name`, `containers/services/name`. `None` for roles that are
/// not containers.
pub fn bundle_dir(role: Role, index: usize, name: &str) -> Option<String> {
    match role {
        Role::Onboot | Role::Onshutdown => {
            Some(format!("containers/{}/{index:03}-{name}", role.section()))
        }
        Role::Service => Some(format!("containers/services/{name}")),
        Role::Kernel | Role::Init => None,
    }
}

/// The directory (inside the bundle) the image is unpacked into: `rootfs` for a read-only
/// container, else `lower`, the lower layer of the overlay the init mounts at `rootfs`.
pub fn rootfs_extract_dir(readonly: bool) -> &'static str {
    if readonly { "rootfs" } else { "lower" }
}

/// Translates an image config and a spec entry into the bundle's config, as LinuxKit's
/// `ConfigToOCI`. `ids` resolves `uid`/`gid` names (see [`spec::Spec::id_map`]).
pub fn runtime_config(
    image: &ImageConfiguration,
    container: &Container,
    ids: &BTreeMap<String, u32>,
) -> Result<BundleConfig, BundleError> {
    let name = container.name.as_str();
    let invalid = |field: &'static str, reason: String| BundleError::Invalid {
        container: name.to_string(),
        field,
        reason,
    };
    let img = image.config().as_ref();
    let label = match img.and_then(|c| c.labels().as_ref()).and_then(|l| l.get(LABEL)) {
        Some(text) if !text.is_empty() => ContainerConfig::from_label(text)
            .map_err(|reason| BundleError::Label { container: name.to_string(), reason })?,
        _ => ContainerConfig::default(),
    };
    let spec = container.config();

    // Command, env and cwd may come from the image, as Dockerfiles usually set them.
    let image_args: Vec<String> = img
        .map(|c| {
            let mut a = c.entrypoint().clone().unwrap_or_default();
            a.extend(c.cmd().clone().unwrap_or_default());
            a
        })
        .unwrap_or_default();
    let args = pick(&label.command, &spec.command).cloned().unwrap_or(image_args);
    let image_env = img.and_then(|c| c.env().clone()).unwrap_or_default();
    let env = pick(&label.env, &spec.env).cloned().unwrap_or(image_env);
    let image_cwd = img.and_then(|c| c.working_dir().clone()).unwrap_or_default();
    let cwd = pick_str(&label.cwd, &spec.cwd)
        .map(str::to_string)
        .or(Some(image_cwd).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "/".to_string());

    let readonly = spec.readonly.or(label.readonly).unwrap_or(false);

    // Default mounts, as Docker's (without /dev/shm and /dev/mqueue), keyed by destination.
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut dev_opts = strs(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
    let mut sys_opts = strs(&["nosuid", "noexec", "nodev"]);
    if readonly {
        dev_opts.push("ro".into());
        sys_opts.push("ro".into());
    }
    let simple = |dest: &str, kind: &str, options: Vec<String>| Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: kind.into(),
        options,
        ..Mount::default()
    };
    let mut mounts: BTreeMap<String, Mount> = BTreeMap::new();
    for m in [
        simple("/proc", "proc", strs(&["nosuid", "nodev", "noexec", "relatime"])),
        simple("/dev", "tmpfs", dev_opts),
        simple(
            "/dev/pts",
            "devpts",
            strs(&["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
        ),
        simple("/sys", "sysfs", sys_opts),
        simple("/sys/fs/cgroup", "cgroup", strs(&["nosuid", "noexec", "nodev", "relatime", "ro"])),
    ] {
        mounts.insert(m.destination.clone(), m);
    }
    for t in pick(&label.tmpfs, &spec.tmpfs).map(Vec::as_slice).unwrap_or_default() {
        let parts: Vec<&str> = t.split(':').collect();
        let (dest, opts) = match parts.as_slice() {
            [d] => (*d, Vec::new()),
            [d, o] => (*d, o.split(',').map(str::to_string).collect()),
            _ => {
                return Err(invalid("tmpfs", format!("cannot parse {t:?}: too many ':'")));
            }
        };
        mounts.insert(dest.to_string(), simple(dest, "tmpfs", opts));
    }
    let binds = match &spec.binds {
        Some(b) => b.clone(),
        None => merge_unique(label.binds.as_deref(), spec.binds_add.as_deref()),
    };
    for b in &binds {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dest, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, strs(&["rw", "rbind", "rshared"])),
            [s, d, o] => {
                let mut opts: Vec<String> = o.split(',').map(str::to_string).collect();
                opts.push("rbind".into());
                (*s, *d, opts)
            }
            [_] => return Err(invalid("binds", format!("cannot parse {b:?}: missing ':'"))),
            _ => {
                return Err(invalid("binds", format!("cannot parse {b:?}: too many ':'")));
            }
        };
        let m = Mount {
            destination: dest.into(),
            kind: "bind".into(),
            source: src.into(),
            options: opts,
            ..Mount::default()
        };
        mounts.insert(dest.to_string(), m);
    }
    for m in pick(&label.mounts, &spec.mounts).map(Vec::as_slice).unwrap_or_default() {
        let mut m = m.clone();
        if m.kind.is_empty()
            && matches!(m.source.as_str(), "mqueue" | "devpts" | "proc" | "sysfs" | "cgroup")
        {
            m.kind = m.source.clone();
        }
        if m.kind.is_empty() && m.destination == "/dev" {
            m.kind = "tmpfs".into();
        }
        if m.kind.is_empty() {
            return Err(invalid(
                "mounts",
                format!("mount for destination {:?} is missing type", m.destination),
            ));
        }
        if m.source.is_empty() {
            m.source = m.kind.clone();
        }
        if m.destination.is_empty() {
            m.destination = match m.kind.as_str() {
                "proc" => "/proc",
                "devpts" => "/dev/pts",
                "sysfs" => "/sys",
                "cgroup" => "/sys/fs/cgroup",
                "mqueue" => "/dev/mqueue",
                _ => {
                    return Err(invalid(
                        "mounts",
                        format!("mount of type {:?} is missing destination", m.kind),
                    ));
                }
            }
            .into();
        }
        mounts.insert(m.destination.clone(), m);
    }

    // Namespaces: "host"/"root" shares the host's, "new" (or "none" for net) makes one,
    // anything else is a path to join.
    let mut namespaces = Vec::new();
    let mut ns = |kind: &'static str, value: &str, extra_new: Option<&str>| {
        if value == "host" || value == "root" {
            return;
        }
        let path =
            if value == "new" || value.is_empty() || Some(value) == extra_new { "" } else { value };
        namespaces.push(Namespace { kind, path: path.to_string() });
    };
    ns("network", pick_str(&label.net, &spec.net).unwrap_or("root"), Some("none"));
    ns("ipc", pick_str(&label.ipc, &spec.ipc).unwrap_or("root"), None);
    ns("uts", pick_str(&label.uts, &spec.uts).unwrap_or("root"), None);
    ns("pid", pick_str(&label.pid, &spec.pid).unwrap_or(""), None);
    ns("user", pick_str(&label.userns, &spec.userns).unwrap_or("root"), None);
    namespaces.push(Namespace { kind: "mount", path: String::new() });
    namespaces.push(Namespace { kind: "cgroup", path: String::new() });

    // Capabilities.
    let caps = match &spec.capabilities {
        Some(c) => c.clone(),
        None => merge_unique(label.capabilities.as_deref(), spec.capabilities_add.as_deref()),
    };
    let caps = expand_caps(caps).map_err(|r| invalid("capabilities", r))?;
    let ambient = pick(&label.ambient, &spec.ambient).cloned().unwrap_or_default();
    let ambient = expand_caps(ambient).map_err(|r| invalid("ambient", r))?;
    let bounding: Vec<String> =
        caps.iter().chain(ambient.iter()).cloned().collect::<BTreeSet<_>>().into_iter().collect();

    let mut rlimits = Vec::new();
    for r in pick(&label.rlimits, &spec.rlimits).map(Vec::as_slice).unwrap_or_default() {
        rlimits.push(parse_rlimit(r).map_err(|reason| invalid("rlimits", reason))?);
    }

    let uid = numeric_id(pick(&label.uid, &spec.uid), ids).map_err(|r| invalid("uid", r))?;
    let gid = numeric_id(pick(&label.gid, &spec.gid), ids).map_err(|r| invalid("gid", r))?;
    let mut additional_gids = Vec::new();
    for g in
        pick(&label.additional_gids, &spec.additional_gids).map(Vec::as_slice).unwrap_or_default()
    {
        additional_gids.push(numeric_id(Some(g), ids).map_err(|r| invalid("additionalGids", r))?);
    }

    let mut resources = pick(&label.resources, &spec.resources).cloned().unwrap_or_default();
    let mut devices = Vec::new();
    for d in pick(&label.devices, &spec.devices).map(Vec::as_slice).unwrap_or_default() {
        if d.path == "all" {
            // A whole class of devices on the cgroup allow list, no node created.
            resources.devices.push(DeviceCgroup {
                allow: true,
                kind: Some(d.kind.clone()),
                access: Some("rwm".into()),
                ..DeviceCgroup::default()
            });
            continue;
        }
        let mode_text = d.mode.as_deref().unwrap_or("");
        let file_mode =
            u32::from_str_radix(mode_text, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
                invalid(
                    "devices",
                    format!("device {:?}: mode {mode_text:?} is not an octal value", d.path),
                )
            })?;
        devices.push(LinuxDevice {
            path: d.path.clone(),
            kind: d.kind.clone(),
            major: d.major,
            minor: d.minor,
            file_mode,
        });
        resources.devices.push(DeviceCgroup {
            allow: true,
            kind: Some(d.kind.clone()),
            major: Some(d.major),
            minor: Some(d.minor),
            access: Some("rwm".into()),
        });
    }

    let oci = OciConfig {
        oci_version: OCI_VERSION.to_string(),
        process: Process {
            user: User { uid, gid, additional_gids },
            args,
            env,
            cwd,
            capabilities: Capabilities {
                bounding: bounding.clone(),
                effective: caps,
                inheritable: bounding.clone(),
                permitted: bounding,
                ambient,
            },
            rlimits,
            no_new_privileges: spec.no_new_privileges.or(label.no_new_privileges).unwrap_or(false),
            oom_score_adj: spec.oom_score_adj.or(label.oom_score_adj),
        },
        root: Root { path: "rootfs".to_string(), readonly },
        hostname: pick_str(&label.hostname, &spec.hostname).unwrap_or("").to_string(),
        mounts: mounts.into_values().collect(),
        annotations: pick(&label.annotations, &spec.annotations).cloned().unwrap_or_default(),
        linux: Linux {
            uid_mappings: pick(&label.uid_mappings, &spec.uid_mappings)
                .cloned()
                .unwrap_or_default(),
            gid_mappings: pick(&label.gid_mappings, &spec.gid_mappings)
                .cloned()
                .unwrap_or_default(),
            sysctl: pick(&label.sysctl, &spec.sysctl).cloned().unwrap_or_default(),
            resources,
            cgroups_path: pick_str(&label.cgroups_path, &spec.cgroups_path)
                .unwrap_or("")
                .to_string(),
            namespaces,
            devices,
            rootfs_propagation: pick_str(&label.rootfs_propagation, &spec.rootfs_propagation)
                .unwrap_or("")
                .to_string(),
            masked_paths: pick(&label.masked_paths, &spec.masked_paths)
                .cloned()
                .unwrap_or_default(),
            readonly_paths: pick(&label.readonly_paths, &spec.readonly_paths)
                .cloned()
                .unwrap_or_default(),
        },
    };
    Ok(BundleConfig { oci, runtime: merge_runtime(label.runtime.as_ref(), spec.runtime.as_ref()) })
}

/// The spec entry's value if set, else the label's (LinuxKit's `assign*` helpers).
fn pick<'a, T>(label: &'a Option<T>, spec: &'a Option<T>) -> Option<&'a T> {
    spec.as_ref().or(label.as_ref())
}

/// As [`pick`], with an empty string meaning "not set".
fn pick_str<'a>(label: &'a Option<String>, spec: &'a Option<String>) -> Option<&'a str> {
    let set = |s: &'a Option<String>| s.as_deref().filter(|s| !s.is_empty());
    set(spec).or(set(label))
}

/// `a` then the items of `b` not already present.
fn merge_unique(a: Option<&[String]>, b: Option<&[String]>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in a.unwrap_or_default().iter().chain(b.unwrap_or_default()) {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fn expand_caps(caps: Vec<String>) -> Result<Vec<String>, String> {
    if let [one] = caps.as_slice() {
        match one.to_ascii_lowercase().as_str() {
            "none" => return Ok(Vec::new()),
            "all" => return Ok(ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect()),
            _ => {}
        }
    }
    let mut out: Vec<String> = Vec::new();
    for c in caps {
        if !ALL_CAPABILITIES.contains(&c.as_str()) {
            return Err(format!("unknown capability {c:?} (names look like CAP_NET_ADMIN)"));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parses LinuxKit's `name,soft,hard` (e.g. `nofile,1024,unlimited`).
fn parse_rlimit(s: &str) -> Result<Rlimit, String> {
    let parts: Vec<&str> = s.splitn(3, ',').collect();
    let [name, soft, hard] = parts.as_slice() else {
        return Err(format!("cannot parse {s:?}: expected \"name,soft,hard\""));
    };
    let mut kind = name.trim().to_ascii_uppercase();
    if !kind.starts_with("RLIMIT_") {
        kind.insert_str(0, "RLIMIT_");
    }
    if !RLIMITS.contains(&kind.as_str()) {
        return Err(format!("{s:?}: unknown limit {:?}", name.trim()));
    }
    let value = |v: &str| -> Result<u64, String> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("unlimited") {
            return Ok(u64::MAX);
        }
        v.parse::<u64>().map_err(|_| format!("{s:?}: {v:?} is not a number or \"unlimited\""))
    };
    Ok(Rlimit { kind, soft: value(soft)?, hard: value(hard)? })
}

fn numeric_id(id: Option<&Id>, ids: &BTreeMap<String, u32>) -> Result<u32, String> {
    match id {
        None => Ok(0),
        Some(Id::Num(n)) => Ok(*n),
        Some(Id::Name(n)) if n.is_empty() || n == "root" => Ok(0),
        Some(Id::Name(n)) => ids.get(n).copied().ok_or_else(|| {
            format!("cannot find id {n:?} (a number, \"root\" or a container name)")
        }),
    }
}

fn merge_runtime(label: Option<&spec::Runtime>, spec: Option<&spec::Runtime>) -> RuntimeConfig {
    let empty = spec::Runtime::default();
    let (l, s) = (label.unwrap_or(&empty), spec.unwrap_or(&empty));
    let ns = |l: &Option<String>, s: &Option<String>| {
        s.clone().or_else(|| l.clone()).unwrap_or_default()
    };
    RuntimeConfig {
        cgroups: pick(&l.cgroups, &s.cgroups).cloned().unwrap_or_default(),
        mounts: pick(&l.mounts, &s.mounts).cloned().unwrap_or_default(),
        mkdir: pick(&l.mkdir, &s.mkdir).cloned().unwrap_or_default(),
        interfaces: pick(&l.interfaces, &s.interfaces).cloned().unwrap_or_default(),
        bind_ns: BindNs {
            cgroup: ns(&l.bind_ns.cgroup, &s.bind_ns.cgroup),
            ipc: ns(&l.bind_ns.ipc, &s.bind_ns.ipc),
            mnt: ns(&l.bind_ns.mnt, &s.bind_ns.mnt),
            net: ns(&l.bind_ns.net, &s.bind_ns.net),
            pid: ns(&l.bind_ns.pid, &s.bind_ns.pid),
            user: ns(&l.bind_ns.user, &s.bind_ns.user),
            uts: ns(&l.bind_ns.uts, &s.bind_ns.uts),
        },
        namespace: pick_str(&l.namespace, &s.namespace).unwrap_or("").to_string(),
    }
}

/// `config.json` bytes: 4-space indented JSON in a fixed order, with a trailing newline.
pub fn render_config_json(config: &OciConfig) -> Vec<u8> {
    to_json(config)
}

/// `runtime.json` bytes for a bundle at `bundle_dir` (see [`bundle_dir`]), with the
/// rootfs mounts LinuxKit's `ImageBundle` prepends: a tmpfs-backed overlay over `lower/`
/// for a writable container, a self bind mount of `rootfs/` for a read-only one.
pub fn render_runtime_json(runtime: &RuntimeConfig, bundle_dir: &str, readonly: bool) -> Vec<u8> {
    let mut rt = runtime.clone();
    let root = format!("/{bundle_dir}/{}", rootfs_extract_dir(readonly));
    let rootfs = format!("/{bundle_dir}/rootfs");
    let mut first: Vec<Mount> = if readonly {
        vec![Mount {
            source: root,
            destination: rootfs,
            options: vec!["bind".into()],
            ..Mount::default()
        }]
    } else {
        let tmp = format!("/{bundle_dir}/tmp");
        vec![
            Mount {
                source: "tmpfs".into(),
                kind: "tmpfs".into(),
                destination: tmp.clone(),
                ..Mount::default()
            },
            // Remounted private: nothing else should see the temporary layers.
            Mount {
                destination: tmp.clone(),
                options: vec!["remount".into(), "private".into()],
                ..Mount::default()
            },
            Mount {
                source: "overlay".into(),
                kind: "overlay".into(),
                destination: rootfs,
                options: vec![
                    format!("lowerdir={root}"),
                    format!("upperdir={tmp}/upper"),
                    format!("workdir={tmp}/work"),
                ],
                ..Mount::default()
            },
        ]
    };
    first.append(&mut rt.mounts);
    rt.mounts = first;
    to_json(&rt)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    // These types hold only strings, integers, bools, sequences and string-keyed maps, so
    // serializing them into a Vec cannot fail.
    value.serialize(&mut ser).expect("serializing a bundle config to memory cannot fail");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn image(
        entrypoint: &[&str],
        cmd: &[&str],
        env: &[&str],
        label: Option<&str>,
    ) -> ImageConfiguration {
        let mut cfg = json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {
                "Entrypoint": entrypoint,
                "Cmd": cmd,
                "Env": env,
                "WorkingDir": "/srv",
            }
        });
        if let Some(l) = label {
            cfg["config"]["Labels"] = json!({ LABEL: l });
        }
        serde_json::from_value(cfg).unwrap()
    }

    fn container(yaml: &str) -> Container {
        let spec = spec::parse("t.yml", yaml).unwrap();
        spec.services[0].clone()
    }

    fn value(cfg: &OciConfig) -> Value {
        serde_json::from_slice(&render_config_json(cfg)).unwrap()
    }

    #[test]
    fn spec_fields_reach_the_config() {
        let img = image(&["/bin/entry"], &["--flag"], &["PATH=/usr/bin", "A=1"], None);
        let c = container(
            "services:\n  - name: web\n    image: nginx\n    command: [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]\n    env: [\"A=2\", \"B=3\"]\n    binds: [\"/var/log:/var/log\", \"/etc/ssl:/etc/ssl:ro\"]\n    capabilities: [CAP_NET_BIND_SERVICE, CAP_CHOWN]\n    net: host\n    hostname: web1\n    readonly: true\n    sysctl: {net.core.somaxconn: \"1024\"}\n    rlimits: [\"nofile,1024,unlimited\"]\n    annotations: {b: \"2\", a: \"1\"}\n    oomScoreAdj: -100\n    noNewPrivileges: true\n",
        );
        let b = runtime_config(&img, &c, &BTreeMap::new()).unwrap();
        let v = value(&b.oci);
        assert_eq!(v["ociVersion"], "1.0.2");
        assert_eq!(v["process"]["args"], json!(["/usr/sbin/nginx", "-g", "daemon off;"]));
        assert_eq!(
            v["process"]["env"],
            json!(["A=2", "B=3"]),
            "spec env replaces the image's, as in LinuxKit"
        );
        assert_eq!(v["process"]["cwd"], "/srv");
        assert_eq!(v["process"]["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(
            v["process"]["capabilities"]["effective"],
            json!(["CAP_NET_BIND_SERVICE", "CAP_CHOWN"])
        );
        assert_eq!(
            v["process"]["capabilities"]["bounding"],
            json!(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(
            v["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "hard": u64::MAX, "soft": 1024}])
        );
        assert_eq!(v["process"]["oomScoreAdj"], -100);
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
        assert_eq!(v["hostname"], "web1");
        assert_eq!(v["annotations"], json!({"a": "1", "b": "2"}));
        assert_eq!(v["linux"]["sysctl"], json!({"net.core.somaxconn": "1024"}));
        let kinds: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["pid", "mount", "cgroup"],
            "net: host shares the host network namespace"
        );
        let mounts = v["mounts"].as_array().unwrap();
        let dests: Vec<&str> = mounts.iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(
            dests,
            ["/dev", "/dev/pts", "/etc/ssl", "/proc", "/sys", "/sys/fs/cgroup", "/var/log"]
        );
        let ssl = &mounts[2];
        assert_eq!(
            ssl,
            &json!({"destination": "/etc/ssl", "type": "bind", "source": "/etc/ssl", "options": ["ro", "rbind"]})
        );
        assert_eq!(mounts[6]["options"], json!(["rw", "rbind", "rshared"]));
        assert_eq!(
            mounts[0]["options"],
            json!(["nosuid", "strictatime", "mode=755", "size=65536k", "ro"])
        );
        // The output is a valid OCI runtime config.
        let parsed: oci_spec::runtime::Spec =
            serde_json::from_slice(&render_config_json(&b.oci)).unwrap();
        assert_eq!(parsed.hostname().as_deref(), Some("web1"));
    }

    #[test]
    fn image_defaults_and_label() {
        let label =
            r#"{"binds":["/dev:/dev"],"capabilities":["CAP_SYS_ADMIN"],"net":"new","pid":"host"}"#;
        let img = image(&["/sbin/getty"], &["-l"], &["PATH=/bin", "TERM=linux"], Some(label));
        let c = container(
            "services:\n  - name: getty\n    image: linuxkit/getty:v1\n    binds.add: [\"/etc/profile:/etc/profile\"]\n    capabilities.add: [CAP_SYS_TTY_CONFIG]\n    env: [\"INSECURE=true\"]\n",
        );
        let b = runtime_config(&img, &c, &BTreeMap::new()).unwrap();
        let o = &b.oci;
        assert_eq!(o.process.args, ["/sbin/getty", "-l"]);
        assert_eq!(o.process.env, ["INSECURE=true"]);
        assert_eq!(o.process.capabilities.effective, ["CAP_SYS_ADMIN", "CAP_SYS_TTY_CONFIG"]);
        let binds: Vec<&str> =
            o.mounts.iter().filter(|m| m.kind == "bind").map(|m| m.destination.as_str()).collect();
        assert_eq!(binds, ["/dev", "/etc/profile"]);
        let kinds: Vec<&str> = o.linux.namespaces.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, ["network", "mount", "cgroup"]);
        assert!(!o.root.readonly);
    }

    #[test]
    fn no_command_anywhere_uses_entrypoint_and_cmd() {
        let img = image(&["/a"], &["b", "c"], &[], None);
        let c = container(
            "services:\n  - name: x\n    image: alpine\n    capabilities: [all]\n    uid: x\n    gid: 7\n",
        );
        let mut ids = BTreeMap::new();
        ids.insert("x".to_string(), 100);
        let b = runtime_config(&img, &c, &ids).unwrap();
        assert_eq!(b.oci.process.args, ["/a", "b", "c"]);
        assert_eq!(b.oci.process.user.uid, 100);
        assert_eq!(b.oci.process.user.gid, 7);
        assert_eq!(b.oci.process.capabilities.effective.len(), ALL_CAPABILITIES.len());
    }

    #[test]
    fn output_is_byte_identical() {
        let img = image(&["/e"], &[], &["Z=1", "A=2", "M=3"], None);
        let c = container(
            "services:\n  - name: x\n    image: alpine\n    annotations: {z: \"1\", a: \"2\"}\n    sysctl: {b: \"1\", a: \"2\"}\n    tmpfs: [\"/run:size=1m\", \"/tmp\"]\n",
        );
        let a = render_config_json(&runtime_config(&img, &c, &BTreeMap::new()).unwrap().oci);
        let b = render_config_json(&runtime_config(&img, &c, &BTreeMap::new()).unwrap().oci);
        assert_eq!(a, b);
        assert!(a.ends_with(b"}\n"));
        let text = String::from_utf8(a).unwrap();
        assert!(text.contains("\"env\": [\n            \"Z=1\",\n            \"A=2\",\n            \"M=3\"\n        ]"), "{text}");
        assert!(text.find("\"a\": \"2\"").unwrap() < text.find("\"z\": \"1\"").unwrap());
    }

    #[test]
    fn bad_rlimit_names_the_container() {
        let img = image(&[], &[], &[], None);
        for bad in ["nofile,1024", "nofiles,1,1", "nofile,lots,1"] {
            let c = container(&format!(
                "services:\n  - name: sshd\n    image: alpine\n    rlimits: [\"{bad}\"]\n"
            ));
            let e = runtime_config(&img, &c, &BTreeMap::new()).unwrap_err().to_string();
            assert!(e.starts_with("container \"sshd\": rlimits: "), "{e}");
        }
    }

    #[test]
    fn other_bad_fields() {
        let img = image(&[], &[], &[], None);
        let cases = [
            ("capabilities: [CAP_FLY]", "unknown capability"),
            ("binds: [\"/a\"]", "missing ':'"),
            ("binds: [\"/a:/b:ro:x\"]", "too many ':'"),
            ("uid: nobody", "cannot find id"),
            (
                "devices: [{path: /dev/x, type: c, major: 1, minor: 3, mode: \"9\"}]",
                "not an octal value",
            ),
            ("mounts: [{destination: /x}]", "missing type"),
        ];
        for (field, want) in cases {
            let c = container(&format!("services:\n  - name: s\n    image: alpine\n    {field}\n"));
            let e = runtime_config(&img, &c, &BTreeMap::new()).unwrap_err().to_string();
            assert!(e.contains(want), "{field}: {e}");
        }
        let img = image(&[], &[], &[], Some("{\"name\": \"x\"}"));
        let c = container("services:\n  - name: s\n    image: alpine\n");
        let e = runtime_config(&img, &c, &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("org.mobyproject.config is invalid"), "{e}");
    }

    #[test]
    fn devices_become_nodes_and_cgroup_rules() {
        let img = image(&[], &[], &[], None);
        let c = container(
            "services:\n  - name: s\n    image: alpine\n    devices:\n      - {path: /dev/null, type: c, major: 1, minor: 3, mode: \"0666\"}\n      - {path: all, type: b}\n",
        );
        let o = runtime_config(&img, &c, &BTreeMap::new()).unwrap().oci;
        assert_eq!(
            o.linux.devices,
            [LinuxDevice {
                path: "/dev/null".into(),
                kind: "c".into(),
                major: 1,
                minor: 3,
                file_mode: 0o666
            }]
        );
        assert_eq!(o.linux.resources.devices.len(), 2);
    }

    #[test]
    fn runtime_json() {
        let img = image(&[], &[], &[], None);
        let c = container(
            "services:\n  - name: s\n    image: alpine\n    runtime:\n      mkdir: [/var/lib/s]\n      bindNS: {net: /run/netns/s}\n      mounts: [{type: bind, source: /a, destination: /b}]\n",
        );
        let b = runtime_config(&img, &c, &BTreeMap::new()).unwrap();
        let dir = bundle_dir(Role::Service, 0, "s").unwrap();
        assert_eq!(dir, "containers/services/s");
        assert_eq!(bundle_dir(Role::Onboot, 3, "x").unwrap(), "containers/onboot/003-x");
        let v: Value =
            serde_json::from_slice(&render_runtime_json(&b.runtime, &dir, false)).unwrap();
        assert_eq!(v["mkdir"], json!(["/var/lib/s"]));
        assert_eq!(v["bindNS"]["net"], "/run/netns/s");
        assert_eq!(v["bindNS"]["pid"], "");
        let mounts = v["mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[2]["options"][0], "lowerdir=/containers/services/s/lower");
        assert_eq!(mounts[3]["destination"], "/b");
        let ro: Value =
            serde_json::from_slice(&render_runtime_json(&b.runtime, &dir, true)).unwrap();
        assert_eq!(
            ro["mounts"][0],
            json!({"destination": "/containers/services/s/rootfs", "source": "/containers/services/s/rootfs", "options": ["bind"]})
        );
    }
}
