//! The OCI image layout writer: the composed tree as a one-layer image that `skopeo`,
//! `umoci`, `podman` and registries accept (image-spec v1.1, `image-layout.md`).
//!
//! Layout: `oci-layout`, `index.json` (one manifest, tagged with
//! `org.opencontainers.image.ref.name`), and `blobs/sha256/` holding the layer, the config
//! and the manifest. The layer is the tree's tar ([`super::tar`]) compressed with gzip
//! ([`super::compress`]); it is streamed tar → hash (diff_id) → gzip → hash (blob digest)
//! → temporary file in `blobs/sha256/`, then renamed to its digest, so it is never held in
//! memory nor read back.
//!
//! JSON documents are serialized from this module's own structs with `serde_json`'s compact
//! writer: field order is the declaration order, maps are `BTreeMap`s and absent optional
//! fields are omitted, so the bytes (and hence the digests) depend on the inputs only. The
//! one timestamp, `created` in the config and its history entry, is the source date.
//! Files are created with mode 0644 and directories 0755 whatever the umask.

use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::compress::{self, Codec};
use super::{CHUNK, EmitError, finish_file};
use crate::digest::{Digest, HashingWriter};
use crate::source_date::SourceDate;
use crate::tree::Tree;

pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What goes into the image config besides the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciOptions {
    /// `created` of the config and its history entry.
    pub source_date: SourceDate,
    /// The tag in `index.json` (`skopeo inspect oci:DIR:<ref_name>`).
    pub ref_name: String,
    /// GOARCH-style architecture name, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// `config.Entrypoint`, omitted when `None`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`, omitted when `None`.
    pub cmd: Option<Vec<String>>,
    /// `config.Env` (`KEY=value`), omitted when empty; written in the given order.
    pub env: Vec<String>,
}

impl OciOptions {
    /// Tag `latest`, architecture `amd64`, no entrypoint, command or environment.
    pub fn new(source_date: SourceDate) -> OciOptions {
        OciOptions {
            source_date,
            ref_name: "latest".to_string(),
            architecture: "amd64".to_string(),
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
        }
    }
}

/// The digests of a written layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciImage {
    /// Digest and size of the manifest: the image's identity.
    pub manifest: Digest,
    pub manifest_size: u64,
    pub config: Digest,
    /// Digest of the compressed layer blob.
    pub layer: Digest,
    /// Digest of the uncompressed layer tar (the config's `rootfs.diff_ids[0]`).
    pub diff_id: Digest,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform<'a>>,
}

#[derive(Serialize)]
struct Platform<'a> {
    architecture: &'a str,
    os: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: RunConfig<'a>,
    rootfs: RootFs,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
struct RunConfig<'a> {
    #[serde(rename = "Env", skip_serializing_if = "<[String]>::is_empty")]
    env: &'a [String],
    #[serde(rename = "Entrypoint", skip_serializing_if = "Option::is_none")]
    entrypoint: Option<&'a [String]>,
    #[serde(rename = "Cmd", skip_serializing_if = "Option::is_none")]
    cmd: Option<&'a [String]>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<Digest>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'a str,
}

