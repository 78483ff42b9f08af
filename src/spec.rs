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

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::source_date::SourceDate;
use crate::tree::TreePath;

/// Largest spec accepted, in bytes. Real specs are a few kilobytes; the limit keeps a
/// hostile input from costing much memory before the YAML parser's own limits apply.
pub const MAX_SPEC_LEN: usize = 4 * 1024 * 1024;

/// Why a spec was rejected. Every variant names the spec file it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The input is larger than [`MAX_SPEC_LEN`].
    #[error("{source_name}: spec is {len} bytes, more than the limit of {limit} bytes")]
    TooLarge { source_name: String, len: usize, limit: usize },
    /// The YAML is malformed, has an unknown field or a wrong type, or a value failed a
    /// check. `line` and `column` are 1-based and present whenever the parser knows them.
    #[error("{}", display_invalid(.source_name, *.line, *.column, .message, .hint.as_deref()))]
    Invalid {
        source_name: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
        hint: Option<String>,
    },
}

fn display_invalid(
    source_name: &str,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
    hint: Option<&str>,
) -> String {
    let mut out = match (line, column) {
        (Some(l), Some(c)) => format!("{source_name}:{l}:{c}: {message}"),
        (Some(l), None) => format!("{source_name}:{l}: {message}"),
        _ => format!("{source_name}: {message}"),
    };
    if let Some(h) = hint {
        out.push_str("\n\n");
        out.push_str(h);
    }
    out
}

/// The sha256 of the spec's exact bytes, as recorded in the lock and the provenance.
pub fn content_digest(yaml: &str) -> Digest {
    Digest::of(yaml.as_bytes())
}

/// Parses a spec. `source_name` is the path shown in error messages.
pub fn parse(source_name: &str, yaml: &str) -> Result<Spec, SpecError> {
    if yaml.len() > MAX_SPEC_LEN {
        return Err(SpecError::TooLarge {
            source_name: source_name.to_string(),
            len: yaml.len(),
            limit: MAX_SPEC_LEN,
        });
    }
    serde_norway::from_str::<Spec>(yaml).map_err(|e| yaml_error(source_name, &e))
}

fn yaml_error(source_name: &str, err: &serde_norway::Error) -> SpecError {
    let mut message = err.to_string();
    let location = err.location();
    if let Some(loc) = &location {
        // serde_norway appends " at line L column C"; the location goes in front instead.
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(pos) = message.find(&suffix) {
            message.replace_range(pos..pos + suffix.len(), "");
        }
    }
    let hint = unknown_field_hint(&message);
    SpecError::Invalid {
        source_name: source_name.to_string(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message,
        hint,
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" message, suggests the
/// closest expected name when it is a plausible typo.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let candidates = rest.split_once("expected")?.1;
    let names = || candidates.split('`').skip(1).step_by(2);
    let best = names().map(|c| (edit_distance(unknown, c), c)).min()?;
    let limit = (unknown.chars().count() / 3).max(1);
    if best.0 <= limit {
        return Some(format!("hint: did you mean `{}`?", best.1));
    }
    // A truncated name (`source-date` for `source-date-epoch`).
    if unknown.len() >= 4
        && let Some(c) = names().find(|c| c.starts_with(unknown))
    {
        return Some(format!("hint: did you mean `{c}`?"));
    }
    if unknown == "volumes" {
        return Some("hint: LinuxKit volumes are not supported by cairn yet".to_string());
    }
    None
}

/// Levenshtein distance over chars, case-sensitive. Inputs are short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur.push(subst.min(del).min(ins));
        }
        prev = cur;
    }
    prev[b.len()]
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
    F: FnOnce(Raw) -> Result<T, String>,
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
    F: FnOnce(Raw) -> Result<T, String>,
{
    d.deserialize_map(Validated(check, PhantomData))
}

