//! Tests of the store and of imports; inputs are built in temporary directories.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::import::{ImportError, ImportOptions, import};
use super::*;
use crate::oci::{
    ANNOTATION_REF_NAME, Kind, LAYOUT_FILE as OCI_LAYOUT, MT_DOCKER_LAYER_GZIP, MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER, MT_OCI_MANIFEST,
};
use crate::reference::ImageRef;
use crate::source_date::SourceDate;
use crate::testkit::RawTar;

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

fn opts() -> ImportOptions {
    ImportOptions::new(SourceDate::new(1_700_000_000).unwrap())
}

fn r(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

/// A tar with regular files (and directories for names ending in '/').
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    RawTar::of(files)
}

/// A tar whose member names are written raw (so hostile names can be made).
fn raw_tar(files: &[(&[u8], &[u8])]) -> Vec<u8> {
    files.iter().fold(RawTar::new(), |t, (name, data)| t.entry(name, b'0', b"", data)).finish()
}

struct TestImage {
    blobs: BTreeMap<Digest, Vec<u8>>,
    manifest: Digest,
    manifest_size: u64,
    layer: Digest,
}

fn test_image(arch: &str, content: &[u8]) -> TestImage {
    let layer = tar_of(&[("etc/", b""), ("etc/hello", content)]);
    let ld = Digest::of(&layer);
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/bin"]}},"rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
    )
    .into_bytes();
    let cd = Digest::of(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_MANIFEST}","config":{{"mediaType":"{MT_OCI_CONFIG}","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"{MT_OCI_LAYER}","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )
    .into_bytes();
    let md = Digest::of(&manifest);
    let manifest_size = manifest.len() as u64;
    let blobs = [(ld, layer), (cd, config), (md, manifest)].into_iter().collect();
    TestImage { blobs, manifest: md, manifest_size, layer: ld }
}

fn index_json(entries: &[(Digest, u64, Option<&str>)]) -> Vec<u8> {
    let items: Vec<String> = entries
        .iter()
        .map(|(d, size, name)| {
            let ann = name
                .map(|n| format!(r#","annotations":{{"{ANNOTATION_REF_NAME}":"{n}"}}"#))
                .unwrap_or_default();
            format!(r#"{{"mediaType":"{MT_OCI_MANIFEST}","digest":"{d}","size":{size}{ann}}}"#)
        })
        .collect();
    format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, items.join(",")).into_bytes()
}

fn write_layout(dir: &Path, blobs: &BTreeMap<Digest, Vec<u8>>, index: &[u8]) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), OCI_LAYOUT).unwrap();
    fs::write(dir.join("index.json"), index).unwrap();
    for (d, b) in blobs {
        fs::write(dir.join("blobs/sha256").join(d.hex()), b).unwrap();
    }
}

fn layout_tar(blobs: &BTreeMap<Digest, Vec<u8>>, index: &[u8]) -> Vec<u8> {
    let names: Vec<(String, Vec<u8>)> = blobs
        .iter()
        .rev()
        .map(|(d, b)| (format!("blobs/sha256/{}", d.hex()), b.clone()))
        .chain([
            ("index.json".to_string(), index.to_vec()),
            ("oci-layout".to_string(), OCI_LAYOUT.as_bytes().to_vec()),
        ])
        .collect();
    let refs: Vec<(&str, &[u8])> = names.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    tar_of(&refs)
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn store_blob_count(store: &Store) -> usize {
    count_files(&store.root().join("blobs/sha256"))
}

fn tmp_is_empty(store: &Store) -> bool {
    count_files(&store.root().join(".tmp")) == 0
}

#[test]
fn open_creates_layout_and_refuses_foreign_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    Store::open(&root).unwrap();
    assert_eq!(fs::read_to_string(root.join("oci-layout")).unwrap(), OCI_LAYOUT);
    assert!(root.join("index.json").is_file());
    Store::open(&root).unwrap();

    let bad = dir.path().join("bad");
    fs::create_dir(&bad).unwrap();
    fs::write(bad.join("oci-layout"), "not json").unwrap();
    assert!(matches!(Store::open(&bad), Err(StoreError::Invalid { .. })));
    fs::write(bad.join("oci-layout"), r#"{"imageLayoutVersion":"9.0.0"}"#).unwrap();
    assert!(matches!(Store::open(&bad), Err(StoreError::Unsupported { .. })));

    let busy = dir.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("thesis.txt"), "x").unwrap();
    assert!(matches!(Store::open(&busy), Err(StoreError::Invalid { .. })));
}