/// Writes the tree as an OCI image layout at `dir` (created if missing; normally a fresh
/// directory inside the caller's staging directory).
pub fn write_layout(tree: &Tree, dir: &Path, opts: &OciOptions) -> Result<OciImage, EmitError> {
    let blobs = dir.join("blobs").join("sha256");
    for d in [dir.to_path_buf(), dir.join("blobs"), blobs.clone()] {
        fs::create_dir_all(&d).map_err(|source| EmitError::Io { path: d.clone(), source })?;
        set_mode(&d, 0o755)?;
    }

    let (layer, layer_size, diff_id) = write_layer(tree, &blobs)?;

    let created = rfc3339(opts.source_date);
    let os = "linux";
    let config = ImageConfig {
        created: &created,
        architecture: &opts.architecture,
        os,
        config: RunConfig {
            env: &opts.env,
            entrypoint: opts.entrypoint.as_deref(),
            cmd: opts.cmd.as_deref(),
        },
        rootfs: RootFs { kind: "layers", diff_ids: vec![diff_id] },
        history: vec![History { created: &created, created_by: "cairn build" }],
    };
    let (config_digest, config_size) = write_json_blob(&blobs, "image config", &config)?;

    let descriptor = |media_type, digest, size| Descriptor {
        media_type,
        digest,
        size,
        annotations: BTreeMap::new(),
        platform: None,
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST,
        config: descriptor(MEDIA_TYPE_CONFIG, config_digest, config_size),
        layers: vec![descriptor(MEDIA_TYPE_LAYER_GZIP, layer, layer_size)],
    };
    let (manifest_digest, manifest_size) = write_json_blob(&blobs, "image manifest", &manifest)?;

    let index = Index {
        schema_version: 2,
        media_type: MEDIA_TYPE_INDEX,
        manifests: vec![Descriptor {
            media_type: MEDIA_TYPE_MANIFEST,
            digest: manifest_digest,
            size: manifest_size,
            annotations: BTreeMap::from([(ANNOTATION_REF_NAME, opts.ref_name.as_str())]),
            platform: Some(Platform { architecture: &opts.architecture, os }),
        }],
    };
    write_json(&dir.join("index.json"), "image index", &index)?;
    write_file(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;

    Ok(OciImage { manifest: manifest_digest, manifest_size, config: config_digest, layer, diff_id })
}

/// Streams the gzip-compressed tar of the tree into `blobs`; returns the blob digest, its
/// size and the diff_id.
fn write_layer(tree: &Tree, blobs: &Path) -> Result<(Digest, u64, Digest), EmitError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmitError::Io { path, source }
    };
    let tmp =
        tempfile::Builder::new().prefix(".layer-").tempfile_in(blobs).map_err(io_err(blobs))?;
    let tmp_path = tmp.path().to_path_buf();
    let (tmp_file, tmp_path_guard) = tmp.into_parts();
    let blob = HashingWriter::new(BufWriter::with_capacity(CHUNK, tmp_file));
    let gz = compress::compress_to(Codec::Gzip, blob).map_err(io_err(&tmp_path))?;
    let diff = HashingWriter::new(gz);
    let diff = super::tar::write_tar(tree, diff).map_err(|e| e.at(&tmp_path))?;
    let (gz, diff_id, _) = diff.finish();
    let blob = gz.finish().map_err(io_err(&tmp_path))?;
    let (buf, digest, size) = blob.finish();
    let file = buf.into_inner().map_err(|e| io_err(&tmp_path)(e.into_error()))?;
    finish_file(&file, &tmp_path)?;
    let dest = blobs.join(digest.hex());
    tmp_path_guard.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
    Ok((digest, size, diff_id))
}

fn write_json_blob<T: Serialize>(
    blobs: &Path,
    what: &'static str,
    value: &T,
) -> Result<(Digest, u64), EmitError> {
    let bytes = serde_json::to_vec(value).map_err(|source| EmitError::Json { what, source })?;
    let digest = Digest::of(&bytes);
    write_file(&blobs.join(digest.hex()), &bytes)?;
    Ok((digest, bytes.len() as u64))
}

