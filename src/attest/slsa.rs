//! The SLSA Provenance v1 predicate (<https://slsa.dev/spec/v1.0/provenance>) as types, and
//! the external parameters of cairn's build type (`attestations/README.md`).
//!
//! [`super::provenance`] fills these; `verify` reads them back. Reading follows the in-toto
//! parsing rules that SLSA v1 opts into: unrecognized fields are ignored. The fields SLSA
//! marks required (`buildType`, `externalParameters`, `builder.id`) are required here too, so
//! a predicate without them does not parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::intoto::{DigestSet, ResourceDescriptor};

/// The provenance predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// The predicate of a SLSA Provenance v1 statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

/// What the build did: its type, inputs and the artifacts it read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<InternalParameters>,
    /// cairn always writes the list (empty when the build read nothing pinned).
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// `externalParameters`: cairn's own ([`ImageParameters`]) or another build type's, which
/// verify keeps as JSON and does not interpret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExternalParameters {
    Image(ImageParameters),
    Other(Value),
}

/// The external parameters of `https://cairn.dev/buildtypes/image/v1`: exactly the inputs
/// that change the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageParameters {
    pub spec: SpecParameter,
    /// Output base name.
    pub name: String,
    /// Output formats as given.
    pub formats: Vec<String>,
    /// Decimal, as the environment variable is written.
    pub source_date_epoch: String,
}

/// The spec file: its path for display, the digest of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecParameter {
    pub path: String,
    pub digest: DigestSet,
}

/// `internalParameters` of cairn's build type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cairn_version: Option<String>,
}

/// Who ran the build. cairn writes no `metadata` (no invocation id, no wall-clock times) and
/// no `byproducts`, and reads neither.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDetails {
    pub builder: Builder,
}

/// The builder: its id (what a policy's `builders` allows) and versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<BTreeMap<String, String>>,
}

impl Provenance {
    /// The output base name, when the external parameters are cairn's.
    pub fn image_name(&self) -> Option<&str> {
        match &self.build_definition.external_parameters {
            ExternalParameters::Image(p) => Some(&p.name),
            ExternalParameters::Other(_) => None,
        }
    }
}
