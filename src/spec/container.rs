//! `onboot`, `onshutdown` and `services` entries: [`Container`], the settings it shares with
//! an image's `org.mobyproject.config` label ([`ContainerConfig`]), and the mount, device, id
//! and `runtime:` types those settings use.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{MAX_SPEC_LEN, Resources, SpecError, SpecImage, ValueError, deserialize_validated};
use crate::yaml_diag::unknown_field_hint;

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
                        return Err(de::Error::custom(ValueError::DuplicateContainer {
                            name: c.name,
                            index: out.len(),
                            first: *first,
                        }));
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
/// see [`Spec::id_map`](super::Spec::id_map)).
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

fn check_container_name(name: &str) -> Result<(), ValueError> {
    if name.is_empty() {
        return Err(ValueError::EmptyContainerName);
    }
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ValueError::ContainerNameNotDir(name.to_string()));
    }
    Ok(())
}

impl ContainerConfig {
    /// Parses an image's `org.mobyproject.config` label (YAML or JSON). `name` and `image`
    /// are refused there, as in LinuxKit.
    pub fn from_label(label: &str) -> Result<ContainerConfig, SpecError> {
        if label.len() > MAX_SPEC_LEN {
            return Err(SpecError::LabelTooLarge { len: label.len(), limit: MAX_SPEC_LEN });
        }
        serde_norway::from_str::<ContainerConfig>(label).map_err(|e| {
            let message = e.to_string();
            SpecError::Label { hint: unknown_field_hint(&message), message }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_config() {
        let c = ContainerConfig::from_label(
            r#"{"binds":["/dev:/dev"],"capabilities":["all"],"net":"host"}"#,
        )
        .unwrap();
        assert_eq!(c.net.as_deref(), Some("host"));
        let e = ContainerConfig::from_label(r#"{"name":"x"}"#).unwrap_err();
        assert!(matches!(e, SpecError::Label { .. }), "{e}");
        assert!(e.to_string().contains("unknown field `name`"), "{e}");
        let big = format!("{{\"net\":\"{}\"}}", "x".repeat(MAX_SPEC_LEN));
        let e = ContainerConfig::from_label(&big).unwrap_err();
        assert!(matches!(e, SpecError::LabelTooLarge { limit: MAX_SPEC_LEN, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("label is {} bytes, more than {MAX_SPEC_LEN}", big.len())
        );
    }
}
