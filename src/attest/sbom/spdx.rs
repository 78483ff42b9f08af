//! SPDX 2.3 JSON (<https://spdx.github.io/spdx-spec/v2.3/>).
//!
//! Packages, by SPDXID prefix:
//! - `SPDXRef-Image`: the image (purpose `OPERATING-SYSTEM`); the document DESCRIBES it.
//! - `SPDXRef-Artifact-<file>`: each output file with its SHA256 (purpose `FILE`); the image
//!   GENERATES it.
//! - `SPDXRef-Component-<role>-<name>`: each component image (purpose `CONTAINER`): version =
//!   tag, checksum = manifest sha256, `pkg:oci` purl; the image CONTAINS it.
//! - `SPDXRef-Layer-<hex>`: each layer blob (purpose `ARCHIVE`); its component CONTAINS it.
//! - `SPDXRef-Package-<type>-<name>-<version>`: each OS package (`pkg:deb`/`pkg:apk` purl,
//!   declared licence per [`license`](crate::attest::license)); its component CONTAINS it.
//!
//! Nothing is random or timed: `created` is the source date, ids derive from names and
//! digests, and `documentNamespace` is `https://cairn.dev/spdx/<name>-<sha256>` where the
//! digest is over the document's own canonical bytes with the namespace left out.
//!
//! The types ([`Document`], [`Package`], …) hold the SPDX 2.3 fields cairn writes and
//! `verify` reads (the packages' names, versions and purls, for a policy's package rules).
//! Fields SPDX marks required are required; unknown fields are ignored on reading, since SPDX
//! documents from other producers carry fields cairn does not model (files, snippets, …).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attest::license::Declared;
use crate::attest::{BuildFacts, OsPackage, PackageKind, sanitize_id, timestamp, to_json_line};
use crate::digest::Digest;

use super::{Ids, Inventory, component_version};

/// Prefix of every document namespace cairn writes.
pub const NAMESPACE_PREFIX: &str = "https://cairn.dev/spdx/";

const NOASSERTION: &str = "NOASSERTION";
const IMAGE_ID: &str = "SPDXRef-Image";

/// An SPDX 2.3 document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub spdx_version: String,
    pub data_license: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    /// `None` only while [`document`] takes the digest the namespace is made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_namespace: Option<String>,
    pub creation_info: CreationInfo,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub relationships: Vec<Relationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub has_extracted_licensing_infos: Vec<ExtractedLicense>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationInfo {
    pub created: String,
    pub creators: Vec<String>,
}

/// An SPDX package. cairn fills every optional field it knows for every package except
/// those noted in the module doc; absent fields are not written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_file_name: Option<String>,
    pub download_location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_analyzed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_concluded: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_declared: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copyright_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supplier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_package_purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<ExternalRef>,
}

