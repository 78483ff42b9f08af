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
//! The documents are the `oci-spec` crate's types, built in [`crate::oci`] and serialized
//! with [`crate::oci::to_json`] (see there why the bytes depend on the inputs only). The
//! one timestamp, `created` in the config and its history entry, is the source date.
//! Files are created with mode 0644 and directories 0755 whatever the umask.

use std::fs::{self, File, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Arch, Config, HistoryBuilder, ImageConfiguration, Platform, RootFs};
use serde::Serialize;

use super::compress::{self, Codec};
use super::{CHUNK, EmitError, finish_file};
use crate::digest::{Digest, HashingWriter};
use crate::oci::{
    self, ANNOTATION_REF_NAME, LAYOUT_FILE, MT_OCI_CONFIG, MT_OCI_LAYER_GZIP, MT_OCI_MANIFEST,
};
use crate::source_date::{SourceDate, rfc3339};
use crate::tree::Tree;

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
    // Written as given: oci-spec's `Arch::from` reads "armbe" as arm64be.
    let arch = || Arch::Other(opts.architecture.clone());
    let mut run = Config::default();
    run.set_env((!opts.env.is_empty()).then(|| opts.env.clone()));
    run.set_entrypoint(opts.entrypoint.clone());
    run.set_cmd(opts.cmd.clone());
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by("cairn build")
        .build()
        .map_err(|source| oci::OciError::Build { what: "image history", source })?;
    let mut rootfs = RootFs::default();
    rootfs.set_typ("layers".to_string());
    rootfs.set_diff_ids(vec![diff_id.to_string()]);
    let mut config = ImageConfiguration::default();
    config.set_created(Some(created));
    config.set_architecture(arch());
    config.set_os(os.into());
    config.set_config(Some(run));
    config.set_rootfs(rootfs);
    config.set_history(Some(vec![history]));
    let (config_digest, config_size) = write_json_blob(&blobs, "image config", &config)?;

    let manifest = oci::manifest(
        oci::descriptor(MT_OCI_CONFIG, &config_digest, config_size)?,
        vec![oci::descriptor(MT_OCI_LAYER_GZIP, &layer, layer_size)?],
    )?;
    let (manifest_digest, manifest_size) = write_json_blob(&blobs, "image manifest", &manifest)?;

    let mut top = oci::descriptor(MT_OCI_MANIFEST, &manifest_digest, manifest_size)?;
    top.set_annotations(Some([(ANNOTATION_REF_NAME.to_string(), opts.ref_name.clone())].into()));
    let mut platform = Platform::default();
    platform.set_architecture(arch());
    platform.set_os(os.into());
    top.set_platform(Some(platform));
    write_json(&dir.join("index.json"), "image index", &oci::index(vec![top]))?;
    write_file(&dir.join("oci-layout"), LAYOUT_FILE.as_bytes())?;

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
    let bytes = oci::to_json(what, value)?;
    let digest = Digest::of(&bytes);
    write_file(&blobs.join(digest.hex()), &bytes)?;
    Ok((digest, bytes.len() as u64))
}

fn write_json<T: Serialize>(path: &Path, what: &'static str, value: &T) -> Result<(), EmitError> {
    let bytes = oci::to_json(what, value)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::testutil::*;
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
        assert_eq!(manifest["mediaType"], MT_OCI_MANIFEST);
        let (config, cd, cs) = read_json(&blob(&layout, &manifest["config"]["digest"]));
        assert_eq!(cd, img.config);
        assert_eq!(manifest["config"]["size"], cs);
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(config["history"][0]["created_by"], "cairn build");
        assert_eq!(config["config"]["Cmd"][0], "/sbin/init");
        assert!(config["config"].get("Entrypoint").is_none());
        assert_eq!(config["rootfs"]["diff_ids"][0], img.diff_id.to_string());

        let layer_desc = &manifest["layers"][0];
        assert_eq!(layer_desc["mediaType"], MT_OCI_LAYER_GZIP);
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

    /// skopeo and umoci read one layout (of a tree with a symlink, a large file and names
    /// longer than ustar holds).
    #[test]
    fn skopeo_and_umoci_read_the_layout() {
        let t = sample_tree();
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("img.oci");
        let img = write_layout(&t, &layout, &OciOptions::new(SourceDate::ZERO)).unwrap();
        if let Some(skopeo) = tool("skopeo") {
            let out = run(std::process::Command::new(skopeo)
                .arg("inspect")
                .arg(format!("oci:{}:latest", layout.display())));
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["Digest"], img.manifest.to_string());
            assert_eq!(v["Layers"][0], img.layer.to_string());
            assert_eq!(v["Created"], "1970-01-01T00:00:00Z");
        }
        if let Some(umoci) = tool("umoci") {
            let bundle = dir.path().join("bundle");
            run(std::process::Command::new(umoci)
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:latest", layout.display()))
                .arg(&bundle));
            let rootfs = bundle.join("rootfs");
            assert_eq!(fs::read(rootfs.join("bin/sh")).unwrap(), b"#!/bin/sh\n");
            let link = fs::read_link(rootfs.join("usr/bin/sh")).unwrap();
            assert_eq!(link, Path::new("../../bin/sh"));
            assert_eq!(fs::metadata(rootfs.join("home/user/big")).unwrap().len(), 300_000);
            let long = rootfs.join("l".repeat(90)).join("n".repeat(200));
            assert_eq!(fs::read(long).unwrap(), b"long");
        }
    }
}
