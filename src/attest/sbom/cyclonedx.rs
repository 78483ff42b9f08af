//! CycloneDX 1.6 JSON (<https://cyclonedx.org/docs/1.6/json/>).
//!
//! - `metadata.component` is the image (type `operating-system`, bom-ref `image`), with the
//!   output files as its sub-components (type `file`, SHA-256, bom-ref `artifact:<file>`).
//! - `components`: each component image (type `container`, `pkg:oci` purl, SHA-256 of the
//!   manifest, bom-ref `component:<role>/<name>`), each layer (type `file`, bom-ref
//!   `layer:sha256:<hex>`), each OS package (type `library`, bom-ref = its purl, licences as
//!   an SPDX id, an SPDX expression, or a free-text name; see
//!   [`license`](crate::attest::license)).
//! - `dependencies`: image → components → layers and packages.
//!
//! `metadata.timestamp` is the source date. `serialNumber` is `urn:uuid:` plus a UUID made
//! from the first 128 bits of the sha256 of the BOM's canonical bytes (serial number left
//! out), with the version nibble set to 8 and the variant bits of RFC 9562: a version-8
//! ("custom") UUID, which RFC 9562 suggests for name-based UUIDs over SHA-256.
//!
//! The types ([`Bom`], [`Component`], …) hold the CycloneDX 1.6 fields cairn writes; unknown
//! fields are ignored on reading (nothing in cairn reads a BOM to decide anything).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attest::license::Declared;
use crate::attest::{BuildFacts, timestamp, to_json_line};
use crate::digest::Digest;

use super::{Inventory, component_version};

const IMAGE_REF: &str = "image";

/// A CycloneDX 1.6 BOM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    pub bom_format: String,
    pub spec_version: String,
    /// `None` only while [`document`] takes the digest the serial number is made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    pub version: u32,
    pub metadata: Metadata,
    #[serde(default)]
    pub components: Vec<Component>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub timestamp: String,
    pub tools: Tools,
    pub component: Component,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tools {
    pub components: Vec<Component>,
}

/// A component (the image, an output file, a component image, a layer, a package, a tool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Component {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<LicenseChoice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    /// Sub-components; written (possibly empty) only for the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<Component>>,
}

