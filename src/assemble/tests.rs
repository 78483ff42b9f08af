//! Assembly of whole specs from images put straight into a store: where each container's
//! image files end up and what its `runtime.json` mounts.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use serde_json::Value;

use super::*;
use crate::lock::{LockedImage, PinnedImage};
use crate::reference::ImageRef;
use crate::store::Layer;
use crate::testkit::RawTar;

/// An image of one uncompressed layer, put into `store`; `tag` tells images with the same
/// layer apart (the manifest digest is what identifies an image).
fn image(store: &Store, tag: &str, layer: &[u8]) -> ResolvedImage {
    let digest = store.put_bytes(layer).unwrap();
    ResolvedImage {
        index: None,
        manifest: Digest::of(format!("manifest {tag}").as_bytes()),
        config: Digest::of(b"config"),
        config_json: ImageConfiguration::default(),
        layers: vec![Layer {
            digest,
            size: layer.len() as u64,
            compression: Compression::None,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }],
    }
}

fn pinned(role: Role, index: usize, name: &str, resolved: &ResolvedImage) -> PinnedImage {
    let digest = resolved.manifest;
    PinnedImage {
        role,
        index,
        name: name.to_string(),
        image: ImageRef::parse("cairn.test/img:1").unwrap(),
        locked: LockedImage {
            reference: "cairn.test/img:1".into(),
            digest,
            index: None,
            platform: "linux/amd64".into(),
            manifest: digest,
            config: resolved.config,
            layers: resolved.layers.iter().map(|l| l.digest).collect(),
            repository: None,
        },
        resolved: resolved.clone(),
    }
}

/// Assembles `yaml` whose containers use `images` in spec order (onboot, then services).
fn assemble_spec(store: &Store, yaml: &str, images: &[&ResolvedImage]) -> Assembly {
    let spec = crate::spec::parse("spec.yml", yaml).unwrap();
    let mut pins = Vec::new();
    let mut next = images.iter();
    for (role, list) in [(Role::Onboot, &spec.onboot), (Role::Service, &spec.services)] {
        for (i, c) in list.iter().enumerate() {
            pins.push(pinned(role, i, &c.name, next.next().unwrap()));
        }
    }
    let inputs = BuildInputs {
        images: pins,
        files: BTreeMap::new(),
        source_date: SourceDate::new(1000).unwrap(),
    };
    assemble(&spec, yaml, &inputs, store, &AssembleOptions::default()).unwrap()
}

fn paths_under(a: &Assembly, dir: &str) -> Vec<String> {
    let root = TreePath::parse(dir).unwrap();
    a.tree
        .iter_under(&root)
        .filter_map(|(p, _)| p.strip_prefix(&root).map(|r| r.to_string()))
        .filter(|r| !r.is_empty())
        .collect()
}

fn runtime_mounts(a: &Assembly, bundle: &str) -> Value {
    let bytes = read_small_file(&a.tree, &format!("{bundle}/runtime.json"), 1 << 20).unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["mounts"].clone()
}

const SPEC: &str = "onboot:\n  - name: first\n    image: cairn.test/img:1\n  - name: ro\n    image: cairn.test/img:1\n    readonly: true\nservices:\n  - name: svc\n    image: cairn.test/img:1\n  - name: other\n    image: cairn.test/other:1\n";

#[test]
fn an_image_used_by_several_containers_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let layer = RawTar::new().dir("bin/").file("bin/app", b"the app").finish();
    let img = image(&store, "img", &layer);
    let other = image(&store, "other", &layer);
    let a = assemble_spec(&store, SPEC, &[&img, &img, &img, &other]);

    let copies: Vec<String> =
        a.tree.iter().map(|(p, _)| p.to_string()).filter(|p| p.ends_with("/bin/app")).collect();
    // The same layer under another manifest is another image: it gets its own copy.
    assert_eq!(
        copies,
        ["containers/onboot/000-first/lower/bin/app", "containers/services/other/lower/bin/app"]
    );
    // The holder has LinuxKit's layout and base entries; the others only mount points.
    let holder = paths_under(&a, "containers/onboot/000-first");
    for want in ["lower/etc/hosts", "lower/dev/pts", "lower/etc/mtab", "rootfs", "tmp"] {
        assert!(holder.iter().any(|p| p == want), "{want} missing from {holder:?}");
    }
    assert_eq!(
        paths_under(&a, "containers/onboot/001-ro"),
        ["config.json", "rootfs", "runtime.json"]
    );
    assert_eq!(
        paths_under(&a, "containers/services/svc"),
        ["config.json", "rootfs", "runtime.json", "tmp"]
    );

    let lower = "/containers/onboot/000-first/lower";
    let ro = runtime_mounts(&a, "containers/onboot/001-ro");
    assert_eq!(ro[0]["source"], lower);
    assert_eq!(ro[0]["destination"], "/containers/onboot/001-ro/rootfs");
    assert_eq!(ro[0]["options"], serde_json::json!(["bind"]));
    let svc = runtime_mounts(&a, "containers/services/svc");
    assert_eq!(svc[2]["type"], "overlay");
    assert_eq!(svc[2]["options"][0], format!("lowerdir={lower}"));
    assert_eq!(svc[2]["options"][1], "upperdir=/containers/services/svc/tmp/upper");
    let first = runtime_mounts(&a, "containers/onboot/000-first");
    assert_eq!(first[2]["options"][0], format!("lowerdir={lower}"));
    // Every container still gets the package databases of its image for the SBOM.
    assert_eq!(a.package_dbs.len(), 4);
}

/// A read-only first container holds the copy in its `rootfs/`; a writable one after it
/// overlays that.
#[test]
fn a_read_only_holder_keeps_the_copy_in_its_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let img = image(&store, "img", &RawTar::new().file("app", b"a").finish());
    let spec = "onboot:\n  - name: a\n    image: cairn.test/img:1\n    readonly: true\nservices:\n  - name: b\n    image: cairn.test/img:1\n";
    let a = assemble_spec(&store, spec, &[&img, &img]);
    assert!(a.tree.get(&TreePath::parse("containers/onboot/000-a/rootfs/app").unwrap()).is_some());
    assert_eq!(
        paths_under(&a, "containers/services/b"),
        ["config.json", "rootfs", "runtime.json", "tmp"]
    );
    let b = runtime_mounts(&a, "containers/services/b");
    assert_eq!(b[2]["options"][0], "lowerdir=/containers/onboot/000-a/rootfs");
    let own = runtime_mounts(&a, "containers/onboot/000-a");
    assert_eq!(own[0]["source"], "/containers/onboot/000-a/rootfs");
}