/// Deserializes a scalar as its source text and converts it with `check`, so that the
/// error carries the scalar's position.
fn deserialize_scalar<'de, D, T>(
    d: D,
    what: &'static str,
    check: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T>(&'static str, fn(&str) -> Result<T, String>);
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
        SourceDate::parse(s.trim())
            .map_err(|e| e.to_string().replace("SOURCE_DATE_EPOCH", "source-date-epoch"))
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
            let reference = ImageRef::parse(s).map_err(|e| e.to_string())?;
            Ok(SpecImage { raw: s.to_string(), reference })
        })
    }
}

// ---------------------------------------------------------------------------------------
// Kernel.

/// The `kernel:` section, with LinuxKit's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub image: Option<SpecImage>,
    /// Written to `boot/cmdline`.
    pub cmdline: String,
    /// The kernel's file name inside the image (default `kernel`).
    pub binary: String,
    /// The modules tarball inside the image (default `kernel.tar`; `tar: none` gives `None`).
    pub tar: Option<String>,
    /// A microcode cpio archive inside the image, if any.
    pub ucode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    #[serde(default)]
    image: Option<SpecImage>,
    #[serde(default)]
    cmdline: String,
    #[serde(default)]
    binary: Option<String>,
    #[serde(default)]
    tar: Option<String>,
    #[serde(default)]
    ucode: Option<String>,
}

impl<'de> Deserialize<'de> for Kernel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_validated(d, |r: RawKernel| {
            let binary = match r.binary {
                Some(b) if b.is_empty() => return Err("kernel binary name is empty".to_string()),
                Some(b) => b,
                None => "kernel".to_string(),
            };
            let tar = match r.tar.as_deref() {
                None => Some("kernel.tar".to_string()),
                Some("none") | Some("") => None,
                Some(t) => Some(t.to_string()),
            };
            Ok(Kernel { image: r.image, cmdline: r.cmdline, binary, tar, ucode: r.ucode })
        })
    }
}

// ---------------------------------------------------------------------------------------
// Containers.

/// A container section: names are unique within it.
#[derive(Clone, Debug, Default)]
pub struct ContainerList(pub Vec<Container>);

