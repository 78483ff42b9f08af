//! Tests over a fixed [`BuildFacts`] fixture: golden files in `attestations/` (regenerate
//! with `CAIRN_BLESS=1`) and determinism. The external validators in `tests/external/` run
//! once, in `tests/signing.rs`, on the binary's outputs and on these golden files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::packages::{
    DEB_LABEL_ARCHITECTURE, DEB_LABEL_CONTROL, DEB_LABEL_PACKAGE, DEB_LABEL_VERSION,
};
use super::*;
use crate::source_date::rfc3339;

/// A typed document as JSON, for assertions by path.
fn json<T: serde::Serialize>(doc: &T) -> Value {
    serde_json::to_value(doc).unwrap()
}

fn d(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

fn layer(s: &str, size: u64) -> LayerFacts {
    LayerFacts {
        digest: d(s),
        size,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
    }
}

const ALPINE_OS: &str = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n\
PRETTY_NAME=\"Alpine Linux v3.20\"\n";
const ALPINE_APK: &str = "C:Q1a=\nP:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\n\
m:Natanael Copa <ncopa@alpinelinux.org>\n\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\n\
o:busybox\n\nP:dhcpcd\nV:10.0.8-r0\nA:x86_64\nL:BSD-2-Clause AND BSD-3-Clause\no:dhcpcd\n\n\
P:libcrypto3\nV:3.3.2-r0\nA:x86_64\nL:Apache-2.0\no:openssl\n\n\
P:ca-certificates-bundle\nV:20240705-r0\nA:x86_64\nL:MPL-2.0 AND MIT\n\n\
P:zlib\nV:1.3.1-r1\nA:x86_64\nL:Zlib\n\nP:odd\nV:1+git.2-r0\nA:x86_64\nL:GPL2+ or custom\n";
const DEBIAN_OS: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n\
VERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";
const DPKG_STATUS: &str = "Package: base-files\nStatus: install ok installed\n\
Maintainer: Santiago Vila <sanvila@debian.org>\nArchitecture: amd64\nVersion: 12.4+deb12u7\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\n\
Version: 2.36-9+deb12u7\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\n\
Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";

/// The fixture every golden file is generated from: a small LinuxKit-style image with an
/// Alpine-based onboot container, a Debian-based service, and a service from a `.deb`.
pub(crate) fn fixture() -> BuildFacts {
    let db = |path: &str, text: &str| PackageDb { path: path.into(), bytes: text.into() };
    let alpine = component_packages(&[
        db("lib/apk/db/installed", ALPINE_APK),
        db("etc/os-release", ALPINE_OS),
    ]);
    let debian = component_packages(&[
        db("var/lib/dpkg/status", DPKG_STATUS),
        db("usr/lib/os-release", DEBIAN_OS),
    ]);
    let deb_labels: BTreeMap<String, String> = [
        (DEB_LABEL_PACKAGE, "hello"),
        (DEB_LABEL_VERSION, "2.10-3"),
        (DEB_LABEL_ARCHITECTURE, "amd64"),
        (
            DEB_LABEL_CONTROL,
            "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n\
Maintainer: Santiago Vila <sanvila@debian.org>\nDescription: example package\n",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let component = |role: &str, name: &str, reference: &str, seed: &str| Component {
        role: role.into(),
        name: name.into(),
        locked: LockedImage {
            reference: reference.into(),
            digest: d(&format!("{seed}/manifest")),
            index: None,
            platform: "linux/amd64".into(),
            manifest: d(&format!("{seed}/manifest")),
            config: d(&format!("{seed}/config")),
            layers: vec![d(&format!("{seed}/layer0"))],
            repository: None,
        },
        layers: vec![layer(&format!("{seed}/layer0"), 1000)],
        labels: BTreeMap::new(),
        os: OsFacts::default(),
    };
    let kernel = component("kernel", "kernel", "docker.io/linuxkit/kernel:6.6.13", "kernel");
    let mut init = component("init", "init[0]", "docker.io/linuxkit/init:v1.0.0", "init");
    init.locked.index = Some(d("init/index"));
    init.locked.digest = d("init/index");
    let mut dhcpcd = component("onboot", "dhcpcd", "docker.io/library/alpine:3.20", "alpine");
    dhcpcd.layers.push(layer("alpine/layer1", 2345));
    dhcpcd.os = alpine;
    let mut getty = component("services", "getty", "gcr.io/distroless/base-debian12:latest", "deb");
    getty.os = debian;
    // Shares a layer with dhcpcd.
    getty.layers.push(layer("alpine/layer1", 2345));
    let mut hello = component("services", "hello", "localhost/deb/hello:2.10-3", "hello");
    hello.labels = deb_labels;
    BuildFacts {
        name: "hello".into(),
        spec_path: "examples/hello.yml".into(),
        spec_digest: d("spec"),
        formats: vec!["kernel+initrd:gzip".into(), "tar".into(), "oci".into()],
        source_date: SourceDate::new(1_700_000_000).unwrap_or(SourceDate::ZERO),
        builder: BuilderFacts { id: DEFAULT_BUILDER_ID.into(), cairn_version: "0.1.0".into() },
        components: vec![kernel, init, dhcpcd, getty, hello],
        files: vec![SourceFile { source: "files/motd".into(), digest: d("motd"), size: 12 }],
        subjects: vec![
            Subject { name: "hello.tar".into(), digest: d("tar") },
            Subject { name: "hello-kernel".into(), digest: d("kernel-out") },
            Subject { name: "hello-initrd.img".into(), digest: d("initrd") },
            Subject { name: "hello-cmdline".into(), digest: d("cmdline") },
            Subject { name: "hello.oci".into(), digest: d("oci-manifest") },
        ],
    }
}

/// The fixture plus awkward but possible input: odd characters everywhere, names that
/// collide once sanitized, licence text that is not an expression.
fn hostile_fixture() -> BuildFacts {
    let mut f = fixture();
    let odd = OsPackage {
        kind: PackageKind::Apk,
        name: "Wéird pkg/1".into(),
        version: "1:2 3+4".into(),
        arch: String::new(),
        source: Some("(x)".into()),
        maintainer: Some("Bad (paren) <x>".into()),
        license: Some("MIT\nGPL (v2)".into()),
    };
    f.components[2].os.packages.push(odd.clone());
    f.components[2].os.packages.push(OsPackage { license: Some("((( ".into()), ..odd });
    let mut twin = f.components[0].clone();
    twin.role = "services".into();
    twin.name = "a_b".into();
    let mut twin2 = twin.clone();
    twin2.name = "a.b".into();
    let mut twin3 = twin.clone();
    twin3.name = "a-b".into();
    f.components.extend([twin, twin2, twin3]);
    f.subjects.push(Subject { name: "out dir/x y\"é".into(), digest: d("odd") });
    f.files.push(SourceFile { source: "files/a b?c#d".into(), digest: d("f"), size: 1 });
    f
}

#[test]
fn hostile_facts_still_give_unique_ids() {
    let doc = json(&sbom::spdx::document(&hostile_fixture()));
    let ids: Vec<&str> =
        doc["packages"].as_array().unwrap().iter().map(|p| p["SPDXID"].as_str().unwrap()).collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
    let bom = json(&sbom::cyclonedx::document(&hostile_fixture()));
    let refs: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = refs.iter().copied().collect();
    assert_eq!(refs.len(), unique.len(), "{refs:?}");
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("attestations")
}

/// The golden files: (file name, bytes).
fn outputs(facts: &BuildFacts) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("provenance.example.json", to_json_bytes(&provenance::provenance_statement(facts))),
        ("sbom.spdx.example.json", to_json_bytes(&sbom::spdx::document(facts))),
        ("sbom.cdx.example.json", to_json_bytes(&sbom::cyclonedx::document(facts))),
    ]
}

#[test]
fn golden_files_match() {
    let bless = std::env::var_os("CAIRN_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, bytes) in outputs(&fixture()) {
        let path = golden_dir().join(name);
        if bless {
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let want = std::fs::read(&path).unwrap_or_default();
        if want != bytes {
            let got: Value = serde_json::from_slice(&bytes).unwrap();
            let want: Value = serde_json::from_slice(&want).unwrap_or(Value::Null);
            eprintln!("--- {name} differs; structurally equal: {}", got == want);
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "stale golden files {stale:?}; rerun with CAIRN_BLESS=1");
}

/// The types read back exactly what they write: parsing a golden file and writing it again
/// gives the same bytes (what `verify` reads is what the build wrote).
#[test]
fn golden_files_round_trip_through_the_types() {
    fn round_trip<T: Document + serde::de::DeserializeOwned>(name: &str) {
        let bytes = std::fs::read(golden_dir().join(name)).unwrap();
        let doc: T = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            String::from_utf8(to_json_bytes(&doc)).unwrap(),
            String::from_utf8(bytes).unwrap(),
            "{name}"
        );
    }
    round_trip::<intoto::Statement<slsa::Provenance>>("provenance.example.json");
    round_trip::<sbom::spdx::Document>("sbom.spdx.example.json");
    round_trip::<sbom::cyclonedx::Bom>("sbom.cdx.example.json");
}

#[test]
fn same_facts_same_bytes_and_order_of_components_does_not_matter() {
    let a = fixture();
    let mut b = fixture();
    b.components.reverse();
    b.subjects.reverse();
    for c in &mut b.components {
        c.os.packages.reverse();
    }
    assert_eq!(outputs(&a), outputs(&fixture()));
    let (oa, ob) = (outputs(&a), outputs(&b));
    // Provenance follows spec order on purpose; SBOMs must not.
    assert_eq!(oa[1], ob[1]);
    assert_eq!(oa[2], ob[2]);
    assert_ne!(oa[0], ob[0]);
}

#[test]
fn the_only_timestamp_is_the_source_date() {
    let facts = fixture();
    let date = rfc3339(facts.source_date);
    for (name, bytes) in outputs(&facts) {
        let text = String::from_utf8(bytes).unwrap();
        let mut found = 0;
        // Every "YYYY-MM-DDT" shape in the text must be the source date.
        for (i, _) in text.match_indices('T') {
            let Some(start) = i.checked_sub(10) else { continue };
            let cand = &text[start..i];
            let b = cand.as_bytes();
            if b[4] == b'-' && b[7] == b'-' && cand.bytes().filter(u8::is_ascii_digit).count() == 8
            {
                assert_eq!(&text[start..start + date.len()], date, "{name}");
                found += 1;
            }
        }
        let expect = usize::from(name != "provenance.example.json");
        assert_eq!(found, expect, "{name}");
        assert!(!text.contains("invocationId") && !text.contains("startedOn"), "{name}");
    }
}

#[test]
fn content_derived_ids_change_with_content() {
    let a = json(&sbom::spdx::document(&fixture()));
    let mut facts = fixture();
    facts.subjects[0].digest = d("other");
    let b = json(&sbom::spdx::document(&facts));
    assert_ne!(a["documentNamespace"], b["documentNamespace"]);
    let ns = a["documentNamespace"].as_str().unwrap();
    assert!(ns.starts_with("https://cairn.dev/spdx/hello-"), "{ns}");
    let ca = json(&sbom::cyclonedx::document(&fixture()));
    let cb = json(&sbom::cyclonedx::document(&facts));
    assert_ne!(ca["serialNumber"], cb["serialNumber"]);
}

#[test]
fn uuid_shape() {
    let u = sbom::cyclonedx::uuid_from(&d("x"));
    assert_eq!(u.len(), 36);
    let parts: Vec<&str> = u.split('-').collect();
    assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    assert!(parts[2].starts_with('8'));
    assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
}

#[test]
fn package_db_paths() {
    assert!(is_package_db_path("var/lib/dpkg/status"));
    assert!(is_package_db_path("var/lib/dpkg/status.d/tzdata"));
    assert!(!is_package_db_path("var/lib/dpkg/status.d/"));
    assert!(!is_package_db_path("var/lib/dpkg/status.d/a/b"));
    assert!(!is_package_db_path("/etc/os-release"));
    let OsFacts { release: os, packages: pkgs } = component_packages(&[
        PackageDb { path: "usr/lib/os-release".into(), bytes: b"ID=debian\n".to_vec() },
        PackageDb { path: "etc/os-release".into(), bytes: b"ID=ubuntu\n".to_vec() },
        PackageDb {
            path: "var/lib/dpkg/status.d/tzdata".into(),
            bytes: b"Package: tzdata\nVersion: 1\n".to_vec(),
        },
        PackageDb {
            path: "var/lib/dpkg/status.d/tzdata.md5sums".into(),
            bytes: b"abc  usr/share/x\n".to_vec(),
        },
    ]);
    assert_eq!(os.map(|o| o.id).as_deref(), Some("ubuntu"));
    assert_eq!(pkgs.len(), 1);
}

#[test]
fn provenance_shape() {
    let facts = fixture();
    let st = json(&provenance::provenance_statement(&facts));
    assert_eq!(st["_type"], STATEMENT_TYPE);
    assert_eq!(st["predicateType"], provenance::PREDICATE_TYPE);
    let names: Vec<&str> =
        st["subject"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let bd = &st["predicate"]["buildDefinition"];
    assert_eq!(bd["buildType"], BUILD_TYPE);
    assert_eq!(bd["externalParameters"]["spec"]["digest"]["sha256"], facts.spec_digest.hex());
    assert_eq!(bd["externalParameters"]["sourceDateEpoch"], "1700000000");
    let deps = bd["resolvedDependencies"].as_array().unwrap();
    let uris: Vec<&str> = deps.iter().filter_map(|r| r["uri"].as_str()).collect();
    assert!(uris.contains(&"file:files/motd"));
    assert!(uris.contains(&"pkg:deb/debian/hello@2.10-3?arch=amd64"));
    // The init index is the top digest, so it is not listed twice.
    assert!(!deps.iter().any(|r| r["name"] == "init/init[0]/index"));
    assert!(deps.iter().any(|r| r["name"] == "onboot/dhcpcd/layers/1"));
    assert_eq!(st["predicate"]["runDetails"]["builder"]["id"], DEFAULT_BUILDER_ID);
}

#[test]
fn sbom_statement_wraps_the_spdx_document() {
    let facts = fixture();
    let doc = sbom::spdx::document(&facts);
    let st = sbom_statement(&facts, &doc);
    let line = to_json_line(&st);
    let (st, doc) = (json(&st), json(&doc));
    assert_eq!(st["predicateType"], SPDX_PREDICATE_TYPE);
    assert_eq!(st["predicate"], doc);
    assert_eq!(st["subject"], json(&provenance::provenance_statement(&facts))["subject"]);
    assert!(!line.contains(&b'\n'));
}
