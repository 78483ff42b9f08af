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

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::attest::license::Declared;
use crate::attest::{BuildFacts, OsPackage, PackageKind, sanitize_id, timestamp, to_json_line};
use crate::digest::Digest;

use super::{Ids, Inventory, component_version};

/// Prefix of every document namespace cairn writes.
pub const NAMESPACE_PREFIX: &str = "https://cairn.dev/spdx/";

const NOASSERTION: &str = "NOASSERTION";
const IMAGE_ID: &str = "SPDXRef-Image";

fn purl_ref(purl: &str) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }])
}

fn sha256(d: &Digest) -> Value {
    json!([{ "algorithm": "SHA256", "checksumValue": d.hex() }])
}

/// A package with the fields every cairn package shares.
fn package(id: &str, name: &str, purpose: &str) -> serde_json::Map<String, Value> {
    let v = json!({
        "SPDXID": id,
        "name": name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": purpose,
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
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

fn os_package(id: &str, purl: &str, p: &OsPackage, refs: &mut BTreeMap<String, String>) -> Value {
    let mut m = package(id, &p.name, "LIBRARY");
    m.insert("versionInfo".into(), json!(p.version));
    m.insert("externalRefs".into(), purl_ref(purl));
    if let Some(declared) = p.license.as_deref().and_then(Declared::classify) {
        let spdx = declared.spdx();
        if let Declared::Other(text) = &declared {
            refs.insert(spdx.clone(), text.clone());
        }
        m.insert("licenseDeclared".into(), json!(spdx));
    }
    if let Some(s) = p.maintainer.as_deref().and_then(supplier) {
        m.insert("supplier".into(), json!(s));
    }
    if let Some(src) = &p.source {
        let what = match p.kind {
            PackageKind::Deb => "source package",
            PackageKind::Apk => "origin",
        };
        m.insert("sourceInfo".into(), json!(format!("built package from {what}: {src}")));
    }
    Value::Object(m)
}

fn relationship(a: &str, ty: &str, b: &str) -> (String, String, String) {
    (a.to_string(), ty.to_string(), b.to_string())
}

/// The SPDX 2.3 document of a build.
pub fn document(facts: &BuildFacts) -> Value {
    let inv = Inventory::new(facts);
    let mut ids = Ids::default();
    ids.alloc(IMAGE_ID.to_string());
    let mut packages = Vec::new();
    let mut rels = Vec::new();
    let mut license_refs: BTreeMap<String, String> = BTreeMap::new();

    let mut image = package(IMAGE_ID, &facts.name, "OPERATING-SYSTEM");
    image.insert(
        "comment".into(),
        json!(format!(
            "Built by cairn from {} (sha256:{}), formats: {}",
            facts.spec_path,
            facts.spec_digest.hex(),
            facts.formats.join(", ")
        )),
    );
    packages.push(Value::Object(image));
    rels.push(relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID));

    let mut subjects: Vec<_> = facts.subjects.iter().collect();
    subjects.sort();
    for s in subjects {
        let id = ids.alloc(format!("SPDXRef-Artifact-{}", sanitize_id(&s.name)));
        let mut m = package(&id, &s.name, "FILE");
        m.insert("packageFileName".into(), json!(s.name));
        m.insert("checksums".into(), sha256(&s.digest));
        packages.push(Value::Object(m));
        rels.push(relationship(IMAGE_ID, "GENERATES", &id));
    }

    let mut layer_ids = BTreeMap::new();
    for (digest, layer) in &inv.layers {
        let id = ids.alloc(format!("SPDXRef-Layer-{}", digest.hex()));
        let mut m = package(&id, &digest.to_string(), "ARCHIVE");
        m.insert("checksums".into(), sha256(digest));
        m.insert(
            "comment".into(),
            json!(format!("OCI layer, media type {}, {} bytes", layer.media_type, layer.size)),
        );
        packages.push(Value::Object(m));
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
        m.insert("versionInfo".into(), json!(component_version(c)));
        m.insert("checksums".into(), sha256(&c.manifest));
        m.insert("externalRefs".into(), purl_ref(&entry.purl));
        let mut comment = format!(
            "{} component {}, image {} at {}, manifest {}, config {}",
            c.role, c.name, c.reference, c.digest, c.manifest, c.config
        );
        if let Some(os) = &c.os_release {
            comment.push_str(&format!(
                ", OS {}",
                os.pretty_name.clone().unwrap_or_else(|| os.id.clone())
            ));
        }
        m.insert("comment".into(), json!(comment));
        packages.push(Value::Object(m));
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

    packages.sort_by(|a, b| a["SPDXID"].as_str().cmp(&b["SPDXID"].as_str()));
    rels.sort();
    rels.dedup();
    let relationships: Vec<Value> = rels
        .iter()
        .map(|(a, ty, b)| {
            json!({ "spdxElementId": a, "relationshipType": ty, "relatedSpdxElement": b })
        })
        .collect();

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": facts.name,
        "creationInfo": {
            "created": timestamp(facts.source_date),
            "creators": [format!("Tool: cairn-{}", facts.cairn_version)],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !license_refs.is_empty() {
        let infos: Vec<Value> = license_refs
            .iter()
            .map(|(id, text)| json!({ "licenseId": id, "extractedText": text, "name": text }))
            .collect();
        doc["hasExtractedLicensingInfos"] = json!(infos);
    }
    let content = Digest::of(&to_json_line(&doc));
    doc["documentNamespace"] =
        json!(format!("{NAMESPACE_PREFIX}{}-{}", sanitize_id(&facts.name), content.hex()));
    doc
}
