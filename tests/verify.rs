//! `cairn verify`: positive cases per key type, and a tamper matrix in which every case is
//! rejected with a specific reason. Each fixture is built once per test run (per key type)
//! and copied for each case.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cairn::attest::to_json_bytes;
use cairn::sign::attestations::sign_statements;
use cairn::sign::dsse;
use cairn::sign::keys::{Algorithm, SigningKey};
use serde_json::{Value, json};

use crate::util::{Outcome, TestDir, repo};

/// One signed build of examples/hello.yml, plus keys and a second, different build.
struct Fixture {
    root: PathBuf,
    alg: Algorithm,
}

impl Fixture {
    fn out(&self) -> PathBuf {
        self.root.join("out")
    }
    /// The same spec built with another SOURCE_DATE_EPOCH: every image output differs.
    fn other(&self) -> PathBuf {
        self.root.join("other")
    }
    fn key(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.key"))
    }
    fn public(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.pub"))
    }
    fn signing_key(&self, name: &str) -> SigningKey {
        SigningKey::read_pem_file(&self.key(name), None).unwrap()
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn cairn(root: &Path) -> Command {
    let mut c = Command::new(crate::util::CAIRN);
    c.current_dir(root).env("CAIRN_STORE", root.join("store")).env_remove("SOURCE_DATE_EPOCH");
    c
}

fn build_fixture(alg: Algorithm) -> Fixture {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("verify-fixture-{alg}"));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    for name in ["release", "rebuilder", "stranger"] {
        let key = SigningKey::generate(alg).unwrap();
        let key_path = root.join(format!("{name}.key"));
        fs::write(&key_path, key.to_pkcs8_pem(None).unwrap().as_bytes()).unwrap();
        // cairn refuses a private key others can read.
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(root.join(format!("{name}.pub")), key.public_key().to_spki_pem()).unwrap();
    }
    for (dir, name) in crate::util::HELLO_IMAGES {
        run(cairn(&root)
            .arg("import")
            .arg(repo().join("testdata/images").join(dir))
            .args(["--name", name]));
    }
    for (out, epoch) in [("out", None), ("other", Some("1700000000"))] {
        let mut c = cairn(&root);
        c.arg("build")
            .arg(repo().join("examples/hello.yml"))
            .args(["--locked", "-q", "-f", "tar", "-f", "kernel+initrd", "-f", "oci", "-o", out])
            .arg("--sign-key")
            .arg(root.join("release.key"));
        if let Some(e) = epoch {
            c.env("SOURCE_DATE_EPOCH", e);
        }
        run(&mut c);
    }
    Fixture { root, alg }
}

fn fixture(alg: Algorithm) -> &'static Fixture {
    static ED: OnceLock<Fixture> = OnceLock::new();
    static P256: OnceLock<Fixture> = OnceLock::new();
    match alg {
        Algorithm::Ed25519 => ED.get_or_init(|| build_fixture(alg)),
        _ => P256.get_or_init(|| build_fixture(Algorithm::EcdsaP256)),
    }
}

fn ed() -> &'static Fixture {
    fixture(Algorithm::Ed25519)
}

/// A private copy of the fixture's output directory.
struct Case {
    t: TestDir,
    f: &'static Fixture,
}

