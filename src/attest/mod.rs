//! Attestations: SBOMs (SPDX 2.3, CycloneDX 1.6) and SLSA Provenance v1, as data.
//!
//! This module owns the JSON documents a build emits beside its image files and nothing else:
//! no I/O, no store or tree access, no signing. The build fills a [`BuildFacts`] (what went
//! in, what came out) and calls [`provenance::provenance_statement`],
//! [`sbom::spdx::document`], [`sbom::cyclonedx::document`] and [`sbom_statement`]; each is a
//! pure function of the facts, so the same facts always give the same bytes
//! ([`to_json_bytes`]).
//!
//! OS packages come from a few small files inside each component's layers
//! ([`PACKAGE_DB_PATHS`], [`PACKAGE_DB_DIR_PREFIXES`]): the build collects their raw bytes as
//! [`PackageDb`]s and [`component_packages`] parses them.
//!
//! Determinism: the only timestamp in any document is the source date; ids, the SPDX
//! document namespace and the CycloneDX serial number derive from content digests; lists are
//! sorted (or follow spec order where the order is meaningful, as for provenance
//! dependencies); [`to_json_bytes`] writes objects with sorted keys and no floats.
//!
//! The formats and the URIs cairn owns ([`BUILD_TYPE`], [`DEFAULT_BUILDER_ID`]) are
//! documented with golden examples in `attestations/README.md`.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::lock::LockedImage;
use crate::source_date::SourceDate;

pub mod facts;
pub mod intoto;
pub mod json;
pub mod license;
pub mod os_release;
pub mod packages;
pub mod provenance;
pub mod purl;
pub mod sbom;
pub mod slsa;

#[cfg(test)]
pub(crate) mod tests;

pub use intoto::STATEMENT_TYPE;
pub use json::{Document, to_json_bytes, to_json_line};
pub use os_release::OsRelease;
pub use packages::{OsFacts, OsPackage, PackageKind};

/// The SLSA `buildDefinition.buildType` of a cairn image build. Its external parameters are
/// documented in `attestations/README.md`; a new major version of them gets a new URI.
pub const BUILD_TYPE: &str = "https://cairn.dev/buildtypes/image/v1";

/// The builder id used when the user sets none: a build on the user's own machine, trusted
/// only as far as that machine is. CI systems should set their own (e.g. the workflow URI).
pub const DEFAULT_BUILDER_ID: &str = "https://cairn.dev/builder/local/v1";

/// The predicate type of the SBOM attestation ([`sbom_statement`]).
pub const SPDX_PREDICATE_TYPE: &str = "https://spdx.dev/Document/v2.3";

/// Exact paths (relative to the image root, no leading `/`) whose bytes the build collects
/// from each component's layers (the topmost version of each wins, whiteouts respected).
pub const PACKAGE_DB_PATHS: &[&str] =
    &["var/lib/dpkg/status", "lib/apk/db/installed", "etc/os-release", "usr/lib/os-release"];

/// Directory prefixes whose regular files the build also collects (distroless images keep
/// one dpkg status file per package there).
pub const PACKAGE_DB_DIR_PREFIXES: &[&str] = &["var/lib/dpkg/status.d/"];

/// Everything the attestations say about one build. Filled by the build; no field is read
/// from the network or the clock here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFacts {
    /// Output base name (`hello` for `hello.tar`).
    pub name: String,
    /// The spec path as the user gave it (relative), for display.
    pub spec_path: String,
    /// sha256 of the spec file's bytes.
    pub spec_digest: Digest,
    /// Output formats as given, e.g. `["tar", "kernel+initrd:gzip", "oci"]`.
    pub formats: Vec<String>,
    pub source_date: SourceDate,
    /// Who ran the build.
    pub builder: BuilderFacts,
    /// Component images in spec order.
    pub components: Vec<Component>,
    /// Files from the spec's `files` section that were read from disk.
    pub files: Vec<SourceFile>,
    /// Every output file (for an OCI layout directory: `<name>.oci` with its manifest digest).
    pub subjects: Vec<Subject>,
}

/// Who ran a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuilderFacts {
    /// SLSA `runDetails.builder.id` ([`DEFAULT_BUILDER_ID`] unless the user sets one).
    pub id: String,
    /// The cairn version that built.
    pub cairn_version: String,
}

