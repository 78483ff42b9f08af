//! The OCI image format in one place (image-spec v1.1): the media types cairn reads and
//! writes, descriptors, and the manifest and index documents, as the `oci-spec` crate's
//! types. `store` reads and names images with them, `emit` writes its image layout with
//! them, and `verify` reads cairn's layouts with the same media types and the [`strict`]
//! document types.
//!
//! Bytes: the documents cairn writes ([`manifest`], [`index`], the image config in
//! `emit::oci`) are serialized with [`to_json`], serde_json's compact writer, so their keys
//! come in the oci-spec types' declaration order and absent optional fields are left out.
//! That order is the one the image-spec documents list (`schemaVersion`, `mediaType`,
//! `config`, `layers`; `mediaType`, `digest`, `size`, `annotations`, `platform`), and the
//! golden digests in `tests/golden/` pin it. oci-spec keeps annotations in a `HashMap`;
//! cairn writes at most one annotation per descriptor (the ref name), so hash order cannot
//! reach the bytes. The store's own `index.json`, which can hold many, goes through
//! `crate::canonical_json` instead.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType};
use serde::Serialize;

use crate::digest::Digest;

pub use oci_spec::image::ANNOTATION_REF_NAME;

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
// oci-spec knows the Docker v2 schema 2 names only through a fallible conversion of the
// OCI ones (`ToDockerV2S2`); `media_types_match_oci_spec` checks these against it.
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `oci-layout` file of an image layout, byte for byte as cairn writes it.
pub const LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Why an OCI document or descriptor cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A descriptor names its blob with something other than a sha256 digest.
    #[error("unsupported descriptor digest {digest:?}: {reason}")]
    Digest { digest: String, reason: String },
    /// oci-spec refused to build a document (a required field is missing).
    #[error("cannot build {what}: {source}")]
    Build {
        what: &'static str,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// serde_json could not serialize a document.
    #[error("cannot serialize {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Compression of a layer blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What a media type says a blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Index,
    Manifest,
    Config,
    Layer(Compression),
    /// A foreign or non-distributable layer: its content may live elsewhere and may not be
    /// copied, so cairn does not build from it.
    Restricted,
    /// Any other media type: kept as an opaque blob, never interpreted.
    Other,
}

/// Classifies a media type, OCI or Docker v2.
pub fn kind(media_type: &str) -> Kind {
    match media_type {
        MT_OCI_INDEX | MT_DOCKER_LIST => Kind::Index,
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => Kind::Manifest,
        MT_OCI_CONFIG | MT_DOCKER_CONFIG => Kind::Config,
        MT_OCI_LAYER => Kind::Layer(Compression::None),
        MT_OCI_LAYER_GZIP | MT_DOCKER_LAYER_GZIP => Kind::Layer(Compression::Gzip),
        MT_OCI_LAYER_ZSTD => Kind::Layer(Compression::Zstd),
        mt if mt.contains("nondistributable") || mt.contains("foreign") => Kind::Restricted,
        _ => Kind::Other,
    }
}

/// The cairn digest of a descriptor. Only sha256 is supported.
pub fn descriptor_digest(desc: &Descriptor) -> Result<Digest, OciError> {
    Digest::parse(desc.digest().as_ref())
        .map_err(|e| OciError::Digest { digest: desc.digest().to_string(), reason: e.to_string() })
}

/// A descriptor of the blob `d` of `size` bytes.
pub fn descriptor(media_type: &str, d: &Digest, size: u64) -> Result<Descriptor, OciError> {
    let od: oci_spec::image::Digest =
        d.to_string().parse().map_err(|e: oci_spec::OciSpecError| OciError::Digest {
            digest: d.to_string(),
            reason: e.to_string(),
        })?;
    Ok(Descriptor::new(MediaType::from(media_type), size, od))
}

/// A single-platform image manifest (schema version 2, with its `mediaType`).
pub fn manifest(config: Descriptor, layers: Vec<Descriptor>) -> Result<ImageManifest, OciError> {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .map_err(|source| OciError::Build { what: "image manifest", source })
}

/// An image index (schema version 2, with its `mediaType`) listing `manifests`.
pub fn index(manifests: Vec<Descriptor>) -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(manifests);
    index
}

/// The bytes of a document cairn writes (see the module docs for why they are stable).
pub fn to_json<T: Serialize>(what: &'static str, doc: &T) -> Result<Vec<u8>, OciError> {
    serde_json::to_vec(doc).map_err(|source| OciError::Json { what, source })
}

/// The media type of a manifest or index JSON blob: its `mediaType` field, or guessed from
/// its shape when the field is absent (allowed by the OCI spec).
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
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