impl Case {
    fn new(name: &str, f: &'static Fixture) -> Case {
        let t = TestDir::new(name);
        run(Command::new("cp").arg("-a").arg(f.out()).arg(t.join("out")));
        Case { t, f }
    }
    fn out(&self, rel: &str) -> PathBuf {
        self.t.join("out").join(rel)
    }
    fn write_policy(&self, yaml: &str) -> PathBuf {
        self.t.write("policy.yaml", yaml)
    }
    /// `cairn verify out/ --key release.pub --json ARGS…` (`--at` fixed).
    fn verify(&self, args: &[&str]) -> Outcome {
        self.verify_target("out", args)
    }
    fn verify_target(&self, target: &str, args: &[&str]) -> Outcome {
        self.t
            .cairn()
            .args(["verify", target, "--json", "--at", "2026-06-01T00:00:00Z", "--key"])
            .arg(self.f.public("release"))
            .args(args)
            .run()
    }
    fn statements(&self) -> (Value, Value) {
        let envs = dsse::parse_jsonl(&fs::read(self.out("hello.intoto.jsonl")).unwrap()).unwrap();
        let p = serde_json::from_slice(envs[0].payload()).unwrap();
        let s = serde_json::from_slice(envs[1].payload()).unwrap();
        (p, s)
    }
    /// Rewrites the first envelope of `hello.intoto.jsonl` (the provenance), keeping the
    /// second.
    fn edit_first_envelope(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.out("hello.intoto.jsonl");
        let ours = fs::read_to_string(&path).unwrap();
        let mut lines = ours.lines();
        let mut v: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        edit(&mut v);
        fs::write(&path, format!("{v}\n{}\n", lines.next().unwrap())).unwrap();
    }
    /// Re-signs edited statements with `key` and rewrites the signed files and the unsigned
    /// provenance copy, as an attacker holding that key would.
    fn resign(&self, key: &SigningKey, edit: impl FnOnce(&mut Value, &mut Value)) {
        let (mut p, mut s) = self.statements();
        edit(&mut p, &mut s);
        let signed = sign_statements(&p, &s, key).unwrap();
        fs::write(self.out("hello.intoto.jsonl"), signed.intoto_jsonl).unwrap();
        fs::write(self.out("hello.sigstore.json"), signed.sigstore_json).unwrap();
        fs::write(self.out("hello.provenance.json"), to_json_bytes(&p)).unwrap();
        fs::write(self.out("hello.spdx.json"), to_json_bytes(&s["predicate"])).unwrap();
    }
}

fn report(out: &Outcome) -> Value {
    serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("--json output is not JSON: {e}{}", out.report()))
}

/// Asserts a rejection (exit 1) whose reason contains `needle`; checks the report shape.
fn rejected(out: Outcome, needle: &str) {
    let rep = report(&out);
    check_schema(&rep);
    assert_eq!(out.code(), Some(1), "expected a rejection{}", out.report());
    assert_eq!(rep["verdict"], "rejected", "{}", out.report());
    let reason = rep["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(needle), "reason {reason:?} lacks {needle:?}{}", out.report());
    out.stderr_has(&["verification failed"]);
}

fn verified(out: Outcome) -> Value {
    let rep = report(&out);
    check_schema(&rep);
    assert_eq!(out.code(), Some(0), "expected verified{}", out.report());
    assert_eq!(rep["verdict"], "verified");
    assert!(rep["reason"].is_null());
    rep
}

/// A structural check of `value` against attestations/verify-report.schema.json: types,
/// enums, required and additional properties, items, and the sha256 pattern.
fn check_schema(value: &Value) {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        serde_json::from_slice(
            &fs::read(repo().join("attestations/verify-report.schema.json")).unwrap(),
        )
        .unwrap()
    });
    fn walk(s: &Value, v: &Value, at: &str) {
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(x) => vec![x.as_str()],
                Value::Array(xs) => xs.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            assert!(types.contains(&actual), "{at}: {actual} is not one of {types:?}");
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            assert!(e.contains(v), "{at}: {v} not in {e:?}");
        }
        if s.get("pattern").is_some() {
            let x = v.as_str().unwrap_or_default();
            assert!(
                x.len() == 64
                    && x.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{at}: {x}"
            );
        }
        if let (Some(props), Some(obj)) =
            (s.get("properties").and_then(Value::as_object), v.as_object())
        {
            for r in s["required"].as_array().into_iter().flatten() {
                assert!(obj.contains_key(r.as_str().unwrap()), "{at}: {r} missing");
            }
            if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                for k in obj.keys() {
                    assert!(props.contains_key(k), "{at}: unexpected {k}");
                }
            }
            for (k, sub) in props {
                if let Some(x) = obj.get(k) {
                    walk(sub, x, &format!("{at}.{k}"));
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, x) in arr.iter().enumerate() {
                walk(items, x, &format!("{at}[{i}]"));
            }
        }
    }
    walk(schema, value, "$");
}

fn flip_byte(path: &Path, offset_from_end: usize) {
    let mut b = fs::read(path).unwrap();
    let i = b.len().saturating_sub(offset_from_end + 1);
    b[i] ^= 0x01;
    crate::util::make_writable(path);
    fs::write(path, b).unwrap();
}