fn write_json<T: Serialize>(path: &Path, what: &'static str, value: &T) -> Result<(), EmitError> {
    let bytes = serde_json::to_vec(value).map_err(|source| EmitError::Json { what, source })?;
    write_file(path, &bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), EmitError> {
    let io_err = |source| EmitError::Io { path: path.to_path_buf(), source };
    let mut file = File::create(path).map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    finish_file(&file, path)
}

fn set_mode(path: &PathBuf, mode: u32) -> Result<(), EmitError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|source| EmitError::Io { path: path.clone(), source })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a source date (after H. Hinnant's civil-from-days).
pub fn rfc3339(date: SourceDate) -> String {
    let secs = date.secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::testutil::*;
    use crate::source_date::{MAX_SOURCE_DATE, parse_rfc3339};
    use std::io::Read;

    fn read_json(path: &Path) -> (serde_json::Value, Digest, u64) {
        let bytes = fs::read(path).unwrap();
        (serde_json::from_slice(&bytes).unwrap(), Digest::of(&bytes), bytes.len() as u64)
    }

    fn blob(dir: &Path, digest: &serde_json::Value) -> PathBuf {
        let d = Digest::parse(digest.as_str().unwrap()).unwrap();
        dir.join("blobs/sha256").join(d.hex())
    }

    #[test]
    fn rfc3339_matches_the_parser() {
        assert_eq!(rfc3339(SourceDate::ZERO), "1970-01-01T00:00:00Z");
        let d = SourceDate::new(1_700_000_000).unwrap();
        assert_eq!(rfc3339(d), "2023-11-14T22:13:20Z");
        for secs in [1, 59, 86_399, 951_782_400, 4_102_444_800, MAX_SOURCE_DATE] {
            let s = rfc3339(SourceDate::new(secs).unwrap());
            assert_eq!(parse_rfc3339(&s), Some(secs), "{s}");
        }
    }

    #[test]
    fn layout_is_consistent() {
        let t = sample_tree();
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("img.oci");
        let mut opts = OciOptions::new(SourceDate::new(1_700_000_000).unwrap());
        opts.cmd = Some(vec!["/sbin/init".to_string()]);
        opts.env = vec!["PATH=/usr/bin:/bin".to_string()];
        let img = write_layout(&t, &layout, &opts).unwrap();

        let (layout_file, _, _) = read_json(&layout.join("oci-layout"));
        assert_eq!(layout_file["imageLayoutVersion"], "1.0.0");
        let (index, _, _) = read_json(&layout.join("index.json"));
        assert_eq!(index["schemaVersion"], 2);
        let m = &index["manifests"][0];
        assert_eq!(m["annotations"][ANNOTATION_REF_NAME], "latest");
        assert_eq!(m["digest"], img.manifest.to_string());
        assert_eq!(m["size"], img.manifest_size);

        let (manifest, md, ms) = read_json(&blob(&layout, &m["digest"]));
        assert_eq!((md, ms), (img.manifest, img.manifest_size));
        assert_eq!(manifest["mediaType"], MEDIA_TYPE_MANIFEST);
        let (config, cd, cs) = read_json(&blob(&layout, &manifest["config"]["digest"]));
        assert_eq!(cd, img.config);
        assert_eq!(manifest["config"]["size"], cs);
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(config["history"][0]["created_by"], "cairn build");
        assert_eq!(config["config"]["Cmd"][0], "/sbin/init");
        assert!(config["config"].get("Entrypoint").is_none());
        assert_eq!(config["rootfs"]["diff_ids"][0], img.diff_id.to_string());

        let layer_desc = &manifest["layers"][0];
        assert_eq!(layer_desc["mediaType"], MEDIA_TYPE_LAYER_GZIP);
        let layer_bytes = fs::read(blob(&layout, &layer_desc["digest"])).unwrap();
        assert_eq!(Digest::of(&layer_bytes), img.layer);
        assert_eq!(layer_desc["size"], layer_bytes.len() as u64);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&layer_bytes[..]).read_to_end(&mut tar).unwrap();
        assert_eq!(Digest::of(&tar), img.diff_id);
        assert_eq!(tar, crate::emit::tar::write_tar(&t, Vec::new()).unwrap());

        // The documents are valid OCI types.
        let _: oci_spec::image::ImageIndex =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let _: oci_spec::image::ImageManifest =
            serde_json::from_slice(&fs::read(blob(&layout, &m["digest"])).unwrap()).unwrap();
        let _: oci_spec::image::ImageConfiguration = serde_json::from_slice(
            &fs::read(blob(&layout, &manifest["config"]["digest"])).unwrap(),
        )
        .unwrap();

        // Exactly three blobs, no temporary file left, modes fixed.
        let blobs: Vec<_> = fs::read_dir(layout.join("blobs/sha256")).unwrap().collect();
        assert_eq!(blobs.len(), 3);
        for b in blobs {
            let meta = b.unwrap().metadata().unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        }

        // A second layout of the same tree is identical.
        let again = write_layout(&t, &dir.path().join("again.oci"), &opts).unwrap();
        assert_eq!(again, img);
    }

    fn tool(name: &str) -> Option<PathBuf> {
        let p = Path::new("/usr/bin").join(name);
        if p.exists() {
            Some(p)
        } else {
            eprintln!("skipping: /usr/bin/{name} is not installed");
            None
        }
    }

    fn run(cmd: &mut std::process::Command) -> String {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn skopeo_inspects_the_layout() {
        let Some(skopeo) = tool("skopeo") else { return };
        let t = sample_tree();
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("img.oci");
        let img = write_layout(&t, &layout, &OciOptions::new(SourceDate::ZERO)).unwrap();
        let out = run(std::process::Command::new(skopeo)
            .arg("inspect")
            .arg(format!("oci:{}:latest", layout.display())));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Digest"], img.manifest.to_string());
        assert_eq!(v["Layers"][0], img.layer.to_string());
        assert_eq!(v["Created"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn umoci_unpacks_the_layout() {
        let Some(umoci) = tool("umoci") else { return };
        let t = sample_tree();
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("img.oci");
        write_layout(&t, &layout, &OciOptions::new(SourceDate::ZERO)).unwrap();
        let bundle = dir.path().join("bundle");
        run(std::process::Command::new(umoci)
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        assert_eq!(fs::read(rootfs.join("bin/sh")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(fs::read_link(rootfs.join("usr/bin/sh")).unwrap(), Path::new("../../bin/sh"));
        assert_eq!(fs::metadata(rootfs.join("home/user/big")).unwrap().len(), 300_000);
        let long = rootfs.join("l".repeat(90)).join("n".repeat(200));
        assert_eq!(fs::read(long).unwrap(), b"long");
    }
}