/// The index and manifest of a layout cairn wrote, read as strictly as `verify` reads
/// them: exactly the fields image-spec defines for what cairn writes, and any other field
/// is an error (`deny_unknown_fields`, which oci-spec's types do not offer), so a layout
/// that carries more than cairn put there is refused rather than half-read.
pub mod strict {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use crate::digest::Digest;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Descriptor {
        pub media_type: String,
        pub digest: Digest,
        pub size: u64,
        #[serde(default)]
        pub annotations: BTreeMap<String, String>,
        #[serde(default)]
        pub platform: Option<serde_json::Value>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Index {
        pub schema_version: u32,
        pub media_type: Option<String>,
        pub manifests: Vec<Descriptor>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Manifest {
        pub schema_version: u32,
        pub media_type: Option<String>,
        pub config: Descriptor,
        pub layers: Vec<Descriptor>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{OciLayout, ToDockerV2S2};

    #[test]
    fn media_types_match_oci_spec() {
        let oci = [
            (MT_OCI_INDEX, MediaType::ImageIndex),
            (MT_OCI_MANIFEST, MediaType::ImageManifest),
            (MT_OCI_CONFIG, MediaType::ImageConfig),
            (MT_OCI_LAYER, MediaType::ImageLayer),
            (MT_OCI_LAYER_GZIP, MediaType::ImageLayerGzip),
            (MT_OCI_LAYER_ZSTD, MediaType::ImageLayerZstd),
        ];
        for (s, mt) in &oci {
            assert_eq!(MediaType::from(*s), *mt, "{s}");
        }
        let docker = [
            (MT_DOCKER_LIST, MediaType::ImageIndex),
            (MT_DOCKER_MANIFEST, MediaType::ImageManifest),
            (MT_DOCKER_CONFIG, MediaType::ImageConfig),
            (MT_DOCKER_LAYER_GZIP, MediaType::ImageLayerGzip),
        ];
        for (s, mt) in &docker {
            assert_eq!(mt.to_docker_v2s2().ok(), Some(*s));
        }
        let layout: OciLayout = serde_json::from_str(LAYOUT_FILE).unwrap();
        assert_eq!(to_json("oci-layout", &layout).unwrap(), LAYOUT_FILE.as_bytes());
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(MT_DOCKER_LAYER_GZIP), Kind::Layer(Compression::Gzip));
        assert_eq!(
            kind("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Kind::Restricted
        );
        assert_eq!(
            kind("application/vnd.oci.image.layer.nondistributable.v1.tar"),
            Kind::Restricted
        );
        assert_eq!(kind("application/x-weird"), Kind::Other);
    }

    /// The strict types read what cairn writes and refuse a field it does not write.
    #[test]
    fn strict_types_read_what_cairn_writes() {
        let d = Digest::of(b"c");
        let m = manifest(descriptor(MT_OCI_CONFIG, &d, 1).unwrap(), Vec::new()).unwrap();
        let bytes = to_json("m", &m).unwrap();
        let read: strict::Manifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((read.config.digest, read.config.size), (d, 1));
        let mut i = index(vec![descriptor(MT_OCI_MANIFEST, &d, 1).unwrap()]);
        let _: strict::Index = serde_json::from_slice(&to_json("i", &i).unwrap()).unwrap();
        i.set_annotations(Some([("x".to_string(), "y".to_string())].into()));
        let extra = to_json("i", &i).unwrap();
        assert!(serde_json::from_slice::<strict::Index>(&extra).is_err());
    }

    /// The exact bytes of a manifest and an index, in the key order of image-spec's examples.
    #[test]
    fn documents_have_spec_key_order() {
        let (c, l) = (Digest::of(b"c"), Digest::of(b"l"));
        let m = manifest(
            descriptor(MT_OCI_CONFIG, &c, 1).unwrap(),
            vec![descriptor(MT_OCI_LAYER_GZIP, &l, 2).unwrap()],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(to_json("m", &m).unwrap()).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_MANIFEST}","config":{{"mediaType":"{MT_OCI_CONFIG}","digest":"{c}","size":1}},"layers":[{{"mediaType":"{MT_OCI_LAYER_GZIP}","digest":"{l}","size":2}}]}}"#
            )
        );
        let mut d = descriptor(MT_OCI_MANIFEST, &c, 3).unwrap();
        d.set_annotations(Some([(ANNOTATION_REF_NAME.to_string(), "latest".to_string())].into()));
        let mut p = oci_spec::image::Platform::default();
        p.set_architecture("amd64".into());
        p.set_os("linux".into());
        d.set_platform(Some(p));
        assert_eq!(
            String::from_utf8(to_json("i", &index(vec![d])).unwrap()).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_INDEX}","manifests":[{{"mediaType":"{MT_OCI_MANIFEST}","digest":"{c}","size":3,"annotations":{{"{ANNOTATION_REF_NAME}":"latest"}},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
            )
        );
    }
}
