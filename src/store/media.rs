//! The store's use of [`crate::oci`]: media types and descriptors with the store's errors,
//! and its one rule about them: foreign and non-distributable layers are refused, because
//! cairn builds only from content it holds.

use oci_spec::image::Descriptor;

use super::StoreError;
use crate::digest::Digest;
use crate::oci::{self, Kind, OciError};

impl From<OciError> for StoreError {
    fn from(e: OciError) -> StoreError {
        match e {
            OciError::Digest { digest, reason } => {
                StoreError::Unsupported { what: format!("descriptor digest {digest:?}"), reason }
            }
            OciError::Build { what, source } => StoreError::invalid(what, source.to_string()),
            OciError::Json { what, source } => StoreError::invalid(what, source.to_string()),
        }
    }
}

/// Classifies a media type; foreign/non-distributable layers are an error.
pub(crate) fn classify(media_type: &str) -> Result<Kind, StoreError> {
    match oci::kind(media_type) {
        Kind::Restricted => Err(StoreError::Unsupported {
            what: format!("layer media type {media_type:?}"),
            reason: "foreign/non-distributable layers are not stored; cairn builds only from content it holds".into(),
        }),
        kind => Ok(kind),
    }
}

/// The cairn digest of a descriptor. Only sha256 is supported.
pub fn desc_digest(desc: &Descriptor) -> Result<Digest, StoreError> {
    Ok(oci::descriptor_digest(desc)?)
}

/// Builds a descriptor.
pub fn make_descriptor(media_type: &str, d: &Digest, size: u64) -> Result<Descriptor, StoreError> {
    Ok(oci::descriptor(media_type, d, size)?)
}

pub(crate) fn check_size(desc: &Descriptor, d: &Digest, actual: u64) -> Result<(), StoreError> {
    if desc.size() != actual {
        return Err(StoreError::invalid(
            format!("descriptor for {d}"),
            format!("it claims {} bytes but the blob has {actual}", desc.size()),
        ));
    }
    Ok(())
}