#[test]
fn put_open_read_round_trip() {
    let (_d, store) = new_store();
    let data = b"hello blob".repeat(1000);
    let (d, n) = store.put_blob(&data[..], None).unwrap();
    assert_eq!(d, Digest::of(&data));
    assert_eq!(n, data.len() as u64);
    assert!(store.has_blob(&d));
    assert_eq!(store.put_bytes(&data).unwrap(), d);
    let mut rd = store.open_blob(&d).unwrap();
    assert_eq!(rd.size(), data.len() as u64);
    let mut back = Vec::new();
    rd.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(store.read_blob(&d, 1 << 20).unwrap(), data);
    assert!(matches!(store.read_blob(&d, 10), Err(StoreError::Invalid { .. })));
    let missing = Digest::of(b"nope");
    assert!(matches!(store.open_blob(&missing), Err(StoreError::NotFound { .. })));
    assert!(tmp_is_empty(&store));
}

#[test]
fn corrupt_blob_is_detected_everywhere() {
    let (_d, store) = new_store();
    let d = store.put_bytes(b"original content").unwrap();
    let path = store.blob_path(&d);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"tampered content").unwrap();

    let mut back = Vec::new();
    let err = store.open_blob(&d).unwrap().read_to_end(&mut back).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(msg.contains(&format!("blob {d} is corrupt")), "{msg}");
    assert!(msg.contains(&Digest::of(b"tampered content").to_string()), "{msg}");
    assert!(store.open_blob(&d).unwrap().finish().is_err());

    match store.read_blob(&d, 1024) {
        Err(StoreError::Corrupt { digest, actual, .. }) => {
            assert_eq!(digest, d);
            assert_eq!(actual, Digest::of(b"tampered content"));
        }
        other => panic!("{other:?}"),
    }
    let report = store.fsck().unwrap();
    assert_eq!(report.corrupt, vec![(d, Digest::of(b"tampered content"))]);
    assert!(!report.is_ok());
}

#[test]
fn put_with_wrong_digest_leaves_nothing() {
    let (_d, store) = new_store();
    let wrong = Digest::of(b"something else");
    let err = store.put_blob(&b"content"[..], Some(&wrong)).unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { expected, .. } if expected == wrong));
    assert_eq!(store_blob_count(&store), 0);
    assert!(tmp_is_empty(&store));
    let right = Digest::of(b"content");
    assert_eq!(store.put_blob(&b"content"[..], Some(&right)).unwrap().0, right);
}

/// A test image, with its blobs put in `store`.
fn stored_image(store: &Store, arch: &str, seed: &[u8]) -> TestImage {
    let img = test_image(arch, seed);
    for b in img.blobs.values() {
        store.put_bytes(b).unwrap();
    }
    img
}

