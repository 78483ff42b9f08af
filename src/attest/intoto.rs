//! in-toto Statement v1 (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>)
//! and its ResourceDescriptor, as written by the build and read by `cairn sign` and
//! `cairn verify`; and the one parser of a statement's subjects ([`subjects`]).
//!
//! Reading follows the in-toto parsing rules: unrecognized fields are ignored (serde's
//! default; no `deny_unknown_fields` here), because producers may add extension fields and a
//! newer minor version of the spec may add fields. What cairn needs of a subject is checked
//! by [`subjects`], not by the types.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;

/// The in-toto Statement type every attestation uses.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// An in-toto Statement v1 with a predicate of type `P`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement<P> {
    /// Always [`STATEMENT_TYPE`] for what cairn writes; checked by `verify`, not by parsing.
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

impl<P> Statement<P> {
    /// A statement of [`STATEMENT_TYPE`].
    pub fn new(subject: Vec<ResourceDescriptor>, predicate_type: &str, predicate: P) -> Self {
        Statement {
            type_: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }
}

/// A DigestSet: algorithm name → lowercase hex.
pub type DigestSet = BTreeMap<String, String>;

/// `{"sha256": "<hex>"}`.
pub fn digest_set(d: &Digest) -> DigestSet {
    BTreeMap::from([("sha256".to_string(), d.hex())])
}

/// An in-toto ResourceDescriptor (subjects, SLSA resolved dependencies and byproducts).
/// Every field is optional in the spec; absent fields are not written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestSet>,
    /// Base64 of the resource's bytes (unused by cairn, kept so a reader sees it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Free-form; the values cairn writes are strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, Value>>,
}

impl ResourceDescriptor {
    /// A subject: an output file name and its sha256.
    pub fn subject(name: &str, digest: &Digest) -> Self {
        ResourceDescriptor {
            name: Some(name.to_string()),
            digest: Some(digest_set(digest)),
            ..Default::default()
        }
    }

    /// The sha256 when the digest set has one that parses.
    pub fn sha256(&self) -> Option<Digest> {
        self.digest.as_ref()?.get("sha256").and_then(|h| Digest::from_hex(h))
    }

    /// A string annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key)?.as_str()
    }
}

/// Why a statement's subjects are not what cairn accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the statement has no subjects")]
    Empty,
    #[error("a subject has no name")]
    NoName,
    #[error("subject name {0:?} is not a plain file name")]
    NotPlainName(String),
    #[error("subject {0} has no sha256 digest")]
    NoSha256(String),
    #[error("subject {0} has a malformed sha256")]
    MalformedSha256(String),
    #[error("subject {0} has digest algorithms other than sha256")]
    OtherAlgorithms(String),
    #[error("duplicate subject {0}")]
    Duplicate(String),
}

/// The subjects of a statement as cairn accepts them: at least one; each a plain, unique
/// file name (no `/`, not starting with `.`) with exactly a sha256 digest (cairn checks
/// every digest it accepts, and it can check only sha256). Sorted by name.
pub fn subjects(list: &[ResourceDescriptor]) -> Result<Vec<(String, Digest)>, SubjectError> {
    if list.is_empty() {
        return Err(SubjectError::Empty);
    }
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for s in list {
        let name = s.name.clone().ok_or(SubjectError::NoName)?;
        if crate::output_name::OutputName::parse(&name).is_err() {
            return Err(SubjectError::NotPlainName(name));
        }
        let set = s.digest.as_ref().filter(|d| d.contains_key("sha256"));
        let Some(set) = set else { return Err(SubjectError::NoSha256(name)) };
        if set.len() != 1 {
            return Err(SubjectError::OtherAlgorithms(name));
        }
        let Some(digest) = s.sha256() else { return Err(SubjectError::MalformedSha256(name)) };
        if !names.insert(name.clone()) {
            return Err(SubjectError::Duplicate(name));
        }
        out.push((name, digest));
    }
    out.sort();
    Ok(out)
}
