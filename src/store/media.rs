//! Media types and descriptors: what a media type says a blob is, and building and
//! reading the descriptors that point at blobs.

use oci_spec::image::{Descriptor, MediaType};

use super::StoreError;
use crate::digest::Digest;

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Compression of a layer blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What a media type says a blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Index,
    Manifest,
    Config,
    Layer(Compression),
    /// Any other media type: kept as an opaque blob, never interpreted.
    Other,
}

/// Classifies a media type. Layers that must not be redistributed are an error: cairn only
/// builds from content it holds.
pub(crate) fn classify(media_type: &str) -> Result<Kind, StoreError> {
    Ok(match media_type {
        MT_OCI_INDEX | MT_DOCKER_LIST => Kind::Index,
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => Kind::Manifest,
        MT_OCI_CONFIG | MT_DOCKER_CONFIG => Kind::Config,
        MT_OCI_LAYER => Kind::Layer(Compression::None),
        MT_OCI_LAYER_GZIP | MT_DOCKER_LAYER_GZIP => Kind::Layer(Compression::Gzip),
        MT_OCI_LAYER_ZSTD => Kind::Layer(Compression::Zstd),
        mt if mt.contains("nondistributable") || mt.contains("foreign") => {
            return Err(StoreError::Unsupported {
                what: format!("layer media type {mt:?}"),
                reason: "foreign/non-distributable layers are not stored; cairn builds only from content it holds".into(),
            });
        }
        _ => Kind::Other,
    })
}

/// The cairn digest of a descriptor. Only sha256 is supported.
pub fn desc_digest(desc: &Descriptor) -> Result<Digest, StoreError> {
    Digest::parse(desc.digest().as_ref()).map_err(|e| StoreError::Unsupported {
        what: format!("descriptor digest {:?}", desc.digest().to_string()),
        reason: e.to_string(),
    })
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

/// Builds a descriptor.
pub fn make_descriptor(media_type: &str, d: &Digest, size: u64) -> Result<Descriptor, StoreError> {
    let od: oci_spec::image::Digest =
        d.to_string().parse().map_err(|e: oci_spec::OciSpecError| {
            StoreError::invalid(format!("digest {d}"), e.to_string())
        })?;
    Ok(Descriptor::new(MediaType::from(media_type), size, od))
}

/// The media type of a manifest or index JSON blob: its `mediaType` field, or guessed from
/// its shape when the field is absent (allowed by the OCI spec).
pub(crate) fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let obj = v.as_object()?;
    if let Some(mt) = obj.get("mediaType").and_then(|m| m.as_str()) {
        return Some(mt.to_string());
    }
    if obj.contains_key("manifests") {
        Some(MT_OCI_INDEX.to_string())
    } else if obj.contains_key("config") && obj.contains_key("layers") {
        Some(MT_OCI_MANIFEST.to_string())
    } else {
        None
    }
}
