//! The one canonical JSON form of every attestation document, for the build (`attest`), the
//! signer (`sign`, DSSE payloads) and the verifier (`verify`).
//!
//! Canonical means: object keys sorted by their UTF-8 bytes at every depth (whatever the
//! struct field order or serde_json's `preserve_order` feature says), no floats (no document
//! type has one), and either one line ([`to_json_line`], DSSE payloads and JSON Lines) or
//! two-space indentation with a final newline ([`to_json_bytes`], the files beside an image).
//! Only [`Document`] types can be written, which is what makes the functions infallible.

use serde::Serialize;
use serde_json::Value;

use super::intoto::Statement;
use super::sbom::{cyclonedx, spdx};
use super::slsa::Provenance;

mod sealed {
    pub trait Sealed {}
}

/// A document cairn writes canonically. Implemented only for the attestation types below and
/// for `serde_json::Value` (a document already parsed as JSON, e.g. one read back to be
/// signed): each holds only strings, booleans, integers, sequences and maps with string keys,
/// so turning one into a JSON value cannot fail.
pub trait Document: Serialize + sealed::Sealed {}

macro_rules! documents {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Document for $t {}
    )*};
}
documents!(Value, Provenance, spdx::Document, cyclonedx::Bom);

impl<P: Document> sealed::Sealed for Statement<P> {}
impl<P: Document> Document for Statement<P> {}

/// The document as a JSON value with every object's keys sorted.
fn canonical<T: Document + ?Sized>(doc: &T) -> Value {
    // Cannot fail: see `Document` (no non-string map key, no failing `Serialize` impl).
    let value = serde_json::to_value(doc).expect("attestation documents serialize to JSON");
    sorted(value)
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Serializes a document canonically: sorted keys, two-space indentation, a final newline.
pub fn to_json_bytes<T: Document + ?Sized>(doc: &T) -> Vec<u8> {
    // `{:#}` of a `Value` is serde_json's pretty printer (two-space indentation).
    format!("{:#}\n", canonical(doc)).into_bytes()
}

/// Serializes a document canonically on one line (DSSE payloads, JSON Lines).
pub fn to_json_line<T: Document + ?Sized>(doc: &T) -> Vec<u8> {
    canonical(doc).to_string().into_bytes()
}
