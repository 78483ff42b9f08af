//! Issue 3 end to end on the real binary, for both key types (Ed25519 and ECDSA P-256):
//! `cairn keygen`, `cairn build --sign-key`, `cairn sign`, the SBOMs and the provenance
//! `build` writes, and what independent tools make of them.
//!
//! The external tools are the ones `.ci/run` installs (scripts in `tests/external/`):
//! pyspdxtools, cyclonedx-python-lib's strict 1.6 validator, in-toto-attestation (Statement
//! v1 + SLSA v1 checks), securesystemslib (DSSE) and `@sigstore/verify` (bundles). Each
//! acceptance is paired with rejections (wrong key, one changed byte in a subject digest, a
//! changed payload), so "exit 0" is not vacuous. These are the only runs of those tools in
//! the test suite. A tool that is missing makes its test skip loudly, or fail under
//! `CI=true` or `CAIRN_REQUIRE_EXTERNAL=1` (see `util::Tool`).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::util::{self, Cairn, Outcome, TestDir, faketime_works, list_tree, repo, sha256_file};

const ALGS: [&str; 2] = ["ed25519", "ecdsa-p256"];

/// The image outputs of `build_cmd`, in the order cairn prints them: the provenance subjects.
const IMAGE_OUTPUTS: [&str; 5] =
    ["hello.tar", "hello-kernel", "hello-initrd.img", "hello-cmdline", "hello.oci"];
/// What every build writes after the image outputs, in print order.
const ATTESTATIONS: [&str; 3] = ["hello.spdx.json", "hello.cdx.json", "hello.provenance.json"];
/// What a build with `--sign-key` (or `cairn sign`) writes last, in print order.
const SIGNED: [&str; 2] = ["hello.intoto.jsonl", "hello.sigstore.json"];

const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const SPDX_PREDICATE: &str = "https://spdx.dev/Document/v2.3";
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const DEFAULT_BUILDER_ID: &str = "https://cairn.dev/builder/local/v1";

const PASSPHRASE_VAR: &str = "CAIRN_KEY_PASSPHRASE";
/// Distinctive enough that finding it anywhere means it leaked.
const PASSPHRASE: &str = "Zq7-corral-PASSPHRASE-4815";

// ---------------------------------------------------------------------------------------
// Keys

struct Key {
    key: PathBuf,
    public: PathBuf,
    /// The key id `cairn keygen` printed.
    id: String,
}

/// `cairn keygen --out PREFIX --alg ALG` in `t` (umask 022), with `passphrase` in
/// CAIRN_KEY_PASSPHRASE if given.
fn keygen(t: &TestDir, prefix: &str, alg: &str, passphrase: Option<&str>) -> (Key, Outcome) {
    let mut c = t.cairn().umask("022").args(["keygen", "--out", prefix, "--alg", alg]);
    c = match passphrase {
        Some(p) => c.env(PASSPHRASE_VAR, p),
        None => c.env_remove(PASSPHRASE_VAR),
    };
    let out = c.ok();
    let key = Key {
        key: t.join(format!("{prefix}.key")),
        public: t.join(format!("{prefix}.pub")),
        id: out.stdout().trim_end_matches('\n').to_string(),
    };
    (key, out)
}

/// The DER inside a PEM block labelled `label`, checking the armour.
fn pem_der(pem: &str, label: &str) -> Vec<u8> {
    let (begin, end) = (format!("-----BEGIN {label}-----\n"), format!("-----END {label}-----\n"));
    assert!(pem.starts_with(&begin), "not a {label} PEM: {pem}");
    assert!(pem.ends_with(&end), "not a {label} PEM: {pem}");
    assert_eq!(pem.matches("-----BEGIN").count(), 1, "one PEM block expected: {pem}");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap_or_else(|e| panic!("PEM body is not base64: {e}\n{pem}"))
}

/// base64(sha256(SPKI DER)) of a public key PEM file, computed here, independently of cairn.
fn key_id_of(public_pem: &Path) -> String {
    let spki = pem_der(&fs::read_to_string(public_pem).unwrap(), "PUBLIC KEY");
    STANDARD.encode(sha2::Sha256::digest(&spki))
}