impl Component {
    fn new(type_: &str, bom_ref: Option<String>, name: &str) -> Component {
        Component {
            type_: type_.into(),
            bom_ref,
            name: name.into(),
            version: None,
            purl: None,
            mime_type: None,
            hashes: Vec::new(),
            licenses: Vec::new(),
            properties: Vec::new(),
            components: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hash {
    pub alg: String,
    pub content: String,
}

/// A licence: one SPDX id or name, or an SPDX expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LicenseChoice {
    License { license: License },
    Expression { expression: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[serde(rename = "ref")]
    pub ref_: String,
    pub depends_on: Vec<String>,
}

fn hashes(d: &Digest) -> Vec<Hash> {
    vec![Hash { alg: "SHA-256".into(), content: d.hex() }]
}

fn property(name: &str, value: impl Into<String>) -> Property {
    Property { name: name.into(), value: value.into() }
}

/// A deterministic UUID string from a digest (see the module doc).
pub fn uuid_from(d: &Digest) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn licenses(text: &str) -> Vec<LicenseChoice> {
    let license = |id, name| LicenseChoice::License { license: License { id, name } };
    match Declared::classify(text) {
        None => Vec::new(),
        Some(Declared::Expression(e)) if !e.contains(' ') => vec![license(Some(e), None)],
        Some(Declared::Expression(e)) => vec![LicenseChoice::Expression { expression: e }],
        Some(Declared::Other(t)) => vec![license(None, Some(t))],
    }
}

/// The CycloneDX 1.6 BOM of a build.
pub fn document(facts: &BuildFacts) -> Bom {
    let inv = Inventory::new(facts);
    let mut components = Vec::new();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();

    let mut subjects: Vec<_> = facts.subjects.iter().collect();
    subjects.sort();
    let artifacts: Vec<Component> = subjects
        .iter()
        .map(|s| Component {
            hashes: hashes(&s.digest),
            ..Component::new("file", Some(format!("artifact:{}", s.name)), &s.name)
        })
        .collect();

    for (digest, layer) in &inv.layers {
        let bom_ref = format!("layer:{digest}");
        components.push(Component {
            hashes: hashes(digest),
            properties: vec![property("cairn:layer:size", layer.size.to_string())],
            mime_type: is_mime_type(&layer.media_type).then(|| layer.media_type.clone()),
            ..Component::new("file", Some(bom_ref.clone()), &digest.to_string())
        });
        deps.insert(bom_ref, Vec::new());
    }

    for (purl, p) in &inv.packages {
        let mut props = Vec::new();
        if let Some(src) = &p.source {
            props.push(property("cairn:package:source", src.clone()));
        }
        if let Some(m) = &p.maintainer {
            props.push(property("cairn:package:maintainer", m.clone()));
        }
        components.push(Component {
            version: Some(p.version.clone()),
            purl: Some(purl.clone()),
            licenses: p.license.as_deref().map(licenses).unwrap_or_default(),
            properties: props,
            ..Component::new("library", Some(purl.clone()), &p.name)
        });
        deps.insert(purl.clone(), Vec::new());
    }

    let mut image_deps = Vec::new();
    for entry in &inv.components {
        let c = entry.component;
        let bom_ref = format!("component:{}/{}", c.role, c.name);
        let mut props = vec![
            property("cairn:component:role", c.role.clone()),
            property("cairn:component:reference", c.locked.reference.clone()),
            property("cairn:component:digest", c.locked.digest.to_string()),
            property("cairn:component:config", c.locked.config.to_string()),
        ];
        if let Some(os) = &c.os.release {
            props.push(property(
                "cairn:component:os",
                os.pretty_name.clone().unwrap_or_else(|| os.id.clone()),
            ));
        }
        components.push(Component {
            version: Some(component_version(c)),
            purl: Some(entry.purl.clone()),
            hashes: hashes(&c.locked.manifest),
            properties: props,
            ..Component::new("container", Some(bom_ref.clone()), &c.name)
        });
        let mut on: Vec<String> = entry.layers.iter().map(|d| format!("layer:{d}")).collect();
        on.extend(entry.packages.iter().cloned());
        on.sort();
        on.dedup();
        deps.insert(bom_ref.clone(), on);
        image_deps.push(bom_ref);
    }
    image_deps.sort();
    image_deps.dedup();
    deps.insert(IMAGE_REF.to_string(), image_deps);

    components.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));
    let dependencies: Vec<Dependency> =
        deps.into_iter().map(|(ref_, depends_on)| Dependency { ref_, depends_on }).collect();

    let mut bom = Bom {
        bom_format: "CycloneDX".into(),
        spec_version: "1.6".into(),
        serial_number: None,
        version: 1,
        metadata: Metadata {
            timestamp: timestamp(facts.source_date),
            tools: Tools {
                components: vec![Component {
                    version: Some(facts.builder.cairn_version.clone()),
                    ..Component::new("application", None, "cairn")
                }],
            },
            component: Component {
                components: Some(artifacts),
                properties: vec![
                    property("cairn:spec:path", facts.spec_path.clone()),
                    property("cairn:spec:digest", facts.spec_digest.to_string()),
                    property("cairn:formats", facts.formats.join(",")),
                ],
                ..Component::new("operating-system", Some(IMAGE_REF.into()), &facts.name)
            },
        },
        components,
        dependencies,
    };
    let content = Digest::of(&to_json_line(&bom));
    bom.serial_number = Some(format!("urn:uuid:{}", uuid_from(&content)));
    bom
}

/// The 1.6 schema's `mime-type` pattern: `^[-+a-z0-9.]+/[-+a-z0-9.]+$`.
fn is_mime_type(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-+.".contains(&b))
    };
    s.split_once('/').is_some_and(|(a, b)| ok(a) && ok(b))
}
