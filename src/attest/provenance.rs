//! SLSA Provenance v1 (<https://slsa.dev/spec/v1.0/provenance>) in an in-toto Statement v1.
//!
//! The statement's subjects are every output file with its sha256, sorted by name. The
//! predicate:
//! - `buildDefinition.buildType` is [`BUILD_TYPE`]
//!   (`https://cairn.dev/buildtypes/image/v1`). Its `externalParameters` are exactly the
//!   inputs that change the output: `spec` (`path` for display, `digest.sha256` of its
//!   bytes), `name` (output base name), `formats` (as given) and `sourceDateEpoch` (decimal
//!   string, as the environment variable is written). `internalParameters` carries
//!   `cairnVersion`.
//! - `resolvedDependencies` lists, in spec order, for every component: the image (uri = its
//!   `pkg:oci` purl, or `oci://<registry>/<repository>@sha256:<hex>` when the lock took it
//!   from a registry; digest = the pinned top digest, annotations: role, reference), its
//!   index when distinct, manifest, config and every layer (uri = `oci://<registry>/
//!   <repository>@sha256:<hex>`, the repository being the registry's the lock recorded, else
//!   the reference's; the layer's `mediaType` and size), and the Debian package an imported
//!   `.deb` brought (uri = its `pkg:deb` purl); then every source file (uri `file:<path as
//!   in the spec>`).
//! - `runDetails.builder.id` is the configured builder id
//!   ([`DEFAULT_BUILDER_ID`](super::DEFAULT_BUILDER_ID) by default) and `builder.version`
//!   maps `cairn` to its version. There is no `metadata`: no invocation id (it would be
//!   random) and no `startedOn`/`finishedOn` (wall-clock time); no byproducts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::digest::Digest;
use crate::reference::ImageRef;

use super::intoto::{ResourceDescriptor, Statement, digest_set};
use super::slsa::{
    BuildDefinition, Builder, ExternalParameters, ImageParameters, InternalParameters, Provenance,
    RunDetails, SpecParameter,
};
use super::{BUILD_TYPE, BuildFacts, Component, packages, purl, subjects};

pub use super::slsa::PREDICATE_TYPE;

/// `oci://<registry>/<repository>@sha256:<hex>` for a blob of the component's repository:
/// the registry repository the lock took it from, else the one its reference names.
fn blob_uri(c: &Component, d: &Digest) -> String {
    let repo = match &c.locked.repository {
        Some(r) => r.clone(),
        None => ImageRef::parse(&c.locked.reference)
            .map(|r| r.name())
            .unwrap_or_else(|_| c.name.clone()),
    };
    format!("oci://{repo}@{d}")
}

/// String annotations.
fn annotations<const N: usize>(pairs: [(&str, &str); N]) -> Option<BTreeMap<String, Value>> {
    Some(pairs.into_iter().map(|(k, v)| (k.to_string(), Value::from(v))).collect())
}

fn component_dependencies(c: &Component, out: &mut Vec<ResourceDescriptor>) {
    let id = format!("{}/{}", c.role, c.name);
    out.push(ResourceDescriptor {
        name: Some(id.clone()),
        // From a registry: where it can be fetched again; else the package URL.
        uri: Some(match c.locked.repository {
            Some(_) => blob_uri(c, &c.locked.digest),
            None => purl::oci(&c.locked.reference, &c.locked.digest),
        }),
        digest: Some(digest_set(&c.locked.digest)),
        annotations: annotations([("role", &c.role), ("reference", &c.locked.reference)]),
        ..Default::default()
    });
    let blob = |part: String, d: &Digest| ResourceDescriptor {
        name: Some(format!("{id}/{part}")),
        uri: Some(blob_uri(c, d)),
        digest: Some(digest_set(d)),
        ..Default::default()
    };
    if let Some(index) = c.locked.index.filter(|i| *i != c.locked.digest) {
        out.push(blob("index".into(), &index));
    }
    out.push(blob("manifest".into(), &c.locked.manifest));
    out.push(blob("config".into(), &c.locked.config));
    for (i, layer) in c.layers.iter().enumerate() {
        out.push(ResourceDescriptor {
            media_type: Some(layer.media_type.clone()),
            annotations: annotations([("size", &layer.size.to_string())]),
            ..blob(format!("layers/{i}"), &layer.digest)
        });
    }
    for p in packages::from_deb_labels(&c.labels) {
        out.push(ResourceDescriptor {
            name: Some(format!("{id}/deb/{}", p.name)),
            uri: Some(purl::os_package(&p, c.os.release.as_ref())),
            annotations: annotations([("component", &id)]),
            ..Default::default()
        });
    }
}

/// The provenance statement of a build.
pub fn provenance_statement(facts: &BuildFacts) -> Statement<Provenance> {
    let mut deps = Vec::new();
    for c in &facts.components {
        component_dependencies(c, &mut deps);
    }
    for f in &facts.files {
        deps.push(ResourceDescriptor {
            name: Some(f.source.clone()),
            uri: Some(format!("file:{}", purl::encode_path(&f.source))),
            digest: Some(digest_set(&f.digest)),
            ..Default::default()
        });
    }
    let predicate = Provenance {
        build_definition: BuildDefinition {
            build_type: BUILD_TYPE.to_string(),
            external_parameters: ExternalParameters::Image(ImageParameters {
                spec: SpecParameter {
                    path: facts.spec_path.clone(),
                    digest: digest_set(&facts.spec_digest),
                },
                name: facts.name.clone(),
                formats: facts.formats.clone(),
                source_date_epoch: facts.source_date.secs().to_string(),
            }),
            internal_parameters: Some(InternalParameters {
                cairn_version: Some(facts.builder.cairn_version.clone()),
            }),
            resolved_dependencies: deps,
        },
        run_details: RunDetails {
            builder: Builder {
                id: facts.builder.id.clone(),
                version: Some(BTreeMap::from([(
                    "cairn".to_string(),
                    facts.builder.cairn_version.clone(),
                )])),
            },
        },
    };
    Statement::new(subjects(facts), PREDICATE_TYPE, predicate)
}
