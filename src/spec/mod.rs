//! The image spec: LinuxKit's YAML format, parsed from untrusted bytes into a [`Spec`].
//!
//! This module owns the step from YAML text to typed, checked values and nothing more: it
//! does no I/O and resolves nothing. Every LinuxKit field is accepted with the name and
//! meaning LinuxKit gives it (`src/cmd/linuxkit/moby/config.go` and its JSON schema), and
//! anything else is an error naming the file, line and column, with a "did you mean" hint
//! for near-misses. cairn's only addition is an optional top-level `x-cairn:` mapping.
//!
//! Checks that LinuxKit makes at build time are made here, at parse time, so that a bad
//! spec fails before anything is fetched: image references must parse, container names
//! must be usable as a directory name and unique within their section, each `files` entry
//! must say exactly one thing it is (directory, symlink, contents, source or metadata),
//! file modes must be octal, and no path may climb out of the image with `..`.
//!
//! Values are validated while they are deserialized (see [`Validated`] below), so that
//! serde_norway attaches the position of the offending value to every error.
//!
//! The sections live in submodules and are re-exported here: `kernel`, containers and
//! their runtime settings in `container`, cgroup limits in `resources`, and `files:` entries
//! in `files`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::reference::{ImageRef, ReferenceError};
use crate::source_date::{SourceDate, SourceDateError};
use crate::tree::TreeError;
#[cfg(test)]
use crate::yaml_diag::edit_distance;
use crate::yaml_diag::{self, InvalidYaml, TooLarge};

mod container;
mod files;
mod kernel;
mod resources;

pub use container::{
    BindNamespaces, Container, ContainerConfig, ContainerList, Device, Id, IdMapping, Interface,
    Mount, Runtime,
};
pub use files::{File, FileKind, MetadataFormat};
pub use kernel::Kernel;
pub use resources::{
    BlockIo, Cpu, DeviceCgroup, HugepageLimit, InterfacePriority, Memory, Network, Pids, Resources,
    ThrottleDevice, WeightDevice,
};

/// Largest spec accepted, in bytes. Real specs are a few kilobytes; the limit keeps a
/// hostile input from costing much memory before the YAML parser's own limits apply.
pub const MAX_SPEC_LEN: usize = 4 * 1024 * 1024;

/// Why a spec (or an image's container-config label) was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The input is larger than [`MAX_SPEC_LEN`].
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// The YAML is malformed, has an unknown field or a wrong type, or a value failed a
    /// check ([`ValueError`], placed at the value's line and column).
    #[error(transparent)]
    Invalid(#[from] InvalidYaml),
    /// An image's `org.mobyproject.config` label is larger than [`MAX_SPEC_LEN`].
    #[error("label is {len} bytes, more than {limit}")]
    LabelTooLarge { len: usize, limit: usize },
    /// An image's `org.mobyproject.config` label is not a valid container config (the
    /// label has no file name or useful position, so the parser's message is kept whole).
    #[error("{message}{}", .hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Label { message: String, hint: Option<String> },
}