#[test]
fn tag_resolve_and_list() {
    let (_d, store) = new_store();
    let a = stored_image(&store, "amd64", b"a");
    let b = stored_image(&store, "amd64", b"b");
    let da = make_descriptor(MT_OCI_MANIFEST, &a.manifest, a.manifest_size).unwrap();
    let db = make_descriptor(MT_OCI_MANIFEST, &b.manifest, b.manifest_size).unwrap();
    store.tag(&r("zeta/app:1"), &da).unwrap();
    store.tag(&r("alpha/app:1"), &db).unwrap();
    let names: Vec<String> = store.images().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["docker.io/alpha/app:1", "docker.io/zeta/app:1"]);

    let got = store.resolve(&r("zeta/app:1")).unwrap();
    assert_eq!(got.digest().to_string(), a.manifest.to_string());
    // Retagging replaces.
    store.tag(&r("zeta/app:1"), &db).unwrap();
    assert_eq!(store.images().unwrap().len(), 2);
    assert_eq!(
        store.resolve(&r("zeta/app:1")).unwrap().digest().to_string(),
        b.manifest.to_string()
    );

    // By digest, without a tag in index.json.
    let by_digest = store.resolve(&r(&format!("whatever/x@{}", a.manifest))).unwrap();
    assert_eq!(by_digest.media_type().to_string(), MT_OCI_MANIFEST);
    assert_eq!(by_digest.size(), a.manifest_size);

    let err = store.resolve(&r("missing/app:2")).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    let msg = err.to_string();
    assert!(msg.contains("docker.io/missing/app:2") && msg.contains("cairn import"), "{msg}");

    // Tagging a descriptor whose blob is absent or whose size lies fails.
    let absent = make_descriptor(MT_OCI_MANIFEST, &Digest::of(b"x"), 1).unwrap();
    assert!(matches!(store.tag(&r("a/b:c"), &absent), Err(StoreError::NotFound { .. })));
    let lying = make_descriptor(MT_OCI_MANIFEST, &a.manifest, a.manifest_size + 1).unwrap();
    assert!(matches!(store.tag(&r("a/b:c"), &lying), Err(StoreError::Invalid { .. })));

    let idx = fs::read(store.root().join("index.json")).unwrap();
    assert!(idx.starts_with(br#"{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"docker.io/alpha/app:1"}"#));
}

#[test]
fn resolve_image_through_an_index() {
    let (_d, store) = new_store();
    let arm = stored_image(&store, "arm64", b"arm");
    let amd = stored_image(&store, "amd64", b"amd");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_INDEX}","manifests":[{{"mediaType":"{MT_OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}},{{"mediaType":"{MT_DOCKER_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        arm.manifest, arm.manifest_size, amd.manifest, amd.manifest_size
    );
    let id = store.put_bytes(index.as_bytes()).unwrap();
    let top = store.resolve(&r(&format!("x/y@{id}"))).unwrap();
    assert_eq!(top.media_type().to_string(), MT_OCI_INDEX);
    let img = store.resolve_image(&top, ("linux", "amd64")).unwrap();
    assert_eq!(img.index, Some(id));
    assert_eq!(img.manifest, amd.manifest);
    assert_eq!(img.layers.len(), 1);
    assert_eq!(img.layers[0].digest, amd.layer);
    assert_eq!(img.layers[0].compression, Compression::None);
    assert_eq!(img.config_json.architecture().to_string(), "amd64");

    let err = store.resolve_image(&top, ("linux", "s390x")).unwrap_err();
    assert!(matches!(err, StoreError::Unsupported { .. }));
    assert!(err.to_string().contains("linux/arm64"), "{err}");

    // A single manifest for another platform.
    let arm_desc = make_descriptor(MT_OCI_MANIFEST, &arm.manifest, arm.manifest_size).unwrap();
    assert!(matches!(
        store.resolve_image(&arm_desc, ("linux", "amd64")),
        Err(StoreError::Unsupported { .. })
    ));
    assert!(store.resolve_image(&arm_desc, ("linux", "arm64")).is_ok());
}

#[test]
fn foreign_layers_and_unknown_media_types_are_refused() {
    assert!(classify("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip").is_err());
    assert!(classify("application/vnd.oci.image.layer.nondistributable.v1.tar").is_err());
    assert_eq!(classify(MT_DOCKER_LAYER_GZIP).unwrap(), Kind::Layer(Compression::Gzip));
    let (_d, store) = new_store();
    let desc = make_descriptor("application/x-weird", &store.put_bytes(b"{}").unwrap(), 2).unwrap();
    let err = store.resolve_image(&desc, ("linux", "amd64")).unwrap_err();
    assert!(err.to_string().contains("application/x-weird"), "{err}");
}

#[test]
fn gc_removes_only_unreferenced_blobs() {
    let (_d, store) = new_store();
    let keep = stored_image(&store, "amd64", b"keep");
    let drop = stored_image(&store, "amd64", b"drop");
    let loose = store.put_bytes(b"loose").unwrap();
    let desc = make_descriptor(MT_OCI_MANIFEST, &keep.manifest, keep.manifest_size).unwrap();
    store.tag(&r("keep/me:1"), &desc).unwrap();
    // A stale temporary file.
    let stale = store.root().join(".tmp/blob-stale");
    fs::write(&stale, b"half").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();

    let dry = store.gc(true).unwrap();
    assert_eq!(dry.removed.len(), 4);
    assert_eq!(store_blob_count(&store), 7);

    let report = store.gc(false).unwrap();
    let mut expected: Vec<Digest> = drop.blobs.keys().copied().chain([loose]).collect();
    expected.sort();
    assert_eq!(report.removed, expected);
    assert_eq!(report.kept, 3);
    assert_eq!(report.removed_temp, vec![stale.clone()]);
    assert!(!stale.exists());
    for d in keep.blobs.keys() {
        assert!(store.has_blob(d));
    }
    assert!(store.fsck().unwrap().is_ok());
    let top = store.resolve(&r("keep/me:1")).unwrap();
    store.resolve_image(&top, ("linux", "amd64")).unwrap();

    // A missing layer makes fsck report it and gc refuse.
    fs::remove_file(store.blob_path(&keep.layer)).unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(report.missing, vec![keep.layer]);
    assert!(store.gc(false).is_err());
}