impl std::ops::Deref for ContainerList {
    type Target = [Container];
    fn deref(&self) -> &[Container] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ContainerList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ContainerList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of containers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ContainerList, A::Error> {
                let mut out: Vec<Container> = Vec::new();
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                while let Some(c) = seq.next_element::<Container>()? {
                    if let Some(first) = seen.get(&c.name) {
                        return Err(de::Error::custom(format!(
                            "duplicate container name {:?} at index {} (first used at index {first})",
                            c.name,
                            out.len()
                        )));
                    }
                    seen.insert(c.name.clone(), out.len());
                    out.push(c);
                }
                Ok(ContainerList(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A uid or gid: a number, or a name LinuxKit resolves (`root`, or a container name;
/// see [`Spec::id_map`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Id {
    Num(u32),
    Name(String),
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a numeric id (0..=4294967295) or a name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                u32::try_from(v)
                    .map(Id::Num)
                    .map_err(|_| E::custom(format!("id {v} is larger than 4294967295")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                u32::try_from(v)
                    .map(Id::Num)
                    .map_err(|_| E::custom(format!("id {v} is not in 0..=4294967295")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id::Name(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An OCI mount as LinuxKit's `mounts:` and `runtime.mounts:` take it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    #[serde(default)]
    pub destination: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(
        default,
        rename(deserialize = "uidmappings", serialize = "uidMappings"),
        skip_serializing_if = "Vec::is_empty"
    )]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(
        default,
        rename(deserialize = "gidmappings", serialize = "gidMappings"),
        skip_serializing_if = "Vec::is_empty"
    )]
    pub gid_mappings: Vec<IdMapping>,
}

/// A user-namespace id mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdMapping {
    #[serde(default, rename = "containerID")]
    pub container_id: u32,
    #[serde(default, rename = "hostID")]
    pub host_id: u32,
    #[serde(default)]
    pub size: u32,
}

/// A device node to create in the container (`path: all` allows a whole class instead).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    /// Octal, e.g. `"0666"`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// The cgroup resources LinuxKit passes through to the OCI config (its JSON schema's
/// subset of the runtime spec's `LinuxResources`). Serialized with the OCI field names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceCgroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Pids>,
    #[serde(
        default,
        rename(deserialize = "blockio", serialize = "blockIO"),
        skip_serializing_if = "Option::is_none"
    )]
    pub block_io: Option<BlockIo>,
    #[serde(default, rename = "hugepageLimits", skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<HugepageLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCgroup {
    #[serde(default)]
    pub allow: bool,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Memory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<i64>,
    #[serde(default, rename = "kernelTCP", skip_serializing_if = "Option::is_none")]
    pub kernel_tcp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<u64>,
    #[serde(default, rename = "disableOOMKiller", skip_serializing_if = "Option::is_none")]
    pub disable_oom_killer: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_runtime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mems: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pids {
    #[serde(default)]
    pub limit: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BlockIo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_read_bps_device: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_write_bps_device: Vec<ThrottleDevice>,
    #[serde(default, rename = "throttleReadIOPSDevice", skip_serializing_if = "Vec::is_empty")]
    pub throttle_read_iops_device: Vec<ThrottleDevice>,
    #[serde(default, rename = "throttleWriteIOPSDevice", skip_serializing_if = "Vec::is_empty")]
    pub throttle_write_iops_device: Vec<ThrottleDevice>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WeightDevice {
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleDevice {
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(default)]
    pub rate: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HugepageLimit {
    /// E.g. `2MB`, as the runtime spec writes it.
    #[serde(default)]
    pub page_size: String,
    #[serde(default)]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default, rename = "classID", skip_serializing_if = "Option::is_none")]
    pub class_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<InterfacePriority>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InterfacePriority {
    pub name: String,
    #[serde(default)]
    pub priority: u32,
}

/// LinuxKit's `runtime:` section: what its init does around the container at boot
/// (written to `runtime.json`, not to the OCI config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Runtime {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mkdir: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Interface>>,
    #[serde(default, rename = "bindNS")]
    pub bind_ns: BindNamespaces,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Paths at which the init binds the container's namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BindNamespaces {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
}

/// A network interface the init creates or moves into the container's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Interface {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub add: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer: String,
    #[serde(default)]
    pub create_in_root: bool,
}

/// Declares [`ContainerConfig`] (the fields an image's `org.mobyproject.config` label may
/// set) and [`Container`] (the same fields plus `name` and `image`) from one field list,
/// the way LinuxKit's `Image` embeds its `ImageConfig`.
macro_rules! container_fields {
    ($( $(#[$m:meta])* $field:ident : $ty:ty, )*) => {
        /// The container settings LinuxKit accepts both in a spec entry and in an image's
        /// `org.mobyproject.config` label. `None` means "not set here"; the spec entry
        /// overrides the label field by field (see `assemble::bundle`).
        #[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ContainerConfig {
            $( $(#[$m])* #[serde(default)] pub $field: $ty, )*
        }

        /// One `onboot`, `onshutdown` or `services` entry.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Container {
            /// Non-empty, usable as one directory name (the bundle lives at
            /// `containers/<section>/[NNN-]<name>`).
            pub name: String,
            pub image: SpecImage,
            $( pub $field: $ty, )*
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawContainer {
            name: String,
            image: SpecImage,
            $( $(#[$m])* #[serde(default)] $field: $ty, )*
        }

        impl Container {
            /// The settings part of this entry, to merge with an image label.
            pub fn config(&self) -> ContainerConfig {
                ContainerConfig { $( $field: self.$field.clone(), )* }
            }
        }

        impl<'de> Deserialize<'de> for Container {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_validated(d, |r: RawContainer| {
                    check_container_name(&r.name)?;
                    Ok(Container { name: r.name, image: r.image, $( $field: r.$field, )* })
                })
            }
        }
    };
}

container_fields! {
    capabilities: Option<Vec<String>>,
    #[serde(rename = "capabilities.add")]
    capabilities_add: Option<Vec<String>>,
    ambient: Option<Vec<String>>,
    mounts: Option<Vec<Mount>>,
    binds: Option<Vec<String>>,
    #[serde(rename = "binds.add")]
    binds_add: Option<Vec<String>>,
    devices: Option<Vec<Device>>,
    tmpfs: Option<Vec<String>>,
    command: Option<Vec<String>>,
    env: Option<Vec<String>>,
    cwd: Option<String>,
    net: Option<String>,
    pid: Option<String>,
    ipc: Option<String>,
    uts: Option<String>,
    userns: Option<String>,
    hostname: Option<String>,
    readonly: Option<bool>,
    #[serde(rename = "maskedPaths")]
    masked_paths: Option<Vec<String>>,
    #[serde(rename = "readonlyPaths")]
    readonly_paths: Option<Vec<String>>,
    uid: Option<Id>,
    gid: Option<Id>,
    #[serde(rename = "additionalGids")]
    additional_gids: Option<Vec<Id>>,
    #[serde(rename = "noNewPrivileges")]
    no_new_privileges: Option<bool>,
    #[serde(rename = "oomScoreAdj")]
    oom_score_adj: Option<i32>,
    #[serde(rename = "rootfsPropagation")]
    rootfs_propagation: Option<String>,
    #[serde(rename = "cgroupsPath")]
    cgroups_path: Option<String>,
    resources: Option<Resources>,
    sysctl: Option<BTreeMap<String, String>>,
    rlimits: Option<Vec<String>>,
    #[serde(rename = "uidMappings")]
    uid_mappings: Option<Vec<IdMapping>>,
    #[serde(rename = "gidMappings")]
    gid_mappings: Option<Vec<IdMapping>>,
    annotations: Option<BTreeMap<String, String>>,
    runtime: Option<Runtime>,
}

fn check_container_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("container name is empty".to_string());
    }
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(format!(
            "container name {name:?} cannot be used as a directory name (no \"/\", \".\" or \"..\")"
        ));
    }
    Ok(())
}

impl ContainerConfig {
    /// Parses an image's `org.mobyproject.config` label (YAML or JSON). `name` and `image`
    /// are refused there, as in LinuxKit.
    pub fn from_label(label: &str) -> Result<ContainerConfig, String> {
        if label.len() > MAX_SPEC_LEN {
            return Err(format!("label is {} bytes, more than {MAX_SPEC_LEN}", label.len()));
        }
        serde_norway::from_str::<ContainerConfig>(label).map_err(|e| {
            let hint = unknown_field_hint(&e.to_string());
            match hint {
                Some(h) => format!("{e} ({h})"),
                None => e.to_string(),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// Files.

/// One `files:` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: TreePath,
    pub kind: FileKind,
    /// Permission bits (`mode:`, default 0600 for files and symlinks, 0700 for directories).
    pub mode: u32,
    pub uid: Option<Id>,
    pub gid: Option<Id>,
}

/// What a `files:` entry creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Symlink {
        target: String,
    },
    /// Inline contents (`contents: ""` is an empty file).
    Contents(String),
    /// Contents read from a host path at build time; `optional` skips a missing file.
    Source {
        path: String,
        optional: bool,
    },
    /// The spec itself, in the given format (LinuxKit's `metadata: yaml|json`).
    Metadata(MetadataFormat),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataFormat {
    Json,
    Yaml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    #[serde(default)]
    directory: bool,
    #[serde(default)]
    symlink: Option<String>,
    #[serde(default)]
    contents: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default, deserialize_with = "de_mode")]
    mode: Option<u32>,
    #[serde(default)]
    uid: Option<Id>,
    #[serde(default)]
    gid: Option<Id>,
}

fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    deserialize_scalar(d, "an octal mode such as \"0644\"", parse_mode).map(Some)
}

/// Parses an octal permission string. The raw scalar text is used, so `0644` means the same
/// quoted or not (YAML 1.1 and 1.2 disagree about unquoted leading zeros).
fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    let bad = || format!("mode {s:?} is not an octal number in 0..=07777 (e.g. \"0644\")");
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(bad()),
    }
}

impl<'de> Deserialize<'de> for File {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_validated(d, |r: RawFile| {
            if r.path.is_empty() {
                return Err("file path is empty".to_string());
            }
            let path = TreePath::parse(&r.path).map_err(|e| e.to_string())?;
            if path.is_root() {
                return Err(format!("file path {:?} names the image root", r.path));
            }
            let mut kinds = Vec::new();
            if r.directory {
                kinds.push(("directory", FileKind::Directory));
            }
            if let Some(target) = r.symlink.filter(|t| !t.is_empty()) {
                kinds.push(("symlink", FileKind::Symlink { target }));
            }
            if let Some(c) = r.contents {
                kinds.push(("contents", FileKind::Contents(c)));
            }
            if let Some(s) = r.source.filter(|s| !s.is_empty()) {
                kinds.push(("source", FileKind::Source { path: s, optional: r.optional }));
            }
            if let Some(m) = r.metadata.filter(|m| !m.is_empty()) {
                let fmt = match m.as_str() {
                    "json" => MetadataFormat::Json,
                    "yaml" => MetadataFormat::Yaml,
                    other => {
                        return Err(format!(
                            "metadata format {other:?} is not supported (use \"json\" or \"yaml\")"
                        ));
                    }
                };
                kinds.push(("metadata", FileKind::Metadata(fmt)));
            }
            let kind = match kinds.len() {
                1 => kinds.pop().map(|(_, k)| k),
                _ => None,
            };
            let Some(kind) = kind else {
                let names: Vec<&str> = kinds.iter().map(|(n, _)| *n).collect();
                return Err(if names.is_empty() {
                    format!(
                        "file {:?} needs exactly one of directory, symlink, contents, source or metadata",
                        r.path
                    )
                } else {
                    format!("file {:?} sets {}: choose exactly one", r.path, names.join(" and "))
                });
            };
            if r.optional && !matches!(kind, FileKind::Source { .. }) {
                return Err(format!("file {:?}: optional applies only to source", r.path));
            }
            let default_mode = if kind == FileKind::Directory { 0o700 } else { 0o600 };
            Ok(File { path, kind, mode: r.mode.unwrap_or(default_mode), uid: r.uid, gid: r.gid })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn example() -> String {
        format!(
            r#"kernel:
  image: linuxkit/kernel:6.6.13
  cmdline: "console=tty0 console=ttyS0 console=ttyAMA0"
init:
  - linuxkit/init:8eea386739975a43af558eec757a7dcb3a3d2e7b@{PINNED}
  - linuxkit/runc:667e7ea2c426a2460ca21e3da065a57dbb3369c9
  - linuxkit/containerd:a988a1a8bcbacb2f0695e1c5ca3a3b0c1e4a17a7
  - linuxkit/ca-certificates:7b32a26ca9c275d3ef32b11fe2a83dbd2aee2fdb
onboot:
  - name: sysctl
    image: linuxkit/sysctl:5f56434b81004b50b47ed629b222619168c2bcdf
  - name: dhcpcd
    image: linuxkit/dhcpcd:157df9ef45a035f1542ec2270e374f18efef98a5@{PINNED}
    command: ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
onshutdown:
  - name: shutdown
    image: busybox:latest
    command: ["/bin/echo", "so long and thanks for all the fish"]
services:
  - name: getty
    image: linuxkit/getty:05eca453695984a69617f1f1f0bcdae7f7032967
    env:
     - INSECURE=true
    binds.add:
     - /etc/profile.d/local.sh:/etc/profile.d/local.sh
  - name: rngd
    image: linuxkit/rngd:1a18f2149e42a0a1cb9e7d37608a494342c26032
    capabilities:
     - CAP_SYS_ADMIN
    uid: 0
    gid: root
    rlimits:
     - nofile,1024,2048
    sysctl:
      net.ipv4.ip_forward: "1"
    resources:
      memory:
        limit: 104857600
    runtime:
      mkdir: ["/var/lib/rngd"]
      bindNS:
        net: /run/netns/rngd
  - name: nginx
    image: nginx:1.19.5-alpine
    capabilities:
     - CAP_NET_BIND_SERVICE
     - CAP_CHOWN
     - CAP_SETUID
     - CAP_SETGID
     - CAP_DAC_OVERRIDE
    binds:
     - /etc/resolv.conf:/etc/resolv.conf
files:
  - path: etc/linuxkit-config
    metadata: yaml
  - path: etc/profile.d/local.sh
    contents: |
      alias rm='rm -i'
      export PS1='${{HOSTNAME}}:$PWD# '
    mode: "0644"
  - path: var/lib/empty
    directory: true
  - path: etc/motd
    contents: ""
    mode: 0444
  - path: /usr/bin/vi
    symlink: busybox
  - path: root/.ssh/authorized_keys
    source: ~/.ssh/id_rsa.pub
    optional: true
    mode: "0600"
trust:
  org:
    - linuxkit
    - library
x-cairn:
  source-date-epoch: 1700000000
"#
        )
    }

    fn err(yaml: &str) -> String {
        match parse("examples/x.yml", yaml) {
            Ok(_) => panic!("expected an error for:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_a_linuxkit_example() {
        let spec = parse("examples/x.yml", &example()).unwrap();
        let k = spec.kernel.as_ref().unwrap();
        assert_eq!(k.binary, "kernel");
        assert_eq!(k.tar.as_deref(), Some("kernel.tar"));
        assert_eq!(k.ucode, None);
        assert_eq!(spec.init.len(), 4);
        assert_eq!(spec.onboot.len(), 2);
        assert_eq!(
            spec.services[0].binds_add.as_deref().unwrap(),
            ["/etc/profile.d/local.sh:/etc/profile.d/local.sh"]
        );
        assert_eq!(spec.services[1].uid, Some(Id::Num(0)));
        assert_eq!(spec.services[1].gid, Some(Id::Name("root".into())));
        assert_eq!(
            spec.services[1].runtime.as_ref().unwrap().bind_ns.net.as_deref(),
            Some("/run/netns/rngd")
        );
        assert_eq!(spec.x_cairn.source_date_epoch.map(|s| s.secs()), Some(1_700_000_000));

        let refs = spec.image_refs();
        let roles: Vec<(Role, usize, &str)> =
            refs.iter().map(|u| (u.role, u.index, u.name.as_str())).collect();
        assert_eq!(
            roles,
            [
                (Role::Kernel, 0, "kernel"),
                (Role::Init, 0, "init[0]"),
                (Role::Init, 1, "init[1]"),
                (Role::Init, 2, "init[2]"),
                (Role::Init, 3, "init[3]"),
                (Role::Onboot, 0, "sysctl"),
                (Role::Onboot, 1, "dhcpcd"),
                (Role::Onshutdown, 0, "shutdown"),
                (Role::Service, 0, "getty"),
                (Role::Service, 1, "rngd"),
                (Role::Service, 2, "nginx"),
            ]
        );
        assert_eq!(refs[1].image.digest().map(|d| d.to_string()).as_deref(), Some(PINNED));
        assert_eq!(refs[7].image.name(), "docker.io/library/busybox");

        let files = &spec.files;
        assert_eq!(files[0].kind, FileKind::Metadata(MetadataFormat::Yaml));
        assert_eq!(files[1].mode, 0o644);
        assert_eq!(files[2].kind, FileKind::Directory);
        assert_eq!(files[2].mode, 0o700);
        assert_eq!(files[3].kind, FileKind::Contents(String::new()));
        assert_eq!(files[3].mode, 0o444, "unquoted 0444 is octal");
        assert_eq!(files[4].path.as_str(), "usr/bin/vi");
        assert_eq!(files[4].mode, 0o600);
        assert!(matches!(&files[5].kind, FileKind::Source { optional: true, .. }));

        let ids = spec.id_map();
        assert_eq!(ids["sysctl"], 100);
        assert_eq!(ids["shutdown"], 102);
        assert_eq!(ids["nginx"], 105);
    }

    #[test]
    fn kernel_tar_none_and_ucode() {
        let spec = parse("k.yml", "kernel:\n  image: linuxkit/kernel:6.6\n  tar: none\n  ucode: intel-ucode.cpio\n  binary: bzImage\n").unwrap();
        let k = spec.kernel.unwrap();
        assert_eq!(k.tar, None);
        assert_eq!(k.ucode.as_deref(), Some("intel-ucode.cpio"));
        assert_eq!(k.binary, "bzImage");
    }

    #[test]
    fn empty_spec_is_empty() {
        let spec = parse("e.yml", "{}\n").unwrap();
        assert!(spec.image_refs().is_empty());
    }

    #[test]
    fn unknown_top_level_field() {
        let e = err(
            "kernel:\n  image: linuxkit/kernel:6.6\nservice:\n  - name: a\n    image: alpine\n",
        );
        assert!(e.starts_with("examples/x.yml:3:1: unknown field `service`"), "{e}");
        assert!(e.contains("did you mean `services`?"), "{e}");
    }

    #[test]
    fn unknown_container_field_with_hint() {
        let e = err("services:\n  - name: a\n    image: alpine\n    comand: [\"sh\"]\n");
        assert!(e.starts_with("examples/x.yml:4:5: services[0]: unknown field `comand`"), "{e}");
        assert!(e.contains("\n\nhint: did you mean `command`?"), "{e}");
    }

    #[test]
    fn unknown_field_in_x_cairn() {
        let e = err("x-cairn:\n  source-date: 1\n");
        assert!(e.contains("examples/x.yml:2:3:"), "{e}");
        assert!(e.contains("did you mean `source-date-epoch`?"), "{e}");
    }

    #[test]
    fn wrong_type() {
        let e = err("services:\n  - name: a\n    image: alpine\n    readonly: maybe\n");
        assert!(e.starts_with("examples/x.yml:4:15: services[0].readonly: invalid type"), "{e}");
        let e = err("onboot: {name: a}\n");
        assert!(
            e.starts_with(
                "examples/x.yml:1:9: onboot: invalid type: map, expected a list of containers"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_mode() {
        let e = err("files:\n  - path: etc/x\n    contents: hi\n    mode: \"0985\"\n");
        assert!(
            e.starts_with(
                "examples/x.yml:4:11: files[0].mode: mode \"0985\" is not an octal number"
            ),
            "{e}"
        );
        let e = err("files:\n  - path: etc/x\n    contents: hi\n    mode: 077777\n");
        assert!(e.contains("mode \"077777\" is not an octal number"), "{e}");
    }

    #[test]
    fn duplicate_names() {
        let e = err(
            "onboot:\n  - name: a\n    image: alpine\n  - name: b\n    image: alpine\n  - name: a\n    image: busybox\n",
        );
        assert!(e.contains("examples/x.yml:2:3: onboot: duplicate container name \"a\" at index 2 (first used at index 0)"), "{e}");
    }

    #[test]
    fn bad_container_names() {
        let e = err("services:\n  - name: \"\"\n    image: alpine\n");
        assert!(e.contains("examples/x.yml:2:5: services[0]: container name is empty"), "{e}");
        let e = err("services:\n  - name: ../../etc\n    image: alpine\n");
        assert!(e.contains("cannot be used as a directory name"), "{e}");
        let e = err("services:\n  - image: alpine\n");
        assert!(e.contains("missing field `name`"), "{e}");
    }

    #[test]
    fn bad_image_ref() {
        let e = err(
            "onboot:\n  - name: ok\n    image: alpine\n  - name: dhcpcd\n    image: Linuxkit/DHCPCD:v1\n",
        );
        assert!(
            e.starts_with(
                "examples/x.yml:5:12: onboot[1].image: image reference \"Linuxkit/DHCPCD:v1\""
            ),
            "{e}"
        );
        let e = err(&format!("init:\n  - linuxkit/init@{}\n", "sha256:abc"));
        assert!(e.starts_with("examples/x.yml:2:5: init[0]: image reference"), "{e}");
    }

    #[test]
    fn dotdot_in_file_path() {
        let e = err("files:\n  - path: etc/../../root/x\n    contents: hi\n");
        assert!(
            e.starts_with("examples/x.yml:2:5: files[0]: path \"etc/../../root/x\" climbs out"),
            "{e}"
        );
    }

    #[test]
    fn file_kind_rules() {
        let e = err("files:\n  - path: etc/x\n    contents: hi\n    source: /etc/passwd\n");
        assert!(e.contains("sets contents and source: choose exactly one"), "{e}");
        let e = err("files:\n  - path: etc/x\n    directory: true\n    contents: hi\n");
        assert!(e.contains("sets directory and contents"), "{e}");
        let e = err("files:\n  - path: etc/x\n");
        assert!(e.contains("needs exactly one of"), "{e}");
        let e = err("files:\n  - path: etc/x\n    contents: a\n    optional: true\n");
        assert!(e.contains("optional applies only to source"), "{e}");
        let e = err("files:\n  - path: etc/x\n    metadata: toml\n");
        assert!(e.contains("metadata format \"toml\""), "{e}");
    }

    #[test]
    fn source_date_out_of_range() {
        let e = err("x-cairn:\n  source-date-epoch: 99999999999999\n");
        assert!(
            e.starts_with("examples/x.yml:2:22: x-cairn.source-date-epoch: source-date-epoch"),
            "{e}"
        );
    }

    #[test]
    fn malformed_yaml_has_location() {
        let e = err("services:\n  - name: a\n   image: [\n");
        assert!(e.starts_with("examples/x.yml:"), "{e}");
        assert!(e.split(':').nth(1).is_some_and(|l| l.parse::<usize>().is_ok()), "{e}");
    }

    #[test]
    fn too_large() {
        let big = " ".repeat(MAX_SPEC_LEN + 1);
        assert!(matches!(parse("big.yml", &big), Err(SpecError::TooLarge { .. })));
    }

    #[test]
    fn label_config() {
        let c = ContainerConfig::from_label(
            r#"{"binds":["/dev:/dev"],"capabilities":["all"],"net":"host"}"#,
        )
        .unwrap();
        assert_eq!(c.net.as_deref(), Some("host"));
        let e = ContainerConfig::from_label(r#"{"name":"x"}"#).unwrap_err();
        assert!(e.contains("unknown field `name`"), "{e}");
    }

    #[test]
    fn content_digest_is_sha256_of_bytes() {
        assert_eq!(
            content_digest("").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("comand", "command"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        #[derive(Serialize)]
        struct OutContainer {
            name: String,
            image: String,
            command: Vec<String>,
        }

        #[derive(Serialize)]
        struct OutSpec {
            services: Vec<OutContainer>,
        }

        proptest! {
            #[test]
            fn containers_round_trip(
                entries in proptest::collection::btree_map(
                    "[a-z0-9][a-z0-9_.-]{0,20}",
                    proptest::collection::vec(any::<String>(), 0..5),
                    0..6,
                )
            ) {
                let out = OutSpec {
                    services: entries
                        .iter()
                        .map(|(n, cmd)| OutContainer { name: n.clone(), image: "alpine:3.19".into(), command: cmd.clone() })
                        .collect(),
                };
                let yaml = serde_norway::to_string(&out).unwrap();
                let spec = parse("prop.yml", &yaml).unwrap();
                prop_assert_eq!(spec.services.len(), entries.len());
                for (c, (n, cmd)) in spec.services.iter().zip(entries.iter()) {
                    prop_assert_eq!(&c.name, n);
                    prop_assert_eq!(c.command.as_ref(), Some(cmd));
                    prop_assert_eq!(c.image.reference.name(), "docker.io/library/alpine");
                }
            }
        }
    }
}
