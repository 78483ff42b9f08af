//! SBOMs of an image: [`spdx`] (SPDX 2.3 JSON) and [`cyclonedx`] (CycloneDX 1.6 JSON).
//!
//! Both describe the same `Inventory`: the image (with its output files), its component
//! images, their layers and the OS packages found in them, each listed once and sorted, so
//! the documents do not depend on the order facts were collected in (beyond what content
//! says). The same package (same purl) in two components is one entry that both contain.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;

use super::{BuildFacts, Component, LayerFacts, OsPackage, packages, purl};

pub mod cyclonedx;
pub mod spdx;

/// One component with what it contains, by key into the [`Inventory`] maps.
pub(crate) struct ComponentEntry<'a> {
    pub component: &'a Component,
    pub purl: String,
    /// Layer digests in layer order, deduplicated.
    pub layers: Vec<Digest>,
    /// Package purls, sorted.
    pub packages: BTreeSet<String>,
}

/// Everything both SBOMs list.
pub(crate) struct Inventory<'a> {
    /// Sorted by (name, role, digest, reference).
    pub components: Vec<ComponentEntry<'a>>,
    pub layers: BTreeMap<Digest, &'a LayerFacts>,
    /// By purl. When components disagree about a purl's details, the smallest record wins,
    /// so the result does not depend on component order.
    pub packages: BTreeMap<String, OsPackage>,
}

impl<'a> Inventory<'a> {
    pub fn new(facts: &'a BuildFacts) -> Inventory<'a> {
        let mut sorted: Vec<&Component> = facts.components.iter().collect();
        sorted.sort_by(|a, b| {
            (&a.name, &a.role, &a.locked.digest, &a.locked.reference).cmp(&(
                &b.name,
                &b.role,
                &b.locked.digest,
                &b.locked.reference,
            ))
        });
        let mut layers = BTreeMap::new();
        let mut all_packages: BTreeMap<String, OsPackage> = BTreeMap::new();
        let mut components = Vec::new();
        for c in sorted {
            let mut layer_digests = Vec::new();
            for l in &c.layers {
                layers.entry(l.digest).or_insert(l);
                if !layer_digests.contains(&l.digest) {
                    layer_digests.push(l.digest);
                }
            }
            let mut pkg_purls = BTreeSet::new();
            for p in c.os.packages.iter().cloned().chain(packages::from_deb_labels(&c.labels)) {
                let p_purl = purl::os_package(&p, c.os.release.as_ref());
                match all_packages.get(&p_purl) {
                    Some(existing) if *existing <= p => {}
                    _ => {
                        all_packages.insert(p_purl.clone(), p);
                    }
                }
                pkg_purls.insert(p_purl);
            }
            components.push(ComponentEntry {
                component: c,
                purl: purl::oci(&c.locked.reference, &c.locked.digest),
                layers: layer_digests,
                packages: pkg_purls,
            });
        }
        Inventory { components, layers, packages: all_packages }
    }
}

/// The tag of a component reference, else its digest: what an SBOM calls its version.
pub(crate) fn component_version(c: &Component) -> String {
    crate::reference::ImageRef::parse(&c.locked.reference)
        .ok()
        .and_then(|r| r.tag().map(str::to_string))
        .unwrap_or_else(|| c.locked.digest.to_string())
}

/// Hands out unique ids: a taken base gets `-2`, `-3`, … in allocation order.
#[derive(Default)]
pub(crate) struct Ids(BTreeSet<String>);

impl Ids {
    pub fn alloc(&mut self, base: String) -> String {
        let mut id = base.clone();
        let mut n = 2;
        while self.0.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        self.0.insert(id.clone());
        id
    }
}
