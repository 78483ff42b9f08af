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
//!
//! `oci_config` builds `config.json`, `runtime` builds `runtime.json`, and `label` holds the
//! rule by which a spec entry overrides the image label, field by field.

use serde::Serialize;

use crate::spec::{Role, SpecError};

mod label;
mod oci_config;
mod runtime;

pub use label::LABEL;
pub use oci_config::{
    ALL_CAPABILITIES, Capabilities, Linux, LinuxDevice, Namespace, OCI_VERSION, OciConfig, Process,
    Rlimit, Root, User, render_config_json, runtime_config,
};
pub use runtime::{BindNs, RuntimeConfig, render_runtime_json};

/// Why a bundle config could not be generated. Every variant names the container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The image's `org.mobyproject.config` label is not a valid container config.
    #[error("container {container:?}: image label org.mobyproject.config is invalid: {source}")]
    Label { container: String, source: Box<SpecError> },
    /// A field of the spec entry (or the label) cannot be translated.
    #[error("container {container:?}: {field}: {source}")]
    Invalid { container: String, field: &'static str, source: FieldError },
}

/// What is wrong with one field of a container's settings (spec entry or label).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// A `tmpfs`, `binds` or `rlimits` entry does not have the shape it needs.
    #[error("cannot parse {text:?}: {problem}")]
    Unparsable { text: String, problem: &'static str },
    #[error("mount for destination {0:?} is missing type")]
    MountWithoutType(String),
    #[error("mount of type {0:?} is missing destination")]
    MountWithoutDestination(String),
    /// A device's `mode` must be octal text, as in LinuxKit (`"0666"`).
    #[error("device {path:?}: mode {mode:?} is not an octal value")]
    DeviceMode { path: String, mode: String },
    /// Not one of [`ALL_CAPABILITIES`] (nor `all` or `none`).
    #[error("unknown capability {0:?} (names look like CAP_NET_ADMIN)")]
    UnknownCapability(String),
    /// An `rlimits` entry (`name,soft,hard`) naming no Linux resource limit or giving a
    /// value that is neither a number nor `unlimited`.
    #[error("{rlimit:?}: {problem}")]
    Rlimit { rlimit: String, problem: String },
    /// A `uid`/`gid` name that is not `root` or a container of the spec.
    #[error("cannot find id {0:?} (a number, \"root\" or a container name)")]
    UnknownId(String),
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

/// The directories of a bundle besides its image files, as LinuxKit's `ImageBundle` makes
/// them: `rootfs/` always (the image itself for a read-only container with its own copy,
/// else the mount point); for a writable container `tmp/` (the overlay's tmpfs) and, when
/// it holds its image's copy, `lower/`. A container whose image another container already
/// holds (`own_copy` false) has no copy of its own: its `runtime.json` mounts the other's.
pub fn bundle_subdirs(readonly: bool, own_copy: bool) -> &'static [&'static str] {
    match (readonly, own_copy) {
        (true, _) => &["rootfs"],
        (false, true) => &["lower", "rootfs", "tmp"],
        (false, false) => &["rootfs", "tmp"],
    }
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
mod tests;