// ---- imports ----

#[test]
fn import_oci_layout_dir() {
    let (d, store) = new_store();
    let img = test_image("amd64", b"x");
    let dir = d.path().join("layout");
    let mut blobs = img.blobs.clone();
    // An unreferenced blob in the layout is not copied.
    let junk = b"unreferenced".to_vec();
    blobs.insert(Digest::of(&junk), junk.clone());
    write_layout(
        &dir,
        &blobs,
        &index_json(&[(img.manifest, img.manifest_size, Some("example.com/app:1"))]),
    );
    let out = import(&store, &dir, None, &opts()).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name.to_string(), "example.com/app:1");
    assert_eq!(out[0].digest, img.manifest);
    assert!(!store.has_blob(&Digest::of(&junk)));
    assert_eq!(store_blob_count(&store), 3);
    let top = store.resolve(&r("example.com/app:1")).unwrap();
    store.resolve_image(&top, ("linux", "amd64")).unwrap();
    assert!(tmp_is_empty(&store));

    // Bare tag: needs a name, then combines with it.
    let dir2 = d.path().join("layout2");
    write_layout(&dir2, &img.blobs, &index_json(&[(img.manifest, img.manifest_size, Some("v2"))]));
    let err = import(&store, &dir2, None, &opts()).unwrap_err();
    assert!(matches!(err, ImportError::NameRequired { .. }), "{err}");
    let out = import(&store, &dir2, Some(&r("example.com/other")), &opts()).unwrap();
    assert_eq!(out[0].name.to_string(), "example.com/other:latest");

    // Docker 25+ `docker save`: a bare tag plus containerd's full name.
    let dir3 = d.path().join("layout3");
    let index = String::from_utf8(index_json(&[(img.manifest, img.manifest_size, Some("v3"))]))
        .unwrap()
        .replace(
            r#""annotations":{"#,
            r#""annotations":{"io.containerd.image.name":"docker.io/library/busybox:v3","#,
        );
    write_layout(&dir3, &img.blobs, index.as_bytes());
    let out = import(&store, &dir3, None, &opts()).unwrap();
    assert_eq!(out[0].name.to_string(), "docker.io/library/busybox:v3");
}

#[test]
fn import_oci_layout_dir_with_a_tampered_blob_fails_cleanly() {
    let (d, store) = new_store();
    let img = test_image("amd64", b"x");
    let dir = d.path().join("layout");
    write_layout(
        &dir,
        &img.blobs,
        &index_json(&[(img.manifest, img.manifest_size, Some("a.io/b:c"))]),
    );
    fs::write(dir.join("blobs/sha256").join(img.layer.hex()), b"evil").unwrap();
    let err = import(&store, &dir, None, &opts()).unwrap_err();
    assert!(err.to_string().contains(&img.layer.to_string()), "{err}");
    assert_eq!(store_blob_count(&store), 0);
    assert!(store.images().unwrap().is_empty());
    assert!(tmp_is_empty(&store));
}