/// One component image as pinned by the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// `kernel`, `init`, `onboot`, `onshutdown` or `services`.
    pub role: String,
    /// The container name, or `kernel` / `init[0]`.
    pub name: String,
    /// The image as the lock pins it: its normalized reference (without digest), its top
    /// digest (the index when there is one, else the manifest), index, manifest, config,
    /// and the registry repository (`host/path`) it was taken from, if any.
    pub locked: LockedImage,
    /// The layer blobs, with the sizes and media types the lock does not record.
    pub layers: Vec<LayerFacts>,
    /// The image config's labels.
    pub labels: BTreeMap<String, String>,
    /// What the package databases in the layers say (see [`component_packages`]).
    pub os: OsFacts,
}

/// One layer blob of a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFacts {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// A file from the spec's `files` section with a source on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The source path as written in the spec.
    pub source: String,
    pub digest: Digest,
    pub size: u64,
}

/// An output file of the build.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subject {
    /// The file name in the output directory.
    pub name: String,
    pub digest: Digest,
}

/// The raw bytes of one package database file found in a component's layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageDb {
    /// Path relative to the image root, as in [`PACKAGE_DB_PATHS`].
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Whether the build should collect the file at `path` (relative, no leading `/`).
pub fn is_package_db_path(path: &str) -> bool {
    PACKAGE_DB_PATHS.contains(&path)
        || PACKAGE_DB_DIR_PREFIXES.iter().any(|p| {
            path.strip_prefix(p).is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
        })
}

/// Parses the package databases of one component. `etc/os-release` wins over
/// `usr/lib/os-release` (as os-release(5) says); packages come out sorted and deduplicated.
/// Unparseable entries are skipped: an SBOM lists what can be known, it does not fail a build.
pub fn component_packages(dbs: &[PackageDb]) -> OsFacts {
    let mut pkgs = Vec::new();
    let mut etc_os = None;
    let mut usr_os = None;
    for db in dbs {
        match db.path.as_str() {
            "var/lib/dpkg/status" => pkgs.extend(packages::from_dpkg_status(&db.bytes)),
            "lib/apk/db/installed" => pkgs.extend(packages::from_apk_installed(&db.bytes)),
            "etc/os-release" => etc_os = Some(os_release::parse(&db.bytes)),
            "usr/lib/os-release" => usr_os = Some(os_release::parse(&db.bytes)),
            p if is_package_db_path(p) => pkgs.extend(packages::from_dpkg_status_d(&db.bytes)),
            _ => {}
        }
    }
    pkgs.sort();
    pkgs.dedup();
    OsFacts { release: etc_os.or(usr_os), packages: pkgs }
}

/// The SBOM attestation: an in-toto Statement v1 over the same subjects as the provenance,
/// with the SPDX document as its predicate.
pub fn sbom_statement(facts: &BuildFacts, spdx_doc: &sbom::spdx::Document) -> SbomStatement {
    sbom_statement_for(subjects(facts), spdx_doc.clone())
}

/// The SBOM statement as [`sbom_statement`] makes it.
pub type SbomStatement = intoto::Statement<sbom::spdx::Document>;

/// [`sbom_statement`] from the subjects of an existing provenance statement (for signing
/// outputs after the build, where only the files are at hand; the SPDX document may then be
/// the file's JSON as read, so that it is signed as it is).
pub fn sbom_statement_for<P>(
    subjects: Vec<intoto::ResourceDescriptor>,
    spdx_doc: P,
) -> intoto::Statement<P> {
    intoto::Statement::new(subjects, SPDX_PREDICATE_TYPE, spdx_doc)
}

/// in-toto subjects, sorted by name (then digest).
fn subjects(facts: &BuildFacts) -> Vec<intoto::ResourceDescriptor> {
    let mut subjects: Vec<&Subject> = facts.subjects.iter().collect();
    subjects.sort();
    subjects.iter().map(|s| intoto::ResourceDescriptor::subject(&s.name, &s.digest)).collect()
}

/// `YYYY-MM-DDThh:mm:ssZ` of the source date: the only time any attestation carries.
fn timestamp(date: SourceDate) -> String {
    crate::source_date::rfc3339(date)
}

/// Replaces every character outside `[A-Za-z0-9.-]` by `-` (SPDX ids, LicenseRefs).
fn sanitize_id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect()
}