impl Package {
    /// The locators of the package's `purl` external references.
    pub fn purls(&self) -> impl Iterator<Item = &str> {
        self.external_refs
            .iter()
            .filter(|r| r.reference_type == "purl")
            .map(|r| r.reference_locator.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    pub algorithm: String,
    pub checksum_value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub reference_category: String,
    pub reference_type: String,
    pub reference_locator: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub spdx_element_id: String,
    pub relationship_type: String,
    pub related_spdx_element: String,
}

/// A `LicenseRef-…` with the licence text cairn found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractedLicense {
    pub license_id: String,
    pub extracted_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn purl_ref(purl: &str) -> Vec<ExternalRef> {
    vec![ExternalRef {
        reference_category: "PACKAGE-MANAGER".into(),
        reference_type: "purl".into(),
        reference_locator: purl.into(),
    }]
}

fn sha256(d: &Digest) -> Vec<Checksum> {
    vec![Checksum { algorithm: "SHA256".into(), checksum_value: d.hex() }]
}

/// A package with the fields every cairn package shares.
fn package(id: &str, name: &str, purpose: &str) -> Package {
    let noassertion = || Some(NOASSERTION.to_string());
    Package {
        spdx_id: id.into(),
        name: name.into(),
        version_info: None,
        package_file_name: None,
        download_location: NOASSERTION.into(),
        files_analyzed: Some(false),
        license_concluded: noassertion(),
        license_declared: noassertion(),
        copyright_text: noassertion(),
        supplier: None,
        source_info: None,
        comment: None,
        primary_package_purpose: Some(purpose.into()),
        checksums: Vec::new(),
        external_refs: Vec::new(),
    }
}

/// `Name <email>` → `Person: Name (email)`; `None` for anything SPDX's actor syntax could
/// misread (parentheses) or that is not of that shape.
fn supplier(maintainer: &str) -> Option<String> {
    let (name, rest) = maintainer.split_once('<')?;
    let email = rest.strip_suffix('>')?.trim();
    let name = name.trim();
    let bad = |s: &str| s.is_empty() || s.contains(['(', ')', '<', '>', '\n']);
    if bad(name) || bad(email) {
        return None;
    }
    Some(format!("Person: {name} ({email})"))
}

fn os_package(id: &str, purl: &str, p: &OsPackage, refs: &mut BTreeMap<String, String>) -> Package {
    let mut m = package(id, &p.name, "LIBRARY");
    m.version_info = Some(p.version.clone());
    m.external_refs = purl_ref(purl);
    if let Some(declared) = p.license.as_deref().and_then(Declared::classify) {
        let spdx = declared.spdx();
        if let Declared::Other(text) = &declared {
            refs.insert(spdx.clone(), text.clone());
        }
        m.license_declared = Some(spdx);
    }
    m.supplier = p.maintainer.as_deref().and_then(supplier);
    if let Some(src) = &p.source {
        let what = match p.kind {
            PackageKind::Deb => "source package",
            PackageKind::Apk => "origin",
        };
        m.source_info = Some(format!("built package from {what}: {src}"));
    }
    m
}

fn relationship(a: &str, ty: &str, b: &str) -> Relationship {
    Relationship {
        spdx_element_id: a.to_string(),
        relationship_type: ty.to_string(),
        related_spdx_element: b.to_string(),
    }
}

/// The SPDX 2.3 document of a build.
pub fn document(facts: &BuildFacts) -> Document {
    let inv = Inventory::new(facts);
    let mut ids = Ids::default();
    ids.alloc(IMAGE_ID.to_string());
    let mut packages = Vec::new();
    let mut rels = Vec::new();
    let mut license_refs: BTreeMap<String, String> = BTreeMap::new();

    let mut image = package(IMAGE_ID, &facts.name, "OPERATING-SYSTEM");
    image.comment = Some(format!(
        "Built by cairn from {} (sha256:{}), formats: {}",
        facts.spec_path,
        facts.spec_digest.hex(),
        facts.formats.join(", ")
    ));
    packages.push(image);
    rels.push(relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID));

    let mut subjects: Vec<_> = facts.subjects.iter().collect();
    subjects.sort();
    for s in subjects {
        let id = ids.alloc(format!("SPDXRef-Artifact-{}", sanitize_id(&s.name)));
        let mut m = package(&id, &s.name, "FILE");
        m.package_file_name = Some(s.name.clone());
        m.checksums = sha256(&s.digest);
        packages.push(m);
        rels.push(relationship(IMAGE_ID, "GENERATES", &id));
    }

    let mut layer_ids = BTreeMap::new();
    for (digest, layer) in &inv.layers {
        let id = ids.alloc(format!("SPDXRef-Layer-{}", digest.hex()));
        let mut m = package(&id, &digest.to_string(), "ARCHIVE");
        m.checksums = sha256(digest);
        m.comment =
            Some(format!("OCI layer, media type {}, {} bytes", layer.media_type, layer.size));
        packages.push(m);
        layer_ids.insert(*digest, id);
    }

    let mut package_ids = BTreeMap::new();
    for (purl, p) in &inv.packages {
        let kind = match p.kind {
            PackageKind::Deb => "deb",
            PackageKind::Apk => "apk",
        };
        let id =
            ids.alloc(sanitize_id(&format!("SPDXRef-Package-{kind}-{}-{}", p.name, p.version)));
        packages.push(os_package(&id, purl, p, &mut license_refs));
        package_ids.insert(purl.clone(), id);
    }

    for entry in &inv.components {
        let c = entry.component;
        let id = ids.alloc(sanitize_id(&format!("SPDXRef-Component-{}-{}", c.role, c.name)));
        let mut m = package(&id, &c.name, "CONTAINER");
        m.version_info = Some(component_version(c));
        m.checksums = sha256(&c.locked.manifest);
        m.external_refs = purl_ref(&entry.purl);
        let mut comment = format!(
            "{} component {}, image {} at {}, manifest {}, config {}",
            c.role, c.name, c.locked.reference, c.locked.digest, c.locked.manifest, c.locked.config
        );
        if let Some(os) = &c.os.release {
            comment.push_str(&format!(
                ", OS {}",
                os.pretty_name.clone().unwrap_or_else(|| os.id.clone())
            ));
        }
        m.comment = Some(comment);
        packages.push(m);
        rels.push(relationship(IMAGE_ID, "CONTAINS", &id));
        for d in &entry.layers {
            if let Some(l) = layer_ids.get(d) {
                rels.push(relationship(&id, "CONTAINS", l));
            }
        }
        for purl in &entry.packages {
            if let Some(p) = package_ids.get(purl) {
                rels.push(relationship(&id, "CONTAINS", p));
            }
        }
    }

    packages.sort_by(|a, b| a.spdx_id.cmp(&b.spdx_id));
    rels.sort();
    rels.dedup();

    let mut doc = Document {
        spdx_version: "SPDX-2.3".into(),
        data_license: "CC0-1.0".into(),
        spdx_id: "SPDXRef-DOCUMENT".into(),
        name: facts.name.clone(),
        document_namespace: None,
        creation_info: CreationInfo {
            created: timestamp(facts.source_date),
            creators: vec![format!("Tool: cairn-{}", facts.builder.cairn_version)],
        },
        packages,
        relationships: rels,
        has_extracted_licensing_infos: license_refs
            .into_iter()
            .map(|(id, text)| ExtractedLicense {
                license_id: id,
                extracted_text: text.clone(),
                name: Some(text),
            })
            .collect(),
    };
    let content = Digest::of(&to_json_line(&doc));
    doc.document_namespace =
        Some(format!("{NAMESPACE_PREFIX}{}-{}", sanitize_id(&facts.name), content.hex()));
    doc
}