#[test]
fn import_oci_archive_tar_and_gzipped() {
    let (d, store) = new_store();
    let img = test_image("amd64", b"archive");
    let tar = layout_tar(
        &img.blobs,
        &index_json(&[(img.manifest, img.manifest_size, Some("docker.io/library/busybox:1"))]),
    );
    let path = d.path().join("img.tar");
    fs::write(&path, &tar).unwrap();
    let out = import(&store, &path, None, &opts()).unwrap();
    assert_eq!(out[0].name.to_string(), "docker.io/library/busybox:1");
    assert_eq!(store_blob_count(&store), 3);

    let (_d2, store2) = new_store();
    let gz = d.path().join("img.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&tar).unwrap();
    fs::write(&gz, enc.finish().unwrap()).unwrap();
    let out = import(&store2, &gz, Some(&r("mine:2")), &opts()).unwrap();
    assert_eq!(out[0].name.to_string(), "docker.io/library/mine:2");
    assert_eq!(out[0].digest, img.manifest);
    assert!(tmp_is_empty(&store2));
}

fn assert_import_fails(tar: &[u8], needle: &str) {
    let (d, store) = new_store();
    let path = d.path().join("bad.tar");
    fs::write(&path, tar).unwrap();
    let err = import(&store, &path, Some(&r("x/y:z")), &opts()).unwrap_err();
    assert!(err.to_string().contains(needle), "{needle:?} not in {err}");
    assert_names_input_once(&path, &err);
    assert_eq!(store_blob_count(&store), 0, "blobs left after {err}");
    assert!(store.images().unwrap().is_empty());
    assert!(tmp_is_empty(&store));
}

#[test]
fn hostile_oci_archives() {
    let img = test_image("amd64", b"h");
    let index = index_json(&[(img.manifest, img.manifest_size, Some("a.io/b:c"))]);

    // A blob whose content does not match its name.
    let mut blobs = img.blobs.clone();
    blobs.insert(img.layer, b"not the layer".to_vec());
    assert_import_fails(&layout_tar(&blobs, &index), "is corrupt");

    // A manifest referencing a missing blob.
    let mut blobs = img.blobs.clone();
    blobs.remove(&img.layer);
    assert_import_fails(&layout_tar(&blobs, &index), "referenced but not in the input");

    // Non-JSON index.
    assert_import_fails(
        &layout_tar(&img.blobs, b"<xml/>"),
        "index.json is not a valid OCI image index",
    );

    // Absolute and `..` member names.
    let evil = raw_tar(&[(b"oci-layout", OCI_LAYOUT.as_bytes()), (b"/etc/passwd", b"x")]);
    assert_import_fails(&evil, "absolute path");
    let evil = raw_tar(&[(b"oci-layout", OCI_LAYOUT.as_bytes()), (b"blobs/../../x", b"x")]);
    assert_import_fails(&evil, "`..`");

    // Truncated in the middle of a member.
    let good = layout_tar(&img.blobs, &index);
    assert_import_fails(&good[..1300], "truncated");

    // A header claiming more bytes than follow.
    let mut lying = raw_tar(&[(b"oci-layout", OCI_LAYOUT.as_bytes())]);
    let mut h = tar::Header::new_ustar();
    h.set_path("index.json").unwrap();
    h.set_size(100_000);
    h.set_mode(0o644);
    h.set_cksum();
    let end = lying.len() - 1024;
    lying.truncate(end);
    lying.extend_from_slice(h.as_bytes());
    lying.extend_from_slice(&[b'{'; 700]);
    assert_import_fails(&lying, "truncated");
}

fn docker_save_tar(img: &TestImage, tags: &str) -> Vec<u8> {
    let config = img.blobs.iter().find(|(d, _)| **d != img.layer && **d != img.manifest).unwrap();
    let manifest = format!(
        r#"[{{"Config":"{}.json","RepoTags":{tags},"Layers":["abc/layer.tar","def/layer.tar"]}}]"#,
        config.0.hex()
    );
    let layer = &img.blobs[&img.layer];
    // The config lists the same layer twice; docker save dedups with a symlink.
    let config_json = String::from_utf8(config.1.clone())
        .unwrap()
        .replace(r#""diff_ids":["#, &format!(r#""diff_ids":["{}","#, img.layer));
    RawTar::new()
        .dir("abc/")
        .file("abc/layer.tar", layer)
        .file(&format!("{}.json", config.0.hex()), config_json.as_bytes())
        .file("manifest.json", manifest.as_bytes())
        .symlink("def/layer.tar", "../abc/layer.tar")
        .finish()
}

#[test]
fn import_docker_save_tar() {
    let (d, store) = new_store();
    let img = test_image("amd64", b"docker");
    let path = d.path().join("save.tar");
    fs::write(&path, docker_save_tar(&img, r#"["busybox:latest","ghcr.io/me/bb:1"]"#)).unwrap();
    let out = import(&store, &path, None, &opts()).unwrap();
    let names: Vec<String> = out.iter().map(|i| i.name.to_string()).collect();
    assert_eq!(names, ["docker.io/library/busybox:latest", "ghcr.io/me/bb:1"]);
    let top = store.resolve(&r("busybox")).unwrap();
    assert_eq!(top.media_type().to_string(), MT_OCI_MANIFEST);
    let img2 = store.resolve_image(&top, ("linux", "amd64")).unwrap();
    assert_eq!(img2.layers.len(), 2);
    assert!(img2.layers.iter().all(|l| l.digest == img.layer && l.media_type == MT_OCI_LAYER));
    assert!(store.fsck().unwrap().is_ok());

    // No RepoTags and no name.
    let (d2, store2) = new_store();
    let path = d2.path().join("save.tar");
    fs::write(&path, docker_save_tar(&img, "null")).unwrap();
    assert!(matches!(import(&store2, &path, None, &opts()), Err(ImportError::NameRequired { .. })));
    assert_eq!(store_blob_count(&store2), 0);
}

fn make_tree(root: &Path, reverse: bool, umask_like: u32, mtime_secs: u64) {
    let mut steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| fs::create_dir_all(root.join("usr/bin")).unwrap()),
        Box::new(|| fs::create_dir_all(root.join("etc")).unwrap()),
    ];
    if reverse {
        steps.reverse();
    }
    for s in &steps {
        s();
    }
    let files: Vec<(&str, &[u8], bool)> = vec![
        ("usr/bin/tool", b"#!/bin/sh\necho hi\n", true),
        ("etc/motd", b"welcome\n", false),
        (
            "a-very-long-directory-name-to-overflow-the-ustar-name-field-of-one-hundred-bytes/and-a-long-file-name.txt",
            b"long",
            false,
        ),
    ];
    let order: Vec<_> = if reverse { files.iter().rev().collect() } else { files.iter().collect() };
    for (p, data, exec) in order {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        let mode = if *exec { 0o777 & umask_like } else { 0o666 & umask_like };
        fs::set_permissions(
            &path,
            fs::Permissions::from_mode(mode | if *exec { 0o100 } else { 0 }),
        )
        .unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs);
        fs::File::options().write(true).open(&path).unwrap().set_modified(t).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    fs::set_permissions(root.join("etc"), fs::Permissions::from_mode(0o777 & umask_like | 0o700))
        .unwrap();
}

#[test]
fn rootfs_dir_import_is_deterministic() {
    let (d, store) = new_store();
    let one = d.path().join("one");
    let two = d.path().join("two");
    make_tree(&one, false, 0o755, 1_000);
    make_tree(&two, true, 0o700, 2_000_000_000);
    let a = import(&store, &one, Some(&r("cairn.local/rootfs:a")), &opts()).unwrap();
    let b = import(&store, &two, Some(&r("cairn.local/rootfs:b")), &opts()).unwrap();
    assert_eq!(a[0].digest, b[0].digest);

    let top = store.resolve(&r("cairn.local/rootfs:a")).unwrap();
    let img = store.resolve_image(&top, ("linux", "amd64")).unwrap();
    assert!(img.config_json.created().is_none());
    let mut ar = tar::Archive::new(store.open_blob(&img.layers[0].digest).unwrap());
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
        assert!(h.username_bytes().is_none_or(|u| u.is_empty()));
        seen.push((String::from_utf8(e.path_bytes().to_vec()).unwrap(), h.mode().unwrap()));
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[0],
        "a-very-long-directory-name-to-overflow-the-ustar-name-field-of-one-hundred-bytes/"
    );
    assert!(names.contains(&"bin") && names.contains(&"etc/") && names.contains(&"usr/bin/tool"));
    assert!(seen.contains(&("usr/bin/tool".to_string(), 0o755)));
    assert!(seen.contains(&("etc/motd".to_string(), 0o644)));
    assert!(seen.contains(&("etc/".to_string(), 0o755)));

    // A different source date gives a different layer.
    let mut o = opts();
    o.source_date = SourceDate::new(5).unwrap();
    let c = import(&store, &one, Some(&r("cairn.local/rootfs:c")), &o).unwrap();
    assert_ne!(c[0].digest, a[0].digest);

    // No name → error; a socket → error naming it.
    assert!(matches!(import(&store, &one, None, &opts()), Err(ImportError::NameRequired { .. })));
    let _sock = std::os::unix::net::UnixListener::bind(one.join("etc/sock")).unwrap();
    let err = import(&store, &one, Some(&r("x/y:z")), &opts()).unwrap_err();
    assert!(err.to_string().contains("etc/sock"), "{err}");
}

#[test]
fn rootfs_tar_import() {
    let (d, store) = new_store();
    let tar = tar_of(&[("bin/", b""), ("bin/sh", b"not really a shell")]);
    let path = d.path().join("rootfs.tar");
    fs::write(&path, &tar).unwrap();
    assert!(matches!(import(&store, &path, None, &opts()), Err(ImportError::NameRequired { .. })));
    let out = import(&store, &path, Some(&r("cairn.local/root:1")), &opts()).unwrap();
    let img = store.resolve_image(&out[0].descriptor, ("linux", "amd64")).unwrap();
    assert_eq!(img.layers[0].digest, Digest::of(&tar));

    // zstd-compressed: stored decompressed.
    let zst = d.path().join("rootfs.tar.zst");
    fs::write(&zst, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
    let out = import(&store, &zst, Some(&r("cairn.local/root:2")), &opts()).unwrap();
    assert_eq!(out[0].digest, img.manifest);

    // Truncated and garbage inputs.
    assert_import_fails(&tar[..700], "truncated");
    assert_import_fails(
        b"this is not a tar archive at all, not even close......",
        "not a tar archive",
    );
}

fn ar_member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(
        format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", name, 0, 0, 0, 100644, data.len())
            .as_bytes(),
    );
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

const CONTROL: &str = "Package: hello\nVersion: 1:2.10-3+deb12u1\nArchitecture: all\nMaintainer: Someone <a@b.c>\nDescription: example package\n that says hello\n";

fn make_deb(control: &str, data_tar: &[u8]) -> Vec<u8> {
    let control_tar = tar_of(&[("./", b""), ("./control", control.as_bytes())]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&control_tar).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(data_tar).unwrap();
    let mut deb = b"!<arch>\n".to_vec();
    ar_member(&mut deb, "debian-binary", b"2.0\n");
    ar_member(&mut deb, "control.tar.gz", &gz.finish().unwrap());
    ar_member(&mut deb, "data.tar.xz", &xz.finish().unwrap());
    deb
}

#[test]
fn deb_import() {
    let (d, store) = new_store();
    let data_tar = tar_of(&[
        ("./", b""),
        ("./usr/", b""),
        ("./usr/bin/", b""),
        ("./usr/bin/hello", b"\x7fELF"),
    ]);
    let path = d.path().join("hello_2.10-3_all.deb");
    fs::write(&path, make_deb(CONTROL, &data_tar)).unwrap();
    let out = import(&store, &path, None, &opts()).unwrap();
    assert_eq!(out[0].name.to_string(), "cairn.local/deb/hello:1_2.10-3_deb12u1");
    let img = store.resolve_image(&out[0].descriptor, ("linux", "amd64")).unwrap();
    assert_eq!(img.layers.len(), 1);
    assert_eq!(img.layers[0].digest, Digest::of(&data_tar));
    assert_eq!(img.layers[0].media_type, MT_OCI_LAYER);
    let labels = img.config_json.config().as_ref().unwrap().labels().clone().unwrap();
    assert_eq!(labels["dev.cairn.deb.package"], "hello");
    assert_eq!(labels["dev.cairn.deb.version"], "1:2.10-3+deb12u1");
    assert_eq!(labels["dev.cairn.deb.architecture"], "all");
    assert_eq!(labels["dev.cairn.deb.control"], CONTROL);
    assert!(img.config_json.created().is_none());
    assert_eq!(img.config_json.rootfs().diff_ids(), &vec![Digest::of(&data_tar).to_string()]);

    // The same package imported again gives the same digest.
    let (_d2, store2) = new_store();
    assert_eq!(import(&store2, &path, None, &opts()).unwrap()[0].digest, out[0].digest);
}

#[test]
fn hostile_debs() {
    let data_tar = tar_of(&[("./usr/", b"")]);
    let good = make_deb(CONTROL, &data_tar);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..good.len() - 20].to_vec(), "truncated"),
        (make_deb("Version: 1\n", &data_tar), "Package field is missing"),
        (make_deb(&CONTROL.replace("all", "vax"), &data_tar), "unknown Debian architecture"),
        (
            {
                let mut b = good.clone();
                b[8 + 48] = b'x'; // size field of the first member header
                b
            },
            "bad size field",
        ),
        (
            {
                let mut deb = b"!<arch>\n".to_vec();
                ar_member(&mut deb, "debian-binary", b"2.0\n");
                ar_member(&mut deb, "data.tar", &data_tar);
                deb
            },
            "unexpected member",
        ),
    ];
    for (bytes, needle) in cases {
        let (d, store) = new_store();
        let path = d.path().join("bad.deb");
        fs::write(&path, &bytes).unwrap();
        let err = import(&store, &path, None, &opts()).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle:?} not in {err}");
        assert_names_input_once(&path, &err);
        assert_eq!(store_blob_count(&store), 0);
        assert!(tmp_is_empty(&store));
    }
}

