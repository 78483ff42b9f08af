//! The canonical JSON form of every attestation document, for the build (`attest`), the
//! signer (`sign`, DSSE payloads) and the verifier (`verify`): [`crate::canonical_json`]
//! (sorted keys at every depth), either on one line ([`to_json_line`], DSSE payloads and
//! JSON Lines) or indented ([`to_json_bytes`], the files beside an image). Only [`Document`]
//! types can be written, which is what makes these functions infallible.

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

/// Panics only on a cairn bug: see [`Document`] (no non-string map key, no failing
/// `Serialize` impl).
fn infallible(r: Result<Vec<u8>, serde_json::Error>) -> Vec<u8> {
    r.expect("attestation documents serialize to JSON")
}

/// Serializes a document canonically: sorted keys, two-space indentation, a final newline.
pub fn to_json_bytes<T: Document + ?Sized>(doc: &T) -> Vec<u8> {
    infallible(crate::canonical_json::to_vec_pretty(doc))
}

/// Serializes a document canonically on one line (DSSE payloads, JSON Lines).
pub fn to_json_line<T: Document + ?Sized>(doc: &T) -> Vec<u8> {
    infallible(crate::canonical_json::to_vec(doc))
}