/// Why one value of a spec failed a check. It is raised while the value is deserialized,
/// so it reaches the user as the message of [`SpecError::Invalid`] at the value's position.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("{}", .0.to_string().replace("SOURCE_DATE_EPOCH", "source-date-epoch"))]
    SourceDate(#[source] SourceDateError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("container name is empty")]
    EmptyContainerName,
    #[error("container name {0:?} cannot be used as a directory name (no \"/\", \".\" or \"..\")")]
    ContainerNameNotDir(String),
    #[error("duplicate container name {name:?} at index {index} (first used at index {first})")]
    DuplicateContainer { name: String, index: usize, first: usize },
    #[error("kernel binary name is empty")]
    EmptyKernelBinary,
    #[error("mode {0:?} is not an octal number in 0..=07777 (e.g. \"0644\")")]
    Mode(String),
    #[error("file path is empty")]
    EmptyFilePath,
    #[error(transparent)]
    FilePath(#[from] TreeError),
    #[error("file path {0:?} names the image root")]
    FileIsRoot(String),
    #[error("metadata format {0:?} is not supported (use \"json\" or \"yaml\")")]
    MetadataFormat(String),
    #[error("file {0:?} needs exactly one of directory, symlink, contents, source or metadata")]
    NoFileKind(String),
    #[error("file {path:?} sets {}: choose exactly one", .kinds.join(" and "))]
    FileKinds { path: String, kinds: Vec<&'static str> },
    #[error("file {0:?}: optional applies only to source")]
    OptionalNotSource(String),
}

/// The sha256 of the spec's exact bytes, as recorded in the lock and the provenance.
pub fn content_digest(yaml: &str) -> Digest {
    Digest::of(yaml.as_bytes())
}

/// Parses a spec. `source_name` is the path shown in error messages.
pub fn parse(source_name: &str, yaml: &str) -> Result<Spec, SpecError> {
    yaml_diag::parse_bounded(source_name, "spec", yaml, MAX_SPEC_LEN).map_err(|e| match e {
        SpecError::Invalid(mut invalid)
            if invalid.hint.is_none()
                && yaml_diag::unknown_field(&invalid.message) == Some("volumes") =>
        {
            invalid.hint = Some("hint: LinuxKit volumes are not supported by cairn yet".into());
            SpecError::Invalid(invalid)
        }
        other => other,
    })
}

// ---------------------------------------------------------------------------------------
// Validation during deserialization.

/// Deserializes `Raw` from a mapping, then converts it with `check`. Errors from `check`
/// are returned from inside serde_norway's `visit_map`, so they carry the position of the
/// mapping and its path (`services[2]`), which a check made after parsing could not.
struct Validated<Raw, T, F>(F, PhantomData<fn(Raw) -> T>);

impl<'de, Raw, T, F> Visitor<'de> for Validated<Raw, T, F>
where
    Raw: Deserialize<'de>,
    F: FnOnce(Raw) -> Result<T, ValueError>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let raw = Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
        (self.0)(raw).map_err(de::Error::custom)
    }
}

fn deserialize_validated<'de, D, Raw, T, F>(d: D, check: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    Raw: Deserialize<'de>,
    F: FnOnce(Raw) -> Result<T, ValueError>,
{
    d.deserialize_map(Validated(check, PhantomData))
}

/// Deserializes a scalar as its source text and converts it with `check`, so that the
/// error carries the scalar's position.
fn deserialize_scalar<'de, D, T>(
    d: D,
    what: &'static str,
    check: fn(&str) -> Result<T, ValueError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T>(&'static str, fn(&str) -> Result<T, ValueError>);
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.1)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V(what, check))
}

// ---------------------------------------------------------------------------------------
// Top level.

/// A parsed, checked image spec. Only [`parse`] makes one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The kernel, absent when the image has none (LinuxKit allows that).
    #[serde(default)]
    pub kernel: Option<Kernel>,
    /// Images unpacked at the root, in order (`init`, `runc`, `containerd`, …).
    #[serde(default)]
    pub init: Vec<SpecImage>,
    /// Containers run to completion, one after another, at boot.
    #[serde(default)]
    pub onboot: ContainerList,
    /// Containers run to completion at shutdown.
    #[serde(default)]
    pub onshutdown: ContainerList,
    /// Long-running containers.
    #[serde(default)]
    pub services: ContainerList,
    /// Files, directories and symlinks added last.
    #[serde(default)]
    pub files: Vec<File>,
    /// LinuxKit's deprecated Docker Content Trust section. It asked for Notary signature
    /// checks on pull; cairn pins every image by sha256 instead (in the spec or the lock),
    /// which is a stronger guarantee, so the section is checked for shape and then ignored.
    #[serde(default, rename = "trust")]
    _trust: Option<Trust>,
    /// cairn's own settings.
    #[serde(default, rename = "x-cairn")]
    pub x_cairn: XCairn,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trust {
    #[serde(default, rename = "image")]
    _image: Vec<String>,
    #[serde(default, rename = "org")]
    _org: Vec<String>,
}

