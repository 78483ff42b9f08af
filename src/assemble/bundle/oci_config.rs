//! `config.json`: the OCI runtime config, translated from the image config, its label and
//! the spec entry as LinuxKit's `ConfigToOCI` does.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::image::ImageConfiguration;
use serde::Serialize;

use super::label::{LABEL, merge_unique, pick, pick_str};
use super::runtime::merge_runtime;
use super::{BundleConfig, BundleError, FieldError, to_json};
use crate::spec::{Container, ContainerConfig, DeviceCgroup, Id, IdMapping, Mount, Resources};

/// The OCI runtime spec version written to `ociVersion`.
pub const OCI_VERSION: &str = "1.0.2";

const TOO_MANY_COLONS: &str = "too many ':'";

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

/// Translates an image config and a spec entry into the bundle's config, as LinuxKit's
/// `ConfigToOCI`. `ids` resolves `uid`/`gid` names (see
/// [`Spec::id_map`](crate::spec::Spec::id_map)).
pub fn runtime_config(
    image: &ImageConfiguration,
    container: &Container,
    ids: &BTreeMap<String, u32>,
) -> Result<BundleConfig, BundleError> {
    let name = container.name.as_str();
    let invalid = |field: &'static str, source: FieldError| BundleError::Invalid {
        container: name.to_string(),
        field,
        source,
    };
    let img = image.config().as_ref();
    let label = match img.and_then(|c| c.labels().as_ref()).and_then(|l| l.get(LABEL)) {
        Some(text) if !text.is_empty() => ContainerConfig::from_label(text)
            .map_err(|e| BundleError::Label { container: name.to_string(), source: Box::new(e) })?,
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
                return Err(invalid(
                    "tmpfs",
                    FieldError::Unparsable { text: t.clone(), problem: TOO_MANY_COLONS },
                ));
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
            [_] => {
                return Err(invalid(
                    "binds",
                    FieldError::Unparsable { text: b.clone(), problem: "missing ':'" },
                ));
            }
            _ => {
                return Err(invalid(
                    "binds",
                    FieldError::Unparsable { text: b.clone(), problem: TOO_MANY_COLONS },
                ));
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
            return Err(invalid("mounts", FieldError::MountWithoutType(m.destination)));
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
                _ => return Err(invalid("mounts", FieldError::MountWithoutDestination(m.kind))),
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
                let (path, mode) = (d.path.clone(), mode_text.to_string());
                invalid("devices", FieldError::DeviceMode { path, mode })
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

fn expand_caps(caps: Vec<String>) -> Result<Vec<String>, FieldError> {
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
            return Err(FieldError::UnknownCapability(c));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parses LinuxKit's `name,soft,hard` (e.g. `nofile,1024,unlimited`).
fn parse_rlimit(s: &str) -> Result<Rlimit, FieldError> {
    let parts: Vec<&str> = s.splitn(3, ',').collect();
    let [name, soft, hard] = parts.as_slice() else {
        let problem = "expected \"name,soft,hard\"";
        return Err(FieldError::Unparsable { text: s.to_string(), problem });
    };
    let mut kind = name.trim().to_ascii_uppercase();
    if !kind.starts_with("RLIMIT_") {
        kind.insert_str(0, "RLIMIT_");
    }
    if !RLIMITS.contains(&kind.as_str()) {
        let problem = format!("unknown limit {:?}", name.trim());
        return Err(FieldError::Rlimit { rlimit: s.to_string(), problem });
    }
    let value = |v: &str| -> Result<u64, FieldError> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("unlimited") {
            return Ok(u64::MAX);
        }
        v.parse::<u64>().map_err(|_| FieldError::Rlimit {
            rlimit: s.to_string(),
            problem: format!("{v:?} is not a number or \"unlimited\""),
        })
    };
    Ok(Rlimit { kind, soft: value(soft)?, hard: value(hard)? })
}

fn numeric_id(id: Option<&Id>, ids: &BTreeMap<String, u32>) -> Result<u32, FieldError> {
    match id {
        None => Ok(0),
        Some(Id::Num(n)) => Ok(*n),
        Some(Id::Name(n)) if n.is_empty() || n == "root" => Ok(0),
        Some(Id::Name(n)) => ids.get(n).copied().ok_or_else(|| FieldError::UnknownId(n.clone())),
    }
}

/// `config.json` bytes: 4-space indented JSON in a fixed order, with a trailing newline.
pub fn render_config_json(config: &OciConfig) -> Vec<u8> {
    to_json(config)
}