/// The caller names the input (`importing X: …`); the error must not name it again, which
/// printed `importing X: X: …`.
fn assert_names_input_once(input: &Path, err: &ImportError) {
    let shown = format!("importing {}: {err}", input.display());
    let name = input.display().to_string();
    assert_eq!(shown.matches(&name).count(), 1, "the input is named again in {shown:?}");
}

#[test]
fn import_errors_say_what_failed_without_repeating_the_input() {
    let (d, store) = new_store();
    let fails = |name: &str, bytes: Option<&[u8]>| {
        let path = d.path().join(name);
        if let Some(b) = bytes {
            fs::write(&path, b).unwrap();
        }
        let err = import(&store, &path, Some(&r("x/y:z")), &opts()).unwrap_err();
        assert_names_input_once(&path, &err);
        err
    };
    let err = fails("missing.tar", None);
    assert!(matches!(err, ImportError::ReadInput { action: "read", .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot read it: "), "{err}");

    let err = fails("junk.tar", Some(&[0x42; 3000]));
    assert!(matches!(err, ImportError::NotAnImage { .. }), "{err:?}");
    assert!(err.to_string().starts_with("not a tar archive, .deb or image layout: "), "{err}");

    let err = fails("empty.tar", Some(&[0; 1024]));
    assert!(matches!(err, ImportError::NotAnImage { .. }), "{err:?}");
    assert!(err.to_string().ends_with("it has no entries"), "{err}");

    let whole = raw_tar(&[(b"oci-layout", OCI_LAYOUT.as_bytes())]);
    let err = fails("cut.tar", Some(&whole[..whole.len() - 1024]));
    assert!(matches!(err, ImportError::NoEndMarker { .. }), "{err:?}");

    let evil = raw_tar(&[(b"oci-layout", OCI_LAYOUT.as_bytes()), (b"a/../../x", b"x")]);
    let err = fails("evil.tar", Some(&evil));
    let ImportError::MemberName { source, .. } = &err else { panic!("{err:?}") };
    assert_eq!(source, &super::import::MemberNameError::DotDot("a/../../x".into()));
    assert_eq!(err.to_string(), "member \"a/../../x\" has a `..` component");

    // A malformed control file names the member it is in, once.
    let data_tar = tar_of(&[("./usr/", b"")]);
    let path = d.path().join("bad-control.deb");
    fs::write(&path, make_deb("Version: 1\n", &data_tar)).unwrap();
    let err = import(&store, &path, None, &opts()).unwrap_err();
    assert_names_input_once(&path, &err);
    let ImportError::Deb { source: super::deb::DebError::InMember { member, .. }, .. } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(member, "control.tar.gz");
    assert_eq!(
        err.to_string(),
        "member control.tar.gz: control file: the Package field is missing or empty"
    );
}

#[test]
fn deb_default_names_are_valid_refs() {
    let c = super::deb::parse_control(
        "Package: libstdc++6\nVersion: 12.2.0-14~bpo1\nArchitecture: amd64\n",
    )
    .unwrap();
    let n = super::deb::default_name(&c);
    assert_eq!(n, "cairn.local/deb/libstdc__6:12.2.0-14_bpo1");
    ImageRef::parse(&n).unwrap();
}
