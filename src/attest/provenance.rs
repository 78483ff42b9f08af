//! SLSA Provenance v1 (<https://slsa.dev/spec/v1.0/provenance>) in an in-toto Statement v1.
//!
//! The statement's subjects are every output file with its sha256, sorted by name. The
//! predicate:
//! - `buildDefinition.buildType` is [`BUILD_TYPE`](super::BUILD_TYPE)
//!   (`https://cairn.dev/buildtypes/image/v1`). Its `externalParameters` are exactly the
//!   inputs that change the output: `spec` (`path` for display, `digest.sha256` of its
//!   bytes), `name` (output base name), `formats` (as given) and `sourceDateEpoch` (decimal
//!   string, as the environment variable is written). `internalParameters` carries
//!   `cairnVersion`.
//! - `resolvedDependencies` lists, in spec order, for every component: the image (uri = its
//!   `pkg:oci` purl, digest = the pinned top digest, annotations: role, reference), its index
//!   when distinct, manifest, config and every layer (uri = `oci://<registry>/<repository>@
//!   sha256:<hex>`, the layer's `mediaType` and size), and the Debian package an imported
//!   `.deb` brought (uri = its `pkg:deb` purl); then every source file (uri `file:<path as
//!   in the spec>`).
//! - `runDetails.builder.id` is the configured builder id
//!   ([`DEFAULT_BUILDER_ID`](super::DEFAULT_BUILDER_ID) by default) and `builder.version`
//!   maps `cairn` to its version. There is no `metadata`: no invocation id (it would be
//!   random) and no `startedOn`/`finishedOn` (wall-clock time); no byproducts.

use serde_json::{Map, Value, json};

use crate::digest::Digest;
use crate::reference::ImageRef;

use super::{BUILD_TYPE, BuildFacts, Component, STATEMENT_TYPE, packages, purl, subjects_json};

/// The provenance predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

fn digest_set(d: &Digest) -> Value {
    json!({ "sha256": d.hex() })
}

/// `oci://<registry>/<repository>@sha256:<hex>` for a blob of the component's repository.
fn blob_uri(c: &Component, d: &Digest) -> String {
    let repo = ImageRef::parse(&c.reference).map(|r| r.name()).unwrap_or_else(|_| c.name.clone());
    format!("oci://{repo}@{d}")
}

fn component_dependencies(c: &Component, out: &mut Vec<Value>) {
    let id = format!("{}/{}", c.role, c.name);
    out.push(json!({
        "name": id,
        "uri": purl::oci(&c.reference, &c.digest),
        "digest": digest_set(&c.digest),
        "annotations": { "role": c.role, "reference": c.reference },
    }));
    let mut blob = |part: String, d: &Digest, extra: Map<String, Value>| {
        let mut rd = Map::new();
        rd.insert("name".into(), json!(format!("{id}/{part}")));
        rd.insert("uri".into(), json!(blob_uri(c, d)));
        rd.insert("digest".into(), digest_set(d));
        rd.extend(extra);
        out.push(Value::Object(rd));
    };
    if let Some(index) = c.index.filter(|i| *i != c.digest) {
        blob("index".into(), &index, Map::new());
    }
    blob("manifest".into(), &c.manifest, Map::new());
    blob("config".into(), &c.config, Map::new());
    for (i, layer) in c.layers.iter().enumerate() {
        let mut extra = Map::new();
        extra.insert("mediaType".into(), json!(layer.media_type));
        extra.insert("annotations".into(), json!({ "size": layer.size.to_string() }));
        blob(format!("layers/{i}"), &layer.digest, extra);
    }
    for p in packages::from_deb_labels(&c.labels) {
        out.push(json!({
            "name": format!("{id}/deb/{}", p.name),
            "uri": purl::os_package(&p, c.os_release.as_ref()),
            "annotations": { "component": id },
        }));
    }
}

/// The provenance statement of a build.
pub fn provenance_statement(facts: &BuildFacts) -> Value {
    let mut deps = Vec::new();
    for c in &facts.components {
        component_dependencies(c, &mut deps);
    }
    for f in &facts.files {
        deps.push(json!({
            "name": f.source,
            "uri": format!("file:{}", purl::encode_path(&f.source)),
            "digest": digest_set(&f.digest),
        }));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects_json(facts),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "spec": { "path": facts.spec_path, "digest": digest_set(&facts.spec_digest) },
                    "name": facts.name,
                    "formats": facts.formats,
                    "sourceDateEpoch": facts.source_date.secs().to_string(),
                },
                "internalParameters": { "cairnVersion": facts.cairn_version },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": facts.builder_id,
                    "version": { "cairn": facts.cairn_version },
                },
            },
        },
    })
}