/// The DER-encoded algorithm object identifiers a key of `alg` carries.
fn algorithm_oids(alg: &str) -> Vec<&'static [u8]> {
    match alg {
        // id-Ed25519 (1.3.101.112)
        "ed25519" => vec![&[0x06, 0x03, 0x2b, 0x65, 0x70]],
        // id-ecPublicKey (1.2.840.10045.2.1), prime256v1 (1.2.840.10045.3.1.7)
        "ecdsa-p256" => vec![
            &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        ],
        _ => unreachable!("{alg}"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------------------
// Builds

/// `cairn build examples/hello.yml --locked -f tar -f kernel+initrd -f oci -o OUT`.
fn build_cmd(t: &TestDir, out: &Path) -> Cairn {
    util::hello_build(t, out).env_remove(PASSPHRASE_VAR)
}

/// A test directory with the hello images imported, a fresh key of one type, and a signed
/// build of every format in `out/`.
struct Signed {
    t: TestDir,
    alg: &'static str,
    key: Key,
    out: PathBuf,
    build: Outcome,
}

impl Signed {
    fn new(name: &str, alg: &'static str) -> Signed {
        let t = TestDir::new(&format!("{name}-{alg}"));
        t.import_hello();
        let (key, _) = keygen(&t, "release", alg, None);
        let out = t.join("out");
        let build = build_cmd(&t, &out).arg("--sign-key").arg(&key.key).ok();
        Signed { t, alg, key, out, build }
    }

    fn envelopes(&self) -> Vec<Value> {
        envelopes(&self.out)
    }

    fn bundles(&self) -> Vec<Value> {
        bundles(&self.out)
    }
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The DSSE envelopes of `hello.intoto.jsonl`, one per line.
fn envelopes(out: &Path) -> Vec<Value> {
    envelopes_of(&out.join("hello.intoto.jsonl"))
}

/// The DSSE envelopes of a `.intoto.jsonl` file, one per line.
fn envelopes_of(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "one envelope per line: {text}");
    text.lines().map(|l| serde_json::from_str(l).expect("an envelope line is JSON")).collect()
}

/// The Sigstore bundles of `hello.sigstore.json`.
fn bundles(out: &Path) -> Vec<Value> {
    match read_json(&out.join("hello.sigstore.json")) {
        Value::Array(list) => list,
        other => panic!("hello.sigstore.json is not a JSON array: {other}"),
    }
}

/// The decoded payload of an envelope.
fn payload(envelope: &Value) -> Vec<u8> {
    let b64 = envelope["payload"].as_str().expect("envelope payload");
    STANDARD.decode(b64).expect("the payload is standard base64")
}

fn statement(envelope: &Value) -> Value {
    serde_json::from_slice(&payload(envelope)).expect("the payload is JSON")
}

/// `(name, sha256 hex)` of a statement's subjects.
fn subjects(statement: &Value) -> Vec<(String, String)> {
    statement["subject"]
        .as_array()
        .expect("subject list")
        .iter()
        .map(|s| {
            let name = s["name"].as_str().expect("subject name").to_string();
            let hex = s["digest"]["sha256"].as_str().expect("subject sha256").to_string();
            (name, hex)
        })
        .collect()
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Every file under `dir` with its sha256 and mode (directories: mode only).
fn snapshot(dir: &Path) -> Vec<(String, String, u32)> {
    util::hash_tree(dir).into_iter().map(|(p, h)| (p.clone(), h, mode(&dir.join(&p)))).collect()
}

/// The top-level entries of a build's output directory (`hello.oci/` without its contents).
fn top_level(out: &Path) -> Vec<String> {
    list_tree(out)
        .into_iter()
        .filter(|p| p.trim_end_matches('/').matches('/').count() == 0)
        .collect()
}

/// `examples/hello.yml.lock`.
fn lock() -> Value {
    read_json(&repo().join("examples/hello.yml.lock"))
}

/// Hex (without `sha256:`) of a lock digest string.
fn hex_of(d: &Value) -> String {
    let s = d.as_str().unwrap_or_else(|| panic!("not a digest string: {d}"));
    s.strip_prefix("sha256:").unwrap_or_else(|| panic!("not a sha256 digest: {s}")).to_string()
}

// ---------------------------------------------------------------------------------------
// keygen

#[test]
fn keygen_writes_a_private_and_a_public_key_and_prints_the_key_id() {
    let t = TestDir::new("keygen");
    for alg in ALGS {
        let prefix = format!("release-{alg}");
        let (k, out) = keygen(&t, &prefix, alg, None);
        assert_eq!(mode(&k.key), 0o600, "{alg}: private key mode");
        assert_eq!(mode(&k.public), 0o644, "{alg}: public key mode (umask 022)");

        let private_pem = fs::read_to_string(&k.key).unwrap();
        let pkcs8 = pem_der(&private_pem, "PRIVATE KEY");
        let spki = pem_der(&fs::read_to_string(&k.public).unwrap(), "PUBLIC KEY");
        for oid in algorithm_oids(alg) {
            assert!(contains(&spki, oid), "{alg}: SPKI lacks the algorithm id {oid:02x?}");
            assert!(contains(&pkcs8, oid), "{alg}: PKCS#8 lacks the algorithm id {oid:02x?}");
        }
        if alg == "ecdsa-p256" {
            assert!(!contains(&spki, algorithm_oids("ed25519")[0]), "P-256 key looks Ed25519");
        }

        // stdout is the key id and nothing else: base64(sha256(SPKI DER)).
        assert_eq!(out.stdout(), format!("{}\n", k.id), "{alg}{}", out.report());
        assert_eq!(k.id.len(), 44, "{alg}: a base64 sha256 is 44 characters: {:?}", k.id);
        assert_eq!(k.id, key_id_of(&k.public), "{alg}: printed key id{}", out.report());
        // The private key is never printed (not even a piece of its PEM body).
        let printed = format!("{}{}", out.stdout(), out.stderr());
        for line in private_pem.lines().filter(|l| !l.starts_with("-----")) {
            for piece in line.as_bytes().chunks(16).filter(|c| c.len() == 16) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(!printed.contains(piece), "{alg}: private key material printed");
            }
        }

        // Existing key files are never overwritten, whichever of the two exists.
        let before = (fs::read(&k.key).unwrap(), fs::read(&k.public).unwrap());
        let again = t
            .cairn()
            .args(["keygen", "--out", &prefix, "--alg", alg])
            .fails_with(&[&format!("{prefix}.key"), "already exists"]);
        assert_eq!(again.stdout(), "", "{alg}{}", again.report());
        assert_eq!((fs::read(&k.key).unwrap(), fs::read(&k.public).unwrap()), before, "{alg}");
        let lone_pub = t.write(format!("lone-{alg}.pub"), "a user's file");
        t.cairn()
            .args(["keygen", "--out", &format!("lone-{alg}"), "--alg", alg])
            .fails_with(&[&format!("lone-{alg}.pub"), "already exists"]);
        assert_eq!(fs::read_to_string(&lone_pub).unwrap(), "a user's file");
        assert!(!t.join(format!("lone-{alg}.key")).exists(), "{alg}: half a key pair written");

        // A second key is a different key.
        let (other, _) = keygen(&t, &format!("other-{alg}"), alg, None);
        assert_ne!(other.id, k.id, "{alg}: two keygen runs gave the same key");
    }
    t.cairn().args(["keygen", "--out", "x", "--alg", "rsa"]).code(2);
    assert!(!t.join("x.key").exists() && !t.join("x.pub").exists());
}

#[test]
fn encrypted_keys_need_the_right_passphrase_which_never_leaks() {
    let t = TestDir::new("passphrase");
    t.import_hello();
    let mut outcomes = Vec::new();
    for alg in ALGS {
        let (k, created) = keygen(&t, &format!("enc-{alg}"), alg, Some(PASSPHRASE));
        let pem = fs::read_to_string(&k.key).unwrap();
        pem_der(&pem, "ENCRYPTED PRIVATE KEY");
        assert_eq!(mode(&k.key), 0o600, "{alg}");
        assert_eq!(k.id, key_id_of(&k.public), "{alg}{}", created.report());
        outcomes.push(created);

        // Without the variable: exit 2 naming it, and no output at all.
        let out = t.join(format!("nopass-{alg}"));
        let r = build_cmd(&t, &out).arg("--sign-key").arg(&k.key).fails_with(&[PASSPHRASE_VAR]);
        assert!(list_tree(&out).is_empty(), "{alg}: output despite the error{}", r.report());
        outcomes.push(r);
        // With a wrong one: exit 2, no output.
        let out = t.join(format!("wrong-{alg}"));
        let wrong = format!("{PASSPHRASE}x");
        let r = build_cmd(&t, &out)
            .env(PASSPHRASE_VAR, &wrong)
            .arg("--sign-key")
            .arg(&k.key)
            .fails_with(&["passphrase"]);
        assert!(!r.stderr().contains(&wrong), "{alg}: the wrong passphrase echoed");
        assert!(list_tree(&out).is_empty(), "{alg}: output despite the error{}", r.report());
        outcomes.push(r);
        // With the right one: a signed build by that key.
        let out = t.join(format!("signed-{alg}"));
        let r =
            build_cmd(&t, &out).env(PASSPHRASE_VAR, PASSPHRASE).arg("--sign-key").arg(&k.key).ok();
        for env in envelopes(&out) {
            assert_eq!(env["signatures"][0]["keyid"], k.id.as_str(), "{alg}");
        }
        outcomes.push(r);

        // `sign` loads it the same way: needs the variable, then matches the build.
        let unsigned = t.join(format!("unsigned-{alg}"));
        outcomes.push(build_cmd(&t, &unsigned).ok());
        let r = t
            .cairn()
            .env_remove(PASSPHRASE_VAR)
            .arg("sign")
            .arg(&unsigned)
            .arg("--key")
            .arg(&k.key)
            .fails_with(&[PASSPHRASE_VAR]);
        assert!(!unsigned.join("hello.intoto.jsonl").exists(), "{alg}{}", r.report());
        outcomes.push(r);
        let r = t
            .cairn()
            .env(PASSPHRASE_VAR, PASSPHRASE)
            .arg("sign")
            .arg(&unsigned)
            .arg("--key")
            .arg(&k.key)
            .ok();
        outcomes.push(r);
        for f in SIGNED {
            assert_eq!(sha256_file(&unsigned.join(f)), sha256_file(&out.join(f)), "{alg}: {f}");
        }
    }
    // The passphrase is in no output, no error, and no file (the key file included).
    for o in &outcomes {
        let all = format!("{}{}", o.stdout(), o.stderr());
        assert!(!all.contains(PASSPHRASE), "the passphrase leaked{}", o.report());
    }
    for rel in list_tree(t.path()) {
        let path = t.join(&rel);
        if path.is_file() && !rel.starts_with("store/") {
            let bytes = fs::read(&path).unwrap();
            assert!(!contains(&bytes, PASSPHRASE.as_bytes()), "the passphrase is in {rel}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// build --sign-key and sign

#[test]
fn signed_build_writes_every_file_and_repeats_byte_for_byte() {
    for alg in ALGS {
        let s = Signed::new("signed", alg);
        let mut want: Vec<String> = IMAGE_OUTPUTS
            .iter()
            .chain(&ATTESTATIONS)
            .chain(&SIGNED)
            .map(|n| if *n == "hello.oci" { "hello.oci/".to_string() } else { n.to_string() })
            .collect();
        want.sort();
        assert_eq!(top_level(&s.out), want, "{alg}: the outputs and nothing else");

        // Every output's digest is printed, in order, and is the file's.
        let printed = s.build.build_digests();
        let names: Vec<&str> = printed.iter().map(|(n, _)| n.as_str()).collect();
        let order: Vec<&str> =
            IMAGE_OUTPUTS.iter().chain(&ATTESTATIONS).chain(&SIGNED).copied().collect();
        assert_eq!(names, order, "{alg}{}", s.build.report());
        for (name, hex) in printed.iter().filter(|(n, _)| n != "hello.oci") {
            assert_eq!(&sha256_file(&s.out.join(name)), hex, "{alg}: printed digest of {name}");
        }
        for f in ATTESTATIONS.iter().chain(&SIGNED) {
            assert_eq!(mode(&s.out.join(f)), 0o644, "{alg}: mode of {f}");
        }

        // Two envelopes: the provenance, then the SBOM statement, signed by the key.
        let envs = s.envelopes();
        assert_eq!(envs.len(), 2, "{alg}: {envs:?}");
        for env in &envs {
            assert_eq!(env["payloadType"], IN_TOTO_PAYLOAD_TYPE, "{alg}");
            let sigs = env["signatures"].as_array().expect("signatures");
            assert_eq!(sigs.len(), 1, "{alg}: {sigs:?}");
            assert_eq!(sigs[0]["keyid"], s.key.id.as_str(), "{alg}: envelope keyid");
            let sig = STANDARD.decode(sigs[0]["sig"].as_str().unwrap()).unwrap();
            if alg == "ed25519" {
                assert_eq!(sig.len(), 64, "an Ed25519 signature is 64 bytes");
            } else {
                assert_eq!(sig[0], 0x30, "ECDSA signatures are DER sequences");
            }
        }
        let provenance = statement(&envs[0]);
        assert_eq!(provenance["_type"], STATEMENT_V1);
        assert_eq!(provenance["predicateType"], SLSA_V1);
        assert_eq!(provenance, read_json(&s.out.join("hello.provenance.json")), "{alg}");
        let sbom = statement(&envs[1]);
        assert_eq!(sbom["_type"], STATEMENT_V1);
        assert_eq!(sbom["predicateType"], SPDX_PREDICATE);
        assert_eq!(sbom["predicate"], read_json(&s.out.join("hello.spdx.json")), "{alg}");
        assert_eq!(sbom["subject"], provenance["subject"], "{alg}: SBOM statement subjects");

        // One v0.3 bundle per envelope, same order, carrying the key hint.
        let bundles = s.bundles();
        assert_eq!(bundles.len(), 2, "{alg}");
        for (b, env) in bundles.iter().zip(&envs) {
            assert_eq!(b["mediaType"], BUNDLE_V03, "{alg}");
            assert_eq!(b["verificationMaterial"]["publicKey"]["hint"], s.key.id.as_str());
            assert_eq!(&b["dsseEnvelope"], env, "{alg}: bundle and envelope differ");
        }

        // Building again, elsewhere and in place, gives the same bytes, signatures included.
        let before = snapshot(&s.out);
        let again = s.t.join("again");
        build_cmd(&s.t, &again).arg("--sign-key").arg(&s.key.key).ok();
        assert_eq!(snapshot(&again), before, "{alg}: a second signed build differs");
        let r = build_cmd(&s.t, &s.out).arg("--sign-key").arg(&s.key.key).ok();
        assert_eq!(r.build_digests(), printed, "{alg}");
        assert_eq!(snapshot(&s.out), before, "{alg}: rebuilding in place changed something");

        // The key changes only the two signed files.
        let unsigned = s.t.join("unsigned");
        let r = build_cmd(&s.t, &unsigned).ok();
        assert_eq!(r.build_digests(), printed[..8], "{alg}");
        let mut want_unsigned = want.clone();
        want_unsigned.retain(|n| !SIGNED.contains(&n.as_str()));
        assert_eq!(top_level(&unsigned), want_unsigned, "{alg}");
        s.t.assert_tmp_empty();
    }
}

/// What was done to a build's outputs, the output it names, and how to do it.
type Tamper = (&'static str, &'static str, fn(&Path));

#[test]
fn sign_after_build_matches_build_with_the_key_and_refuses_changed_outputs() {
    for alg in ALGS {
        let s = Signed::new("sign", alg);
        let sign = |dir: &Path| s.t.cairn().arg("sign").arg(dir).arg("--key").arg(&s.key.key);

        // build, then sign: the same two files as build --sign-key.
        let dir = s.t.join("later");
        build_cmd(&s.t, &dir).ok();
        // A second build in the directory: sign must be told which one.
        s.t.cairn()
            .arg("build")
            .arg(repo().join("examples/hello.yml"))
            .args(["--locked", "-f", "kernel+initrd:zstd", "--name", "hello-zstd", "-o"])
            .arg(&dir)
            .ok();
        let r = sign(&dir).fails_with(&["--name", "hello", "hello-zstd"]);
        assert!(!dir.join("hello.intoto.jsonl").exists(), "{alg}{}", r.report());
        let r = sign(&dir).args(["--name", "hello"]).ok();
        let printed = r.build_digests();
        let names: Vec<&str> = printed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, SIGNED, "{alg}{}", r.report());
        for (name, hex) in &printed {
            assert_eq!(&sha256_file(&dir.join(name)), hex, "{alg}: printed digest of {name}");
            assert_eq!(
                fs::read(dir.join(name)).unwrap(),
                fs::read(s.out.join(name)).unwrap(),
                "{alg}: sign and build --sign-key differ on {name}"
            );
        }
        assert!(!dir.join("hello-zstd.intoto.jsonl").exists(), "{alg}: signed the other build");
        // Signing again in place is idempotent.
        let before = snapshot(&dir);
        sign(&dir).args(["--name", "hello"]).ok();
        assert_eq!(snapshot(&dir), before, "{alg}");

        // A changed or missing subject: exit 1, and nothing written or replaced.
        let cases: [Tamper; 3] = [
            ("one byte of hello-initrd.img", "hello-initrd.img", |d| {
                let p = d.join("hello-initrd.img");
                let mut b = fs::read(&p).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x01;
                fs::write(&p, b).unwrap();
            }),
            ("hello-kernel deleted", "hello-kernel", |d| {
                fs::remove_file(d.join("hello-kernel")).unwrap()
            }),
            ("one byte of hello.tar, already signed", "hello.tar", |d| {
                let p = d.join("hello.tar");
                let mut b = fs::read(&p).unwrap();
                b[0] ^= 0x01;
                fs::write(&p, b).unwrap();
            }),
        ];
        for (i, (what, file, mutate)) in cases.into_iter().enumerate() {
            let d = s.t.join(format!("tampered-{i}"));
            let mut b = build_cmd(&s.t, &d);
            if what.ends_with("already signed") {
                b = b.arg("--sign-key").arg(&s.key.key);
            }
            b.ok();
            mutate(&d);
            let before = snapshot(&d);
            let r = sign(&d).code(1);
            r.stderr_has(&[file]);
            assert_eq!(r.stdout(), "", "{alg}, {what}{}", r.report());
            assert_eq!(snapshot(&d), before, "{alg}, {what}: sign wrote something{}", r.report());
        }
        s.t.assert_tmp_empty();
    }
}

#[test]
fn sign_refuses_an_oci_layout_whose_layer_changed() {
    let t = TestDir::new("sign-oci");
    t.import_hello();
    let (k, _) = keygen(&t, "release", "ecdsa-p256", None);
    let out = t.join("out");
    let build = build_cmd(&t, &out).ok();
    let manifest_hex = build.build_digests().into_iter().find(|(n, _)| n == "hello.oci").unwrap().1;
    let manifest = read_json(&out.join("hello.oci/blobs/sha256").join(&manifest_hex));
    for (what, digest) in
        [("config", &manifest["config"]["digest"]), ("layer", &manifest["layers"][0]["digest"])]
    {
        let d = t.join(format!("out-{what}"));
        build_cmd(&t, &d).ok();
        let blob = d.join("hello.oci/blobs/sha256").join(hex_of(digest));
        util::make_writable(&blob);
        let mut b = fs::read(&blob).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        fs::write(&blob, b).unwrap();
        let before = snapshot(&d);
        let r = t.cairn().arg("sign").arg(&d).arg("--key").arg(&k.key).run();
        assert_eq!(r.code(), Some(1), "signed an OCI layout whose {what} changed{}", r.report());
        r.stderr_has(&["hello.oci"]);
        assert_eq!(snapshot(&d), before, "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// Provenance and SBOM contents

#[test]
fn provenance_subjects_are_the_image_outputs_and_dependencies_every_pinned_input() {
    let t = TestDir::new("provenance");
    t.import_hello();
    let out = t.join("out");
    let build = build_cmd(&t, &out).ok();
    let printed = build.build_digests();
    let prov = read_json(&out.join("hello.provenance.json"));
    assert_eq!(prov["_type"], STATEMENT_V1);
    assert_eq!(prov["predicateType"], SLSA_V1);

    // Subjects: exactly the image outputs (no SBOM or provenance file), with the digests
    // cairn printed; the OCI layout as hello.oci with its manifest digest.
    let images: Vec<(String, String)> =
        printed.iter().filter(|(n, _)| IMAGE_OUTPUTS.contains(&n.as_str())).cloned().collect();
    assert_eq!(images.len(), IMAGE_OUTPUTS.len(), "{}", build.report());
    assert_eq!(sorted(&subjects(&prov)), sorted(&images), "{prov:#}");
    let index = fs::read_to_string(out.join("hello.oci/index.json")).unwrap();
    let oci = &images.iter().find(|(n, _)| n == "hello.oci").unwrap().1;
    assert!(index.contains(&format!("sha256:{oci}")), "{index}");

    // resolvedDependencies: every digest the lock pins, and the motd source file.
    let pred = &prov["predicate"];
    let deps = pred["buildDefinition"]["resolvedDependencies"].as_array().expect("deps");
    let dep_digests: BTreeSet<String> =
        deps.iter().filter_map(|d| d["digest"]["sha256"].as_str()).map(str::to_string).collect();
    let lock = lock();
    let images_in_lock = lock["images"].as_object().unwrap();
    assert_eq!(images_in_lock.len(), 3);
    let mut layers = 0;
    for (reference, img) in images_in_lock {
        for field in ["digest", "manifest", "config"] {
            let hex = hex_of(&img[field]);
            assert!(dep_digests.contains(&hex), "{reference} {field} {hex} not in {deps:#?}");
        }
        for layer in img["layers"].as_array().unwrap() {
            layers += 1;
            let hex = hex_of(layer);
            assert!(dep_digests.contains(&hex), "{reference} layer {hex} not in {deps:#?}");
        }
    }
    assert!(layers >= 3, "the lock pins {layers} layers");
    let motd = hex_of(&lock["files"]["motd"]["digest"]);
    assert_eq!(motd, sha256_file(&repo().join("examples/motd")), "the lock's motd digest");
    let motd_dep = deps.iter().find(|d| d["digest"]["sha256"] == motd.as_str());
    let motd_dep = motd_dep.unwrap_or_else(|| panic!("motd {motd} not in {deps:#?}"));
    assert!(motd_dep.to_string().contains("motd"), "{motd_dep}");

    // The SLSA fields, the spec's content digest, and no wall-clock time.
    let bd = &pred["buildDefinition"];
    assert!(bd["buildType"].as_str().is_some_and(|s| s.starts_with("https://")), "{bd:#}");
    assert!(bd["externalParameters"].is_object(), "{bd:#}");
    let spec_hex = sha256_file(&repo().join("examples/hello.yml"));
    assert_eq!(hex_of(&lock["specDigest"]), spec_hex);
    assert!(
        bd["externalParameters"].to_string().contains(&spec_hex),
        "externalParameters lack the spec digest: {:#}",
        bd["externalParameters"]
    );
    assert_eq!(pred["runDetails"]["builder"]["id"], DEFAULT_BUILDER_ID);
    let metadata = &pred["runDetails"]["metadata"];
    for clock in ["startedOn", "finishedOn"] {
        assert!(metadata.get(clock).is_none(), "wall-clock {clock} in {metadata:#}");
    }

    // --builder-id sets the builder and nothing else that the subjects depend on.
    let other = t.join("other-builder");
    let r = build_cmd(&t, &other).args(["--builder-id", "https://ci.example/runners/42"]).ok();
    assert_eq!(r.build_digests()[..5], printed[..5], "the builder id changed an image");
    let prov2 = read_json(&other.join("hello.provenance.json"));
    assert_eq!(prov2["predicate"]["runDetails"]["builder"]["id"], "https://ci.example/runners/42");
    assert_eq!(prov2["subject"], prov["subject"]);
    assert_eq!(
        prov2["predicate"]["buildDefinition"]["resolvedDependencies"],
        pred["buildDefinition"]["resolvedDependencies"]
    );
}

#[test]
fn attestations_hold_no_wall_clock_time() {
    if !faketime_works("attestations under a faked clock") {
        return;
    }
    let s = Signed::new("faketime", "ecdsa-p256");
    let faked = s.t.join("faked");
    build_cmd(&s.t, &faked)
        .wrap(["faketime", "2031-05-06 07:08:09"])
        .arg("--sign-key")
        .arg(&s.key.key)
        .ok();
    // (faketime_works() showed the faked clock reaches a dynamically linked child; file
    // mtimes cannot show it, the kernel sets them.)
    assert_eq!(snapshot(&faked), snapshot(&s.out), "the clock changed an output");
    for f in ATTESTATIONS.iter().chain(&SIGNED) {
        let text = fs::read_to_string(faked.join(f)).unwrap();
        assert!(!text.contains("2031-05-06"), "{f} holds the (faked) current date");
    }
    for env in s.envelopes() {
        assert!(!String::from_utf8(payload(&env)).unwrap().contains("2031-05-06"));
    }
}

/// `(name, version, qualifiers)` of a `pkg:oci/NAME@VERSION?QUALIFIERS` purl, the version
/// percent-decoded.
fn oci_purl(purl: &str) -> (String, String, String) {
    let rest = purl.strip_prefix("pkg:oci/").unwrap_or_else(|| panic!("not an OCI purl: {purl}"));
    let (name, rest) = rest.split_once('@').unwrap_or_else(|| panic!("no version: {purl}"));
    let (version, qualifiers) = rest.split_once('?').unwrap_or((rest, ""));
    (name.to_string(), version.replace("%3A", ":").replace("%3a", ":"), qualifiers.to_string())
}

#[test]
fn sbom_has_one_package_per_component_pinned_by_digest() {
    let t = TestDir::new("sbom");
    t.import_hello();
    let out = t.join("out");
    build_cmd(&t, &out).ok();
    let lock = lock();
    // The spec's components, in spec order: kernel, init, onboot greet, services greeter.
    let mut want: Vec<(String, String)> = [
        "cairn.example/hello-kernel:1",
        "cairn.example/hello-init:1",
        "cairn.example/hello-app:1",
        "cairn.example/hello-app:1",
    ]
    .iter()
    .map(|r| {
        let repository = r.rsplit_once(':').unwrap().0.to_string();
        (repository, format!("sha256:{}", hex_of(&lock["images"][r]["digest"])))
    })
    .collect();
    want.sort();
    let check = |what: &str, purls: Vec<String>| {
        let mut got: Vec<(String, String)> = purls
            .iter()
            .map(|p| {
                let (name, version, qualifiers) = oci_purl(p);
                let repo_url = qualifiers
                    .split('&')
                    .find_map(|q| q.strip_prefix("repository_url="))
                    .unwrap_or_else(|| panic!("{what}: no repository_url in {p}"));
                assert!(repo_url.ends_with(&format!("/{name}")), "{what}: {p}");
                (repo_url.to_string(), version)
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "{what}: one package per component, pinned by digest: {purls:#?}");
    };

    let spdx = read_json(&out.join("hello.spdx.json"));
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["creationInfo"]["created"], "1970-01-01T00:00:00Z", "the lock's date (0)");
    let mut spdx_purls = Vec::new();
    for p in spdx["packages"].as_array().unwrap() {
        let refs = p["externalRefs"].as_array().cloned().unwrap_or_default();
        for r in refs.iter().filter(|r| r["referenceType"] == "purl") {
            let purl = r["referenceLocator"].as_str().unwrap();
            if purl.starts_with("pkg:oci/") {
                let digest = oci_purl(purl).1;
                let sums = p["checksums"].to_string();
                assert!(sums.contains(digest.trim_start_matches("sha256:")), "{p:#}");
                spdx_purls.push(purl.to_string());
            }
        }
    }
    check("SPDX", spdx_purls);

    let cdx = read_json(&out.join("hello.cdx.json"));
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert_eq!(cdx["specVersion"], "1.6");
    let cdx_purls: Vec<String> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .filter(|p| p.starts_with("pkg:oci/"))
        .map(str::to_string)
        .collect();
    check("CycloneDX", cdx_purls);
}

#[test]
fn signed_outputs_do_not_depend_on_the_environment() {
    for alg in ALGS {
        let a = TestDir::new(&format!("signed-env-a-{alg}"));
        let b = TestDir::new(&format!("signed-env-b-{alg}"));
        a.import_hello();
        b.import_hello();
        let (k, _) = keygen(&a, "release", alg, None);
        let b_key = b.join("keys/the key");
        fs::create_dir_all(b_key.parent().unwrap()).unwrap();
        fs::copy(&k.key, &b_key).unwrap();
        fs::set_permissions(&b_key, fs::Permissions::from_mode(0o600)).unwrap();

        build_cmd(&a, &a.join("out"))
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .umask("022")
            .arg("--sign-key")
            .arg(&k.key)
            .ok();
        build_cmd(&b, &b.join("out"))
            .env("TZ", "Pacific/Chatham")
            .env("LC_ALL", "de_DE.UTF-8")
            .env("LANG", "de_DE.UTF-8")
            .env("HOME", b.join("another home"))
            .env_remove("USER")
            .env_remove("LOGNAME")
            .current_dir("/")
            .umask("077")
            .arg("--sign-key")
            .arg(&b_key)
            .ok();
        let (sa, sb) = (snapshot(&a.join("out")), snapshot(&b.join("out")));
        assert!(sa.iter().any(|(p, _, _)| p == "hello.sigstore.json"), "{sa:?}");
        assert_eq!(sa, sb, "{alg}: UTC/C/022/cwd vs Chatham/de_DE/077/`/`/odd HOME");
    }
}

// ---------------------------------------------------------------------------------------
// External validators

fn external_dir() -> PathBuf {
    repo().join("tests/external")
}

/// A `tests/external/validate_*.py` run over files it must accept (`good`) and reject
/// (`bad`), started and not yet waited for: the validators run side by side (Python
/// start-up and imports are most of their time).
struct Validation {
    script: &'static str,
    good: Vec<PathBuf>,
    bad: Vec<PathBuf>,
    child: Child,
}

impl Validation {
    fn start(script: &'static str, good: Vec<PathBuf>, bad: Vec<PathBuf>) -> Validation {
        let child = Command::new("python3")
            .arg(external_dir().join(script))
            .args(good.iter().chain(&bad))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running python3 {script}: {e}"));
        Validation { script, good, bad, child }
    }

    /// Waits for the verdicts (`valid PATH`, `INVALID PATH: …` lines) and checks them;
    /// exit 77 (the Python package is missing) goes to [`util::Tool::missing`].
    fn check(self) {
        let script = self.script;
        let out = self.child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.code() == Some(77) {
            util::PYTHON_VALIDATORS.missing(script, &text);
            return;
        }
        eprintln!("{script}: {}", text.lines().next().unwrap_or(""));
        let valid = |f: &Path| {
            let valid = format!("valid {}", f.display());
            let invalid = format!("INVALID {}", f.display());
            let v = text.lines().any(|l| l == valid || l.starts_with(&format!("{valid} (")));
            let i = text.lines().any(|l| l.starts_with(&invalid));
            assert!(v != i, "{script} gave no clear verdict on {}:\n{text}", f.display());
            v
        };
        for f in &self.good {
            assert!(valid(f), "{script} rejected {}, which cairn wrote:\n{text}", f.display());
        }
        for f in &self.bad {
            assert!(!valid(f), "{script} accepted {}, a broken copy:\n{text}", f.display());
        }
        assert_eq!(out.status.success(), self.bad.is_empty(), "{script} exit status:\n{text}");
    }
}

/// Writes a copy of `doc` changed by `mangle` to `path`: a document a validator must reject.
fn mangled(path: &Path, doc: &Value, mangle: impl FnOnce(&mut Value)) -> PathBuf {
    let mut bad = doc.clone();
    mangle(&mut bad);
    assert_ne!(&bad, doc, "mangling {} changed nothing", path.display());
    write_json(path, &bad)
}

/// The spec of [`build_awkward`]: component names that collide once sanitized, a source
/// file name with a space and URL characters.
const AWKWARD_SPEC: &str = "onboot:
  - name: a_b
    image: cairn.example/odd:1
  - name: a.b
    image: cairn.example/odd:1
  - name: a-b
    image: cairn.example/odd:1
files:
  - path: etc/odd
    source: \"a b?c#d\"
";

/// Awkward but possible package data: odd characters in every field, an epoch and a space
/// in a version, licences that are not SPDX expressions.
const AWKWARD_APK_DB: &str = "P:W\u{e9}ird pkg/1\nV:1:2 3+4\nA:\no:(x)\nm:Bad (paren) <x>\n\
L:MIT AND GPL (v2)\n\nP:odd\nV:1+git.2-r0\nA:x86_64\nL:(((\n\nP:plain\nV:1.0-r0\nA:x86_64\n\
L:GPL2+ or custom\n";

/// A build, signed with `s`'s key, of an image with awkward names and package data (what
/// the SBOM writers must still turn into valid documents), into `odd/out dir/`.
fn build_awkward(s: &Signed) -> PathBuf {
    let t = &s.t;
    t.write("odd/rootfs/etc/os-release", "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n");
    t.write("odd/rootfs/lib/apk/db/installed", AWKWARD_APK_DB);
    t.cairn().arg("import").arg(t.join("odd/rootfs")).args(["--name", "cairn.example/odd:1"]).ok();
    t.write("odd/a b?c#d", "odd\n");
    let spec = t.write("odd/odd.yml", AWKWARD_SPEC);
    t.cairn().arg("lock").arg(&spec).ok();
    let out = t.join("odd/out dir");
    t.cairn()
        .env_remove(PASSPHRASE_VAR)
        .arg("build")
        .arg(&spec)
        .args(["--locked", "-f", "tar", "--sign-key"])
        .arg(&s.key.key)
        .arg("-o")
        .arg(&out)
        .ok();
    let spdx = fs::read_to_string(out.join("odd.spdx.json")).unwrap();
    assert!(spdx.contains("W\u{e9}ird pkg/1"), "the awkward package is not in the SBOM: {spdx}");
    out
}

/// One run of an external verifier with the exit status it must give.
struct Check {
    what: String,
    cmd: Command,
    want: i32,
}

/// Runs the checks a few at a time (each is a Python or Node start-up) and reports every
/// unexpected result at once.
fn run_checks(checks: Vec<Check>) {
    let mut failures = Vec::new();
    let mut checks = checks.into_iter().peekable();
    while checks.peek().is_some() {
        let batch: Vec<_> = checks
            .by_ref()
            .take(4)
            .map(|mut c| {
                c.cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
                let child = c.cmd.spawn().unwrap_or_else(|e| panic!("running {:?}: {e}", c.cmd));
                (c, child)
            })
            .collect();
        for (c, child) in batch {
            let out = child.wait_with_output().unwrap();
            if out.status.code() != Some(c.want) {
                failures.push(format!(
                    "{}: expected exit {}, got {:?}\n  {:?}\n  stdout: {}\n  stderr: {}",
                    c.what,
                    c.want,
                    out.status.code(),
                    c.cmd,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} unexpected results:\n{}", failures.len(), failures.join("\n"));
}

/// The payload with one byte of its first subject's digest changed (still a valid
/// statement: only that hex digit differs).
fn subject_byte_changed(payload: &[u8]) -> Vec<u8> {
    let stmt: Value = serde_json::from_slice(payload).unwrap();
    let hex = stmt["subject"][0]["digest"]["sha256"].as_str().unwrap().as_bytes();
    // The same digest may also appear in the predicate (the SBOM lists the outputs): change
    // the occurrence that is the subject's.
    for pos in (0..payload.len()).filter(|&i| payload[i..].starts_with(hex)) {
        let mut p = payload.to_vec();
        p[pos] = if p[pos] == b'0' { b'1' } else { b'0' };
        let changed: Value = serde_json::from_slice(&p).expect("still JSON");
        if changed["subject"][0] != stmt["subject"][0] && changed["predicate"] == stmt["predicate"]
        {
            return p;
        }
    }
    panic!("the first subject's digest is not in the payload")
}

/// The payload with an extra subject: a different statement altogether.
fn payload_changed(payload: &[u8]) -> Vec<u8> {
    let mut stmt: Value = serde_json::from_slice(payload).unwrap();
    let extra = json!({ "name": "backdoor.tar", "digest": { "sha256": "0".repeat(64) } });
    stmt["subject"].as_array_mut().unwrap().push(extra);
    serde_json::to_vec(&stmt).unwrap()
}

fn with_payload(envelope: &Value, payload: &[u8]) -> Value {
    let mut e = envelope.clone();
    e["payload"] = STANDARD.encode(payload).into();
    e
}

/// The tampered versions of an envelope every verifier must reject.
fn tampered(envelope: &Value) -> Vec<(&'static str, Value)> {
    let p = payload(envelope);
    let mut other_type = envelope.clone();
    other_type["payloadType"] = "application/json".into();
    vec![
        ("a changed byte in a subject digest", with_payload(envelope, &subject_byte_changed(&p))),
        ("a changed payload", with_payload(envelope, &payload_changed(&p))),
        ("a changed payloadType", other_type),
    ]
}

fn write_json(path: &Path, v: &Value) -> PathBuf {
    fs::write(path, v.to_string()).unwrap();
    path.to_path_buf()
}

/// pyspdxtools, cyclonedx-python-lib's strict 1.6 validator and in-toto-attestation (with
/// the SLSA v1 checks) on what the binary wrote: the hello builds of both key types, a build
/// with awkward names and package data, and the `attestations/` examples (the attest unit
/// fixture: Alpine, Debian and `.deb` packages). Mangled copies show each validator rejects.
#[test]
fn attestations_pass_the_external_validators() {
    let signed: Vec<Signed> = ALGS.iter().map(|alg| Signed::new("validators", alg)).collect();
    let s = &signed[0];
    let t = &s.t;
    let odd = build_awkward(s);
    let examples = repo().join("attestations");

    // Per SBOM format: hello's, the awkward build's and the example document are valid;
    // the mangled copies (of document 0, 1 or 2) are not.
    type Mangle = fn(&mut Value);
    let sboms = |ext: &str, mangles: &[(&str, usize, Mangle)]| {
        let good = vec![
            s.out.join(format!("hello.{ext}")),
            odd.join(format!("odd.{ext}")),
            examples.join(format!("sbom.{ext}").replace(".json", ".example.json")),
        ];
        let bad = mangles
            .iter()
            .map(|(name, from, m)| {
                mangled(&t.join(format!("{name}.{ext}")), &read_json(&good[*from]), m)
            })
            .collect();
        (good, bad)
    };
    let (spdx, bad_spdx) = sboms(
        "spdx.json",
        &[
            ("bad-rel", 0, |d| d["relationships"][0]["relatedSpdxElement"] = "SPDXRef-Nope".into()),
            ("bad-license", 2, |d| d["packages"][3]["licenseDeclared"] = "NotALicense AND".into()),
            ("bad-id", 1, |d| d["SPDXID"] = "SPDXRef-DOC UMENT".into()),
        ],
    );
    let (cdx, bad_cdx) = sboms(
        "cdx.json",
        &[
            ("bad-type", 0, |d| d["components"][0]["type"] = "not-a-component-type".into()),
            ("bad-alg", 2, |d| d["components"][0]["hashes"][0]["alg"] = "SHA-257".into()),
            ("bad-serial", 2, |d| d["serialNumber"] = "urn:uuid:not-a-uuid".into()),
            ("bad-time", 1, |d| d["metadata"]["timestamp"] = "yesterday".into()),
        ],
    );

    // Every signed statement, as its own file.
    let mut envs = Vec::new();
    for s in &signed {
        let (e, b) = (s.envelopes(), s.bundles());
        let in_bundles: Vec<Vec<u8>> = b.iter().map(|b| payload(&b["dsseEnvelope"])).collect();
        let in_envelopes: Vec<Vec<u8>> = e.iter().map(payload).collect();
        assert_eq!(in_bundles, in_envelopes, "{}: the bundles carry the same statements", s.alg);
        envs.extend(e);
    }
    let odd_envs = envelopes_of(&odd.join("odd.intoto.jsonl"));
    let first_of = |envs: &[Value], ty: &str| {
        envs.iter().map(statement).find(|st| st["predicateType"] == ty).unwrap()
    };
    let (provenance, sbom_statement) = (first_of(&envs, SLSA_V1), first_of(&envs, SPDX_PREDICATE));
    let odd_provenance = first_of(&odd_envs, SLSA_V1);
    envs.extend(odd_envs);
    let mut good_statements: Vec<PathBuf> = envs
        .iter()
        .enumerate()
        .map(|(i, env)| {
            let path = t.join(format!("statement-{i}.json"));
            fs::write(&path, payload(env)).unwrap();
            path
        })
        .collect();
    good_statements.push(examples.join("provenance.example.json"));
    let bad_statements = vec![
        mangled(&t.join("no-build-type.json"), &provenance, |d| {
            d["predicate"]["buildDefinition"].as_object_mut().unwrap().remove("buildType");
        }),
        mangled(&t.join("v0.1.json"), &provenance, |d| {
            d["_type"] = "https://in-toto.io/Statement/v0.1".into();
        }),
        mangled(&t.join("bad-digest.json"), &provenance, |d| {
            d["subject"][0]["digest"]["sha256"] = "not hex".into();
        }),
        mangled(&t.join("no-builder.json"), &odd_provenance, |d| {
            d["predicate"]["runDetails"]["builder"]["id"] = "".into();
        }),
        mangled(&t.join("no-subject.json"), &sbom_statement, |d| {
            d["subject"] = Value::Array(Vec::new());
        }),
    ];

    let runs = [
        Validation::start("validate_spdx.py", spdx, bad_spdx),
        Validation::start("validate_cyclonedx.py", cdx, bad_cdx),
        Validation::start("validate_intoto.py", good_statements, bad_statements),
    ];
    for run in runs {
        run.check();
    }
}

/// For each key type: a signed build, a second key of the same type (the wrong one), and a
/// directory for the files a verifier is given.
fn signed_with_wrong_keys(name: &str) -> Vec<(Signed, Key, PathBuf)> {
    ALGS.iter()
        .map(|alg| {
            let s = Signed::new(name, alg);
            let (wrong, _) = keygen(&s.t, "wrong", alg, None);
            let dir = s.t.mkdir("checks");
            (s, wrong, dir)
        })
        .collect()
}

/// One of the external verifiers: `PROGRAM tests/external/SCRIPT FILE PUBLIC_KEY [KEYID]`.
struct Verifier {
    program: &'static str,
    script: PathBuf,
    env: Vec<(&'static str, PathBuf)>,
}

impl Verifier {
    fn new(program: &'static str, script: &str) -> Verifier {
        Verifier { program, script: external_dir().join(script), env: Vec::new() }
    }

    /// A check that the verifier exits `want` on `file` with `key` (and `keyid`).
    fn check(
        &self,
        what: String,
        file: &Path,
        key: &Path,
        keyid: Option<&str>,
        want: i32,
    ) -> Check {
        let mut cmd = Command::new(self.program);
        cmd.arg(&self.script).arg(file).arg(key).args(keyid).envs(self.env.iter().cloned());
        Check { what, cmd, want }
    }
}

#[test]
fn securesystemslib_verifies_the_signed_envelopes() {
    let probe = ["-c", "import securesystemslib.dsse, cryptography"];
    let test = "securesystemslib_verifies_the_signed_envelopes";
    if !util::PYTHON_VALIDATORS.works(test, Command::new("python3").args(probe)) {
        return;
    }
    let v = Verifier::new("python3", "verify_dsse.py");
    let mut checks = Vec::new();
    // Kept until the checks ran: dropping a build deletes its directory.
    let signed = signed_with_wrong_keys("dsse");
    for (s, wrong, dir) in &signed {
        let (key, id) = (&s.key.public, Some(s.key.id.as_str()));
        for (i, env) in s.envelopes().iter().enumerate() {
            let what = |w: &str| format!("{} envelope {i}: {w}", s.alg);
            let good = write_json(&dir.join(format!("{i}.json")), env);
            checks.push(v.check(what("as written"), &good, key, None, 0));
            checks.push(v.check(what("with cairn's printed key id"), &good, key, id, 0));
            checks.push(v.check(what("the wrong key"), &good, &wrong.public, None, 1));
            let under_id = what("the wrong key under the signer's key id");
            checks.push(v.check(under_id, &good, &wrong.public, id, 1));
            for (j, (how, bad)) in tampered(env).into_iter().enumerate() {
                let path = write_json(&dir.join(format!("{i}-tampered-{j}.json")), &bad);
                checks.push(v.check(what(how), &path, key, None, 1));
            }
        }
    }
    run_checks(checks);
}

#[test]
fn sigstore_verify_verifies_the_bundles() {
    let modules = std::env::var_os("CAIRN_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| external_dir().join("node"));
    let probe = modules.join("node_modules/@sigstore/verify/package.json");
    let test = "sigstore_verify_verifies_the_bundles";
    let mut require = Command::new("node");
    if !util::SIGSTORE_JS.works(test, require.args(["-e", "require(process.argv[1])"]).arg(&probe))
    {
        return;
    }
    let mut v = Verifier::new("node", "verify_bundle.mjs");
    v.env.push(("CAIRN_NODE_MODULES", modules));
    let mut checks = Vec::new();
    // Kept until the checks ran: dropping a build deletes its directory.
    let signed = signed_with_wrong_keys("bundle");
    for (s, wrong, dir) in &signed {
        let key = &s.key.public;
        for (i, bundle) in s.bundles().iter().enumerate() {
            let what = |w: &str| format!("{} bundle {i}: {w}", s.alg);
            // Ed25519 is accepted inside DSSE (the bundles' content); both key types must pass.
            let good = write_json(&dir.join(format!("{i}.json")), bundle);
            checks.push(v.check(what("as written"), &good, key, None, 0));
            checks.push(v.check(what("the wrong key"), &good, &wrong.public, None, 1));
            // The wrong key under its own hint: the signature check itself must fail.
            let mut rehinted = bundle.clone();
            rehinted["verificationMaterial"]["publicKey"]["hint"] = wrong.id.as_str().into();
            let path = write_json(&dir.join(format!("{i}-rehinted.json")), &rehinted);
            let rehinted = what("the wrong key, hint rewritten to it");
            checks.push(v.check(rehinted, &path, &wrong.public, None, 1));
            for (j, (how, env)) in tampered(&bundle["dsseEnvelope"]).into_iter().enumerate() {
                let mut bad = bundle.clone();
                bad["dsseEnvelope"] = env;
                let path = write_json(&dir.join(format!("{i}-tampered-{j}.json")), &bad);
                checks.push(v.check(what(how), &path, key, None, 1));
            }
        }
    }
    run_checks(checks);
    eprintln!("@sigstore/verify accepted the bundles of both key types (Ed25519 and P-256)");
}

/// A private key others can read is refused before any output, as OpenSSH refuses it, with
/// the command that fixes it; once fixed the same key signs.
#[test]
fn a_private_key_readable_by_others_is_refused() {
    let t = TestDir::new("unprotected-key");
    t.import_hello();
    let (k, _) = keygen(&t, "open", "ed25519", None);
    fs::set_permissions(&k.key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = t.join("out");
    let key = k.key.display().to_string();
    let r = build_cmd(&t, &out).arg("--sign-key").arg(&k.key).fails_with(&[
        "UNPROTECTED PRIVATE KEY FILE",
        "0644",
        &format!("chmod 600 {key}"),
    ]);
    assert!(list_tree(&out).is_empty(), "output despite the error{}", r.report());
    fs::set_permissions(&k.key, fs::Permissions::from_mode(0o600)).unwrap();
    build_cmd(&t, &out).arg("--sign-key").arg(&k.key).ok();
}