fn policy_keys(f: &Fixture, keys: &[(&str, &str)]) -> String {
    let mut s = String::from("keys:\n");
    for (name, extra) in keys {
        s.push_str(&format!("  - name: {name}\n    path: {}\n", f.public(name).display()));
        for l in extra.lines() {
            s.push_str(&format!("    {l}\n"));
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// Positive cases.

#[test]
fn verify_passes_for_each_key_type() {
    for alg in Algorithm::ALL {
        let c = Case::new("verify-ok", fixture(alg));
        let rep = verified(c.verify(&[]));
        let names: Value =
            rep["artifacts"].as_array().unwrap().iter().map(|a| a["name"].clone()).collect();
        assert_eq!(
            names,
            json!(["hello-cmdline", "hello-initrd.img", "hello-kernel", "hello.oci", "hello.tar"]),
            "{}",
            c.f.alg
        );
        // The human report lists the checks and the verdict.
        let human = c.t.cairn().args(["verify", "out", "--key"]).arg(c.f.public("release")).ok();
        human.stdout_has(&["ok   signature: hello.intoto.jsonl#1", "\nverified\n"]);
        // The shipped default policy is the built-in default.
        verified(c.verify(&["--policy", repo().join("policies/default.yaml").to_str().unwrap()]));
    }
}

#[test]
fn single_artifact_with_a_bundle() {
    let c = Case::new("verify-single", ed());
    fs::remove_file(c.out("hello.tar")).unwrap();
    let rep =
        verified(c.verify_target("out/hello-initrd.img", &["--bundle", "out/hello.sigstore.json"]));
    assert_eq!(rep["artifacts"].as_array().unwrap().len(), 1);
    // A single artifact finds the attestations beside it when none are given.
    verified(c.verify_target("out/hello-kernel", &[]));
}

#[test]
fn optional_artifact_may_be_missing() {
    let c = Case::new("verify-optional", ed());
    fs::remove_dir_all(c.out("hello.oci")).unwrap();
    let p = c.write_policy("artifacts:\n  optional: [hello.oci]\n");
    verified(c.verify(&["--policy", p.to_str().unwrap()]));
}

/// The production policy shape: two independent signers (K=2), windows, SBOM, builders…
fn production_policy(c: &Case, tweak: &str) -> PathBuf {
    let f = c.f;
    let mut y = policy_keys(
        f,
        &[
            ("release", "notBefore: 2026-01-01T00:00:00Z\nnotAfter: 2027-01-01T00:00:00Z"),
            ("rebuilder", ""),
        ],
    );
    y.push_str(
        "require:\n  provenance: true\n  sbom: true\n  signatures:\n    threshold: 2\n    keys: [release, rebuilder]\n\
         builders: [https://cairn.dev/builder/local/v1]\n\
         buildTypes: [https://cairn.dev/buildtypes/image/v1]\n\
         components:\n  allowedSources: [cairn.example/]\n  deniedDigests: [sha256:0000000000000000000000000000000000000000000000000000000000000000]\n\
         packages:\n  deny:\n    - {name: openssl, versions: '<3.0.7'}\n",
    );
    y.push_str(tweak);
    c.write_policy(&y)
}

fn rebuilder_attestations(c: &Case) -> PathBuf {
    let (p, s) = c.statements();
    let signed = sign_statements(&p, &s, &c.f.signing_key("rebuilder")).unwrap();
    c.t.write("rebuilder.intoto.jsonl", signed.intoto_jsonl)
}

#[test]
fn threshold_of_two_independent_signers() {
    for alg in Algorithm::ALL {
        let c = Case::new("verify-k2", fixture(alg));
        let p = production_policy(&c, "");
        let rb = rebuilder_attestations(&c);
        let rep = verified(c.verify(&[
            "--policy",
            p.to_str().unwrap(),
            "--attestations",
            rb.to_str().unwrap(),
        ]));
        let t =
            rep["checks"].as_array().unwrap().iter().find(|c| c["name"] == "threshold").unwrap();
        assert!(t["detail"].as_str().unwrap().starts_with("2 of 2"), "{t}");
        // Without the rebuilder's envelopes: only 1 of 2.
        rejected(c.verify(&["--policy", p.to_str().unwrap()]), "threshold: 1 of 2");
    }
}

/// An envelope signed by release and by rebuilder, rebuilder's signature corrupted.
fn one_bad_of_two(c: &Case) {
    let path = c.out("hello.intoto.jsonl");
    let mut envs = dsse::parse_jsonl(&fs::read(&path).unwrap()).unwrap();
    for e in &mut envs {
        e.add_signature(&c.f.signing_key("rebuilder")).unwrap();
    }
    let mut lines = Vec::new();
    for e in &envs {
        let mut v: Value = serde_json::from_str(&e.to_json_line()).unwrap();
        let sig = v["signatures"][1]["sig"].as_str().unwrap().to_owned();
        let mut raw = STANDARD.decode(sig).unwrap();
        raw[10] ^= 0xff;
        v["signatures"][1]["sig"] = STANDARD.encode(raw).into();
        lines.push(v.to_string());
    }
    fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn two_signatures_one_bad() {
    let c = Case::new("verify-onebad", ed());
    one_bad_of_two(&c);
    let keys = policy_keys(c.f, &[("release", ""), ("rebuilder", "")]);
    let k1 = c.write_policy(&format!(
        "{keys}require:\n  signatures: {{threshold: 1, keys: [release, rebuilder]}}\n"
    ));
    let rep = verified(c.verify(&["--policy", k1.to_str().unwrap()]));
    assert!(rep.to_string().contains("signature by key `rebuilder` does not verify"));
    let k2 = c.t.write(
        "k2.yaml",
        format!("{keys}require:\n  signatures: {{threshold: 2, keys: [release, rebuilder]}}\n"),
    );
    rejected(c.verify(&["--policy", k2.to_str().unwrap()]), "threshold: 1 of 2");
}

// ---------------------------------------------------------------------------------------
// Tamper matrix: each case is rejected with a specific reason.

#[test]
fn one_byte_changed_in_each_artifact() {
    for alg in Algorithm::ALL {
        for (file, needle) in [
            ("hello.tar", "artifact: hello.tar is sha256:"),
            ("hello-kernel", "artifact: hello-kernel is sha256:"),
            ("hello-initrd.img", "artifact: hello-initrd.img is sha256:"),
            ("hello-cmdline", "artifact: hello-cmdline is sha256:"),
        ] {
            let c = Case::new("tamper-byte", fixture(alg));
            flip_byte(&c.out(file), 100.min(fs::metadata(c.out(file)).unwrap().len() as usize - 1));
            rejected(c.verify(&[]), needle);
        }
    }
}

fn oci_blobs(c: &Case) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(c.out("hello.oci/blobs/sha256")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort_by_key(|p| fs::metadata(p).unwrap().len());
    v
}

#[test]
fn oci_layout_tampering() {
    // The layer blob (the largest): one byte changed.
    let c = Case::new("tamper-oci-layer", ed());
    let layer = oci_blobs(&c).pop().unwrap();
    flip_byte(&layer, 1000);
    rejected(c.verify(&[]), "does not match its digest or size");
    // The config blob: one byte changed.
    let c = Case::new("tamper-oci-config", ed());
    let blobs = oci_blobs(&c);
    let config =
        blobs.iter().find(|p| fs::read_to_string(p).is_ok_and(|s| s.contains("rootfs"))).unwrap();
    flip_byte(config, 5);
    rejected(c.verify(&[]), "does not match its digest or size");
    // An extra blob.
    let c = Case::new("tamper-oci-extra", ed());
    fs::write(c.out(&format!("hello.oci/blobs/sha256/{}", "a".repeat(64))), b"x").unwrap();
    rejected(c.verify(&[]), "blobs/sha256 differs from what the manifest references");
    // index.json pointing at another manifest.
    let c = Case::new("tamper-oci-index", ed());
    let idx = c.out("hello.oci/index.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&idx).unwrap()).unwrap();
    v["manifests"][0]["digest"] = format!("sha256:{}", "b".repeat(64)).into();
    crate::util::make_writable(&idx);
    fs::write(&idx, v.to_string()).unwrap();
    rejected(c.verify(&[]), "artifact: hello.oci: manifest blob");
    // An extra file in the layout.
    let c = Case::new("tamper-oci-file", ed());
    fs::write(c.out("hello.oci/README"), b"x").unwrap();
    rejected(c.verify(&[]), "an OCI layout holds exactly");
}

#[test]
fn artifact_renamed_added_removed_swapped() {
    let c = Case::new("tamper-renamed", ed());
    fs::rename(c.out("hello.tar"), c.out("hello2.tar")).unwrap();
    rejected(c.verify(&[]), "unexpected file(s) in");
    let c = Case::new("tamper-added", ed());
    fs::write(c.out("extra.sh"), b"#!/bin/sh\n").unwrap();
    rejected(c.verify(&[]), "unexpected file(s) in");
    let c = Case::new("tamper-hidden", ed());
    fs::create_dir(c.out(".cairn-build-x")).unwrap();
    rejected(c.verify(&[]), ".cairn-build-x");
    let c = Case::new("tamper-removed", ed());
    fs::remove_file(c.out("hello-kernel")).unwrap();
    rejected(c.verify(&[]), "missing subject(s): hello-kernel");
    let c = Case::new("tamper-swapped", ed());
    fs::copy(c.f.other().join("hello.tar"), c.out("hello.tar")).unwrap();
    rejected(c.verify(&[]), "artifact: hello.tar is sha256:");
    let c = Case::new("tamper-symlink", ed());
    fs::remove_file(c.out("hello-kernel")).unwrap();
    std::os::unix::fs::symlink(c.f.out().join("hello-kernel"), c.out("hello-kernel")).unwrap();
    rejected(c.verify(&[]), "hello-kernel: is a symbolic link");
    let c = Case::new("tamper-not-subject", ed());
    fs::write(c.out("evil"), b"x").unwrap();
    rejected(c.verify_target("out/evil", &[]), "evil is not a subject");
}

#[test]
fn attestations_from_another_build() {
    // Provenance (and bundles) of another image replayed: they name other digests.
    let c = Case::new("tamper-replay", ed());
    for f in ["hello.intoto.jsonl", "hello.sigstore.json"] {
        fs::copy(c.f.other().join(f), c.out(f)).unwrap();
    }
    rejected(c.verify(&[]), "but the signed statement says");
    // Only the provenance line replayed: it disagrees with the bundles.
    let c = Case::new("tamper-replay-line", ed());
    let other = fs::read_to_string(c.f.other().join("hello.intoto.jsonl")).unwrap();
    let ours = fs::read_to_string(c.out("hello.intoto.jsonl")).unwrap();
    let mixed = format!("{}\n{}\n", other.lines().next().unwrap(), ours.lines().nth(1).unwrap());
    fs::write(c.out("hello.intoto.jsonl"), mixed).unwrap();
    rejected(c.verify(&[]), "names other subjects than");
    // SBOM of another image swapped in.
    let c = Case::new("tamper-sbom-swap", ed());
    let mixed = format!("{}\n{}\n", ours.lines().next().unwrap(), other.lines().nth(1).unwrap());
    fs::write(c.out("hello.intoto.jsonl"), mixed).unwrap();
    rejected(c.verify(&[]), "sbom-subjects: hello.intoto.jsonl#2");
    // The unsigned SPDX copy edited.
    let c = Case::new("tamper-spdx-file", ed());
    fs::copy(c.f.other().join("hello.spdx.json"), c.out("hello.spdx.json")).unwrap();
    rejected(c.verify(&[]), "sbom-file: hello.spdx.json differs from the signed statement");
}

#[test]
fn signature_tampering() {
    for alg in Algorithm::ALL {
        // Signed by a key that is not trusted.
        let c = Case::new("tamper-untrusted", fixture(alg));
        c.resign(&c.f.signing_key("stranger"), |_, _| {});
        rejected(
            c.verify(&[]),
            "no valid signature by a usable trusted key (signature by untrusted key",
        );
        // The same, given as an extra rebuilder file next to good attestations.
        let c = Case::new("tamper-untrusted-extra", fixture(alg));
        let (p, s) = c.statements();
        let bad = sign_statements(&p, &s, &c.f.signing_key("stranger")).unwrap();
        let path = c.t.write("rb.intoto.jsonl", bad.intoto_jsonl);
        rejected(c.verify(&["--attestations", path.to_str().unwrap()]), "rb.intoto.jsonl#1");
        // A valid signature by the trusted key over another payload type.
        let c = Case::new("tamper-payload-type", fixture(alg));
        let (p, _) = c.statements();
        let env = dsse::sign(
            "application/json",
            &cairn::attest::to_json_line(&p),
            &c.f.signing_key("release"),
        )
        .unwrap();
        let ours = fs::read_to_string(c.out("hello.intoto.jsonl")).unwrap();
        fs::write(
            c.out("hello.intoto.jsonl"),
            format!("{}\n{}\n", env.to_json_line(), ours.lines().nth(1).unwrap()),
        )
        .unwrap();
        rejected(
            c.verify(&[]),
            "payload-type: hello.intoto.jsonl#1: payload type \"application/json\"",
        );
        // The payload changed under a valid signature.
        let c = Case::new("tamper-payload", fixture(alg));
        c.edit_first_envelope(|v| {
            let payload = STANDARD.decode(v["payload"].as_str().unwrap()).unwrap();
            let payload = String::from_utf8(payload).unwrap().replace("local/v1", "local/v2");
            v["payload"] = STANDARD.encode(payload).into();
        });
        rejected(c.verify(&[]), "signature by key");
    }
}

#[test]
fn envelope_without_signatures() {
    let c = Case::new("tamper-nosig", ed());
    c.edit_first_envelope(|v| v["signatures"] = json!([]));
    rejected(c.verify(&[]), "the envelope has no signatures");
}

/// The bundles file `b` with bundle `i`'s key hint and signature key id both set to `id`.
fn rehinted(b: &[u8], i: usize, id: &str) -> Value {
    let mut v: Value = serde_json::from_slice(b).unwrap();
    v[i]["verificationMaterial"]["publicKey"]["hint"] = id.into();
    v[i]["dsseEnvelope"]["signatures"][0]["keyid"] = id.into();
    v
}

#[test]
fn bundle_tampering() {
    let c = Case::new("tamper-bundle-trunc", ed());
    let b = fs::read(c.out("hello.sigstore.json")).unwrap();
    fs::write(c.out("hello.sigstore.json"), &b[..b.len() / 2]).unwrap();
    rejected(c.verify(&[]), "attestations: hello.sigstore.json: malformed Sigstore bundle");
    let c = Case::new("tamper-bundle-nonjson", ed());
    c.t.write("x.sigstore.json", "this is not JSON");
    rejected(
        c.verify_target("out/hello.tar", &["--bundle", "x.sigstore.json"]),
        "x.sigstore.json: malformed",
    );
    // The key hint (and keyid) rewritten to another trusted key: the signature fails under it.
    let c = Case::new("tamper-bundle-hint", ed());
    let other_id = c.f.signing_key("rebuilder").public_key().key_id();
    c.t.write("hint.sigstore.json", rehinted(&b, 0, &other_id).to_string());
    rejected(
        c.verify_target(
            "out/hello.tar",
            &["--bundle", "hint.sigstore.json", "--key", c.f.public("rebuilder").to_str().unwrap()],
        ),
        "signature by key",
    );
    // The hint names an untrusted key.
    let c = Case::new("tamper-bundle-hint2", ed());
    let stranger = c.f.signing_key("stranger").public_key().key_id();
    fs::write(c.out("hello.sigstore.json"), rehinted(&b, 1, &stranger).to_string()).unwrap();
    rejected(c.verify(&[]), "hello.sigstore.json#2: the bundle's key hint");
    // The hint alone changed: the bundle is malformed.
    let c = Case::new("tamper-bundle-hint3", ed());
    let mut v: Value = serde_json::from_slice(&b).unwrap();
    v[0]["verificationMaterial"]["publicKey"]["hint"] = "someone-else".into();
    fs::write(c.out("hello.sigstore.json"), v.to_string()).unwrap();
    rejected(c.verify(&[]), "keyid differs from the key hint");
}

#[test]
fn statement_tampering_resigned_by_the_trusted_key() {
    let f = ed();
    let c = Case::new("tamper-unpinned", f);
    c.resign(&f.signing_key("release"), |p, _| {
        let deps =
            p["predicate"]["buildDefinition"]["resolvedDependencies"].as_array_mut().unwrap();
        deps[0].as_object_mut().unwrap().remove("digest");
    });
    rejected(
        c.verify(&[]),
        "dependencies: hello.intoto.jsonl#1, hello.sigstore.json#1: not pinned",
    );
    let c = Case::new("tamper-predicate-type", f);
    c.resign(&f.signing_key("release"), |p, _| {
        p["predicateType"] = "https://slsa.dev/provenance/v0.2".into()
    });
    rejected(c.verify(&[]), "predicate-type: hello.intoto.jsonl#1: unknown predicate type");
    let c = Case::new("tamper-dup-subject", f);
    c.resign(&f.signing_key("release"), |p, s| {
        let first = p["subject"][0].clone();
        p["subject"].as_array_mut().unwrap().push(first.clone());
        s["subject"].as_array_mut().unwrap().push(first);
    });
    rejected(c.verify(&[]), "duplicate subject hello-cmdline");
    let c = Case::new("tamper-statement-type", f);
    c.resign(&f.signing_key("release"), |p, _| {
        p["_type"] = "https://in-toto.io/Statement/v0.1".into()
    });
    rejected(c.verify(&[]), "statement: hello.intoto.jsonl#1: _type");
}

#[test]
fn denied_package_present() {
    // A component whose layer lists openssl 3.0.2 in var/lib/dpkg/status.
    let t = TestDir::new("verify-pkgs");
    let f = ed();
    t.write(
        "rootfs/var/lib/dpkg/status",
        "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.2-0ubuntu1.10\nMaintainer: x <x@example.com>\n\n\
         Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\nMaintainer: x <x@example.com>\n",
    );
    t.write("rootfs/bin/true", "");
    t.cairn().arg("import").arg(t.join("rootfs")).args(["--name", "cairn.example/pkgs:1"]).ok();
    t.write("img.yml", "onboot:\n  - name: pkgs\n    image: cairn.example/pkgs:1\n");
    t.cairn().args(["lock", "img.yml"]).ok();
    t.cairn()
        .args(["build", "img.yml", "--locked", "-q", "-f", "tar", "-o", "out", "--sign-key"])
        .arg(f.key("release"))
        .ok();
    let verify = |policy: &str| {
        let p = t.write("p.yaml", policy);
        t.cairn()
            .args(["verify", "out", "--json", "--policy"])
            .arg(p)
            .arg("--key")
            .arg(f.public("release"))
            .run()
    };
    rejected(
        verify("packages:\n  deny:\n    - {name: openssl, versions: '>=3.0.0, <3.0.7'}\n"),
        "denied package present: openssl 3.0.2-0ubuntu1.10",
    );
    rejected(verify("packages:\n  deny:\n    - {name: zlib1g, versions: '<1:1.3'}\n"), "zlib1g");
    // Outside the denied ranges: accepted.
    verified(verify(
        "packages:\n  deny:\n    - {name: openssl, versions: '<3.0.2'}\n    - {name: zlib1g, versions: '<1.2.13'}\n",
    ));
}

#[test]
fn policy_rejections() {
    let f = ed();
    let layer = {
        let c = Case::new("p", f);
        let (p, _) = c.statements();
        p["predicate"]["buildDefinition"]["resolvedDependencies"][3]["digest"]["sha256"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let keys = policy_keys(f, &[("release", "")]);
    for (name, yaml, needle) in [
        (
            "expired",
            policy_keys(f, &[("release", "notAfter: 2026-03-01T00:00:00Z")]),
            "key `release` expired at 2026-03-01T00:00:00Z",
        ),
        (
            "not-yet-valid",
            policy_keys(f, &[("release", "notBefore: 2026-09-01T00:00:00Z")]),
            "key `release` is not valid before 2026-09-01T00:00:00Z",
        ),
        ("revoked", policy_keys(f, &[("release", "revoked: true")]), "key `release` is revoked"),
        ("builder", format!("{keys}builders: [https://ci.example.com/b]\n"), "builder: "),
        (
            "build-type",
            format!("{keys}buildTypes: [https://example.com/other/v1]\n"),
            "build-type: ",
        ),
        (
            "source",
            format!("{keys}components:\n  allowedSources: [docker.io/linuxkit/]\n"),
            "component source not allowed by the policy: kernel/kernel from cairn.example/hello-kernel:1",
        ),
        (
            "source-boundary",
            format!("{keys}components:\n  allowedSources: [cairn.exam]\n"),
            "component-sources",
        ),
        (
            "denied-digest",
            format!("{keys}components:\n  deniedDigests: [sha256:{layer}]\n"),
            "denied digest: ",
        ),
        ("sbom-required", format!("{keys}require: {{sbom: true}}\n"), "sbom: no signed SBOM"),
        (
            "upstream-unavailable",
            format!(
                "{keys}upstream:\n  - reference: cairn.example/\n    publicKey: {{path: {}}}\n",
                f.public("release").display()
            ),
            "no --upstream-bundles directory was given",
        ),
    ] {
        let c = Case::new(&format!("policy-{name}"), f);
        if name == "sbom-required" {
            // Drop the SBOM envelope and bundle.
            let ours = fs::read_to_string(c.out("hello.intoto.jsonl")).unwrap();
            fs::write(c.out("hello.intoto.jsonl"), format!("{}\n", ours.lines().next().unwrap()))
                .unwrap();
            let mut b: Value =
                serde_json::from_slice(&fs::read(c.out("hello.sigstore.json")).unwrap()).unwrap();
            b.as_array_mut().unwrap().pop();
            fs::write(c.out("hello.sigstore.json"), b.to_string()).unwrap();
            fs::remove_file(c.out("hello.spdx.json")).unwrap();
        }
        let p = c.write_policy(&yaml);
        // The policy's own key only (no --key), so windows and revocation apply.
        let out =
            c.t.cairn()
                .args(["verify", "out", "--json", "--at", "2026-06-01T00:00:00Z", "--policy"])
                .arg(&p)
                .run();
        rejected(out, needle);
    }
}

#[test]
fn bad_policy_or_keys_exit_2() {
    let c = Case::new("bad-policy", ed());
    for (yaml, needle) in [
        ("require: [\n", "policy.yaml:"),
        ("require:\n  provenanse: true\n", "did you mean `provenance`?"),
        ("keys:\n  - name: k\n    path: missing.pub\n", "missing.pub"),
        ("bogus: 1\n", "unknown field `bogus`"),
    ] {
        let p = c.write_policy(yaml);
        let out = c.t.cairn().args(["verify", "out", "--json", "--policy"]).arg(&p).run();
        assert_eq!(out.code(), Some(2), "{yaml:?}{}", out.report());
        out.stderr_has(&[needle]);
        assert!(out.stdout().is_empty(), "no report on a usage error{}", out.report());
    }
    let out = c.t.cairn().args(["verify", "out", "--key", "nope.pub"]).run();
    assert_eq!(out.code(), Some(2));
    out.stderr_has(&["nope.pub"]);
    let out = c.t.cairn().args(["verify", "out"]).run();
    assert_eq!(out.code(), Some(2));
    out.stderr_has(&["no trusted keys"]);
    let out = c.t.cairn().args(["verify", "nowhere", "--key"]).arg(c.f.public("release")).run();
    assert_eq!(out.code(), Some(2));
    let out = c.verify(&["--at", "yesterday"]);
    assert_eq!(out.code(), Some(2));
}

/// A reader that closes the pipe early ends a passing verify quietly with 0, but never turns
/// a rejection into a success.
#[test]
fn a_closed_stdout_never_hides_a_rejection() {
    let c = Case::new("closed-stdout", ed());
    let status = |c: &Case| {
        let mut child = cairn(c.t.path())
            .env("CAIRN_STORE", c.t.store())
            .args(["verify", "out", "--json", "--at", "2026-06-01T00:00:00Z", "--key"])
            .arg(c.f.public("release"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.wait().unwrap().code()
    };
    assert_eq!(status(&c), Some(0));
    flip_byte(&c.out("hello.tar"), 100);
    assert_eq!(status(&c), Some(1));
}
