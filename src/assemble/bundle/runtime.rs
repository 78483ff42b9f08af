//! `runtime.json`: what LinuxKit's init does around a container at boot (mounts, cgroups,
//! interfaces, namespace binds), merged from the label and the spec entry, plus the rootfs
//! mounts of the bundle.

use serde::Serialize;

use super::label::{pick, pick_str};
use super::to_json;
use crate::spec::{self, Interface, Mount};
use crate::tree::TreePath;

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

pub(super) fn merge_runtime(
    label: Option<&spec::Runtime>,
    spec: Option<&spec::Runtime>,
) -> RuntimeConfig {
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

/// `runtime.json` bytes for a bundle at `bundle_dir` (see
/// [`bundle_dir`](super::bundle_dir)) whose image files are at `image_root` (its own
/// `lower/` or `rootfs/`, or those of the first container of the same image), with the
/// rootfs mounts LinuxKit's `ImageBundle` prepends: a tmpfs-backed overlay over the image
/// for a writable container (the upper layer is the container's own), a bind mount of the
/// image onto `rootfs/` for a read-only one (a self bind mount when it holds the copy).
pub fn render_runtime_json(
    runtime: &RuntimeConfig,
    bundle_dir: &str,
    readonly: bool,
    image_root: &TreePath,
) -> Vec<u8> {
    let mut rt = runtime.clone();
    let root = format!("/{image_root}");
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
