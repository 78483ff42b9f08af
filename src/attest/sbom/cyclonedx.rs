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

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::attest::license::Declared;
use crate::attest::{BuildFacts, timestamp, to_json_line};
use crate::digest::Digest;

use super::{Inventory, component_version};

const IMAGE_REF: &str = "image";

fn hashes(d: &Digest) -> Value {
    json!([{ "alg": "SHA-256", "content": d.hex() }])
}

fn property(name: &str, value: impl Into<String>) -> Value {
    json!({ "name": name, "value": value.into() })
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

fn licenses(text: &str) -> Option<Value> {
    Some(match Declared::classify(text)? {
        Declared::Expression(e) if !e.contains(' ') => json!([{ "license": { "id": e } }]),
        Declared::Expression(e) => json!([{ "expression": e }]),
        Declared::Other(t) => json!([{ "license": { "name": t } }]),
    })
}

/// The CycloneDX 1.6 BOM of a build.
pub fn document(facts: &BuildFacts) -> Value {
    let inv = Inventory::new(facts);
    let mut components = Vec::new();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();

    let mut subjects: Vec<_> = facts.subjects.iter().collect();
    subjects.sort();
    let artifacts: Vec<Value> = subjects
        .iter()
        .map(|s| {
            json!({
                "type": "file",
                "bom-ref": format!("artifact:{}", s.name),
                "name": s.name,
                "hashes": hashes(&s.digest),
            })
        })
        .collect();

    for (digest, layer) in &inv.layers {
        let bom_ref = format!("layer:{digest}");
        let mut v = json!({
            "type": "file",
            "bom-ref": bom_ref,
            "name": digest.to_string(),
            "hashes": hashes(digest),
            "properties": [property("cairn:layer:size", layer.size.to_string())],
        });
        if is_mime_type(&layer.media_type) {
            v["mime-type"] = json!(layer.media_type);
        }
        components.push(v);
        deps.insert(bom_ref, Vec::new());
    }

    for (purl, p) in &inv.packages {
        let mut v = json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": purl,
        });
        if let Some(l) = p.license.as_deref().and_then(licenses) {
            v["licenses"] = l;
        }
        let mut props = Vec::new();
        if let Some(src) = &p.source {
            props.push(property("cairn:package:source", src.clone()));
        }
        if let Some(m) = &p.maintainer {
            props.push(property("cairn:package:maintainer", m.clone()));
        }
        if !props.is_empty() {
            v["properties"] = json!(props);
        }
        components.push(v);
        deps.insert(purl.clone(), Vec::new());
    }

    let mut image_deps = Vec::new();
    for entry in &inv.components {
        let c = entry.component;
        let bom_ref = format!("component:{}/{}", c.role, c.name);
        let mut props = vec![
            property("cairn:component:role", c.role.clone()),
            property("cairn:component:reference", c.reference.clone()),
            property("cairn:component:digest", c.digest.to_string()),
            property("cairn:component:config", c.config.to_string()),
        ];
        if let Some(os) = &c.os_release {
            props.push(property(
                "cairn:component:os",
                os.pretty_name.clone().unwrap_or_else(|| os.id.clone()),
            ));
        }
        components.push(json!({
            "type": "container",
            "bom-ref": bom_ref,
            "name": c.name,
            "version": component_version(c),
            "purl": entry.purl,
            "hashes": hashes(&c.manifest),
            "properties": props,
        }));
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

    components.sort_by(|a, b| a["bom-ref"].as_str().cmp(&b["bom-ref"].as_str()));
    let dependencies: Vec<Value> =
        deps.iter().map(|(r, on)| json!({ "ref": r, "dependsOn": on })).collect();

    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": timestamp(facts.source_date),
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "cairn",
                    "version": facts.cairn_version,
                }],
            },
            "component": {
                "type": "operating-system",
                "bom-ref": IMAGE_REF,
                "name": facts.name,
                "components": artifacts,
                "properties": [
                    property("cairn:spec:path", facts.spec_path.clone()),
                    property("cairn:spec:digest", facts.spec_digest.to_string()),
                    property("cairn:formats", facts.formats.join(",")),
                ],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    let content = Digest::of(&to_json_line(&bom));
    bom["serialNumber"] = json!(format!("urn:uuid:{}", uuid_from(&content)));
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
