//! Collecting [`BuildFacts`] from what the earlier stages produced: the pinned inputs, the
//! package databases assembly found, and the emitted outputs. Pure: nothing here reads a
//! file, the clock or the environment.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::emit::Output;
use crate::lock::BuildInputs;
use crate::spec::Role;

use super::{
    BuildFacts, BuilderFacts, Component, LayerFacts, PackageDb, SourceFile, Subject,
    component_packages,
};

/// What the caller knows about the build beyond the stage values.
pub struct BuildContext<'a> {
    pub name: &'a str,
    pub spec_path: &'a str,
    pub spec_digest: Digest,
    pub formats: Vec<String>,
    pub builder_id: &'a str,
}

/// The facts the SBOMs and the provenance are made from. `package_dbs` is aligned with
/// `inputs.images`; `outputs` are the image files (the subjects).
pub fn build_facts(
    ctx: &BuildContext<'_>,
    inputs: &BuildInputs,
    package_dbs: &[Vec<PackageDb>],
    outputs: &[Output],
) -> BuildFacts {
    let components = inputs
        .images
        .iter()
        .enumerate()
        .map(|(i, pinned)| {
            let dbs = package_dbs.get(i).map(Vec::as_slice).unwrap_or(&[]);
            let os = component_packages(dbs);
            let labels: BTreeMap<String, String> = pinned
                .resolved
                .config_json
                .config()
                .as_ref()
                .and_then(|c| c.labels().as_ref())
                .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            Component {
                role: role_name(pinned.role).to_string(),
                name: pinned.name.clone(),
                locked: pinned.locked.clone(),
                layers: pinned
                    .resolved
                    .layers
                    .iter()
                    .map(|l| LayerFacts {
                        digest: l.digest,
                        size: l.size,
                        media_type: l.media_type.clone(),
                    })
                    .collect(),
                labels,
                os,
            }
        })
        .collect();
    let files = inputs
        .files
        .iter()
        .map(|(source, pinned)| SourceFile {
            source: source.clone(),
            digest: pinned.locked.digest,
            size: pinned.locked.size,
        })
        .collect();
    let mut subjects: Vec<Subject> =
        outputs.iter().map(|o| Subject { name: o.rel_path.clone(), digest: o.digest }).collect();
    subjects.sort();
    BuildFacts {
        name: ctx.name.to_string(),
        spec_path: ctx.spec_path.to_string(),
        spec_digest: ctx.spec_digest,
        formats: ctx.formats.clone(),
        source_date: inputs.source_date,
        builder: BuilderFacts {
            id: ctx.builder_id.to_string(),
            cairn_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        components,
        files,
        subjects,
    }
}

/// The spec section a role comes from, as the attestations name it.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Kernel => "kernel",
        Role::Init => "init",
        Role::Onboot => "onboot",
        Role::Onshutdown => "onshutdown",
        Role::Service => "services",
    }
}