/// The `x-cairn:` mapping.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XCairn {
    /// Used for every timestamp in the outputs unless `SOURCE_DATE_EPOCH` is set.
    #[serde(default, rename = "source-date-epoch", deserialize_with = "de_source_date")]
    pub source_date_epoch: Option<SourceDate>,
}

fn de_source_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SourceDate>, D::Error> {
    deserialize_scalar(d, "a number of seconds since 1970", |s| {
        SourceDate::parse(s.trim()).map_err(ValueError::SourceDate)
    })
    .map(Some)
}

/// Which part of a spec an image is used in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Kernel,
    Init,
    Onboot,
    Onshutdown,
    Service,
}

impl Role {
    /// The spec section name (`services` for [`Role::Service`]).
    pub fn section(self) -> &'static str {
        match self {
            Role::Kernel => "kernel",
            Role::Init => "init",
            Role::Onboot => "onboot",
            Role::Onshutdown => "onshutdown",
            Role::Service => "services",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.section())
    }
}

/// One use of an image in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUse {
    pub role: Role,
    /// Position within the section (0 for the kernel).
    pub index: usize,
    /// The container name; `kernel` for the kernel and `init[<index>]` for init images,
    /// which have no name in LinuxKit's format.
    pub name: String,
    /// The reference as written in the spec.
    pub raw: String,
    /// The normalized reference.
    pub image: ImageRef,
}

impl Spec {
    /// Every image reference in spec order: kernel, init, onboot, onshutdown, services.
    pub fn image_refs(&self) -> Vec<ImageUse> {
        let mut out = Vec::new();
        if let Some(img) = self.kernel.as_ref().and_then(|k| k.image.as_ref()) {
            out.push(img.use_as(Role::Kernel, 0, "kernel".to_string()));
        }
        for (i, img) in self.init.iter().enumerate() {
            out.push(img.use_as(Role::Init, i, format!("init[{i}]")));
        }
        for (role, list) in self.container_sections() {
            for (i, c) in list.iter().enumerate() {
                out.push(c.image.use_as(role, i, c.name.clone()));
            }
        }
        out
    }

    /// The container sections in build order.
    pub fn container_sections(&self) -> [(Role, &[Container]); 3] {
        [
            (Role::Onboot, &self.onboot.0),
            (Role::Onshutdown, &self.onshutdown.0),
            (Role::Service, &self.services.0),
        ]
    }

    /// LinuxKit gives every container a uid/gid, 100 upwards in the order onboot,
    /// onshutdown, services, so that `uid:`/`gid:` and file owners can name a container.
    /// A name used in two sections gets the later number, as in LinuxKit.
    pub fn id_map(&self) -> BTreeMap<String, u32> {
        let mut map = BTreeMap::new();
        let mut id = 100u32;
        for (_, list) in self.container_sections() {
            for c in list {
                map.insert(c.name.clone(), id);
                id = id.saturating_add(1);
            }
        }
        map
    }
}

/// An image reference as written (`raw`) and normalized (`reference`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecImage {
    pub raw: String,
    pub reference: ImageRef,
}

impl SpecImage {
    fn use_as(&self, role: Role, index: usize, name: String) -> ImageUse {
        ImageUse { role, index, name, raw: self.raw.clone(), image: self.reference.clone() }
    }
}

impl<'de> Deserialize<'de> for SpecImage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_scalar(d, "an image reference", |s| {
            let reference = ImageRef::parse(s)?;
            Ok(SpecImage { raw: s.to_string(), reference })
        })
    }
}

#[cfg(test)]
mod tests;
