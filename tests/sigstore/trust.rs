//! Which trusted root `cairn sigstore verify-bundle` uses without `--trusted-root`: the
//! public-good snapshot built into cairn, or the copy `cairn sigstore update-trust-root`
//! refreshed through TUF (here from a TUF repository the test makes and serves on
//! 127.0.0.1). Real public-good bundles come from `testdata/sigstore/` (see its README).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};

use super::{ARTIFACT, EMAIL, ISSUER, Instance, email, keyless_message_bundle, sha256};
use crate::util::{Outcome, TestDir, repo};
use rcgen::PublicKeyData as _;

const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const EMBEDDED: &str = "embedded public-good trusted root snapshot of 2026-10-23";

fn testdata(name: &str) -> String {
    repo().join("testdata/sigstore").join(name).display().to_string()
}

/// The user's cache directory of these tests (where a refreshed root lives).
fn cache(t: &TestDir) -> PathBuf {
    t.join("cache")
}

fn refreshed_path(t: &TestDir) -> PathBuf {
    cache(t).join("cairn/sigstore/public-good/trusted_root.json")
}

/// `cairn sigstore <args>` with this test's cache directory.
fn sigstore(t: &TestDir, args: &[&str]) -> Outcome {
    t.cairn().env("XDG_CACHE_HOME", cache(t)).arg("sigstore").args(args).run()
}

/// Verifies the conformance suite's keyless happy-path bundle over `subject`.
fn verify_beacon(t: &TestDir, extra: &[&str], subject: &str) -> Outcome {
    let bundle = testdata("happy-path-v0.3.sigstore.json");
    let mut args = vec!["verify-bundle", "--bundle", &bundle, "--certificate-identity", BEACON];
    args.extend(["--certificate-oidc-issuer", GITHUB]);
    args.extend(extra);
    args.push(subject);
    sigstore(t, &args)
}

#[test]
fn keyless_without_trusted_root_uses_the_embedded_public_good_root() {
    let t = TestDir::new("sigstore-embedded-root");
    let artifact = testdata("a.txt");
    let digest = format!("sha256:{}", hex::encode(sha256(&std::fs::read(&artifact).unwrap())));
    for subject in [artifact.as_str(), digest.as_str()] {
        let ok = verify_beacon(&t, &[], subject).expect_code(0);
        ok.stderr_has(&[EMBEDDED, "days old", "crates.io sigstore-trust-root 0.15.1"]);
    }
    // The embedded root does not make every bundle pass: another identity, another
    // artifact, or the staging instance's root.
    let bundle = testdata("happy-path-v0.3.sigstore.json");
    let other = [
        "verify-bundle",
        "--bundle",
        &bundle,
        "--certificate-identity",
        "someone@example.com",
        "--certificate-oidc-issuer",
        GITHUB,
        &artifact,
    ];
    sigstore(&t, &other).expect_code(1);
    let wrong = t.write("b.txt", b"not a.txt");
    verify_beacon(&t, &[], &wrong.display().to_string()).expect_code(1);
    let staging = verify_beacon(&t, &["--staging"], &artifact).expect_code(1);
    staging.stderr_has(&["embedded staging trusted root snapshot"]);

    // A key-based bundle with a public-good log entry and timestamp: checked against the
    // embedded root too; a key-only bundle (no evidence) needs no root and names none.
    let key = testdata("managed-key.pub");
    let kb = testdata("managed-key.sigstore.json");
    let ok = sigstore(&t, &["verify-bundle", "--bundle", &kb, "--key", &key, &artifact]);
    ok.expect_code(0).stderr_has(&[EMBEDDED]);
    let signing_key = super::p256();
    let pem = super::pem("PUBLIC KEY", &signing_key.subject_public_key_info());
    let own_key = t.write("own.pub", pem).display().to_string();
    let (_, content) = super::message_signature(&signing_key, ARTIFACT);
    let own = t.write(
        "own.sigstore.json",
        super::bundle(super::Material::Key, vec![], ("messageSignature", content)),
    );
    let own = own.display().to_string();
    let own_artifact = t.write("own.txt", ARTIFACT).display().to_string();
    let ok = sigstore(&t, &["verify-bundle", "--bundle", &own, "--key", &own_key, &own_artifact]);
    assert!(!ok.expect_code(0).stderr().contains("trusted root"));
}

#[test]
fn a_corrupt_refreshed_root_is_refused_not_skipped() {
    let t = TestDir::new("sigstore-corrupt-refresh");
    let artifact = testdata("a.txt");
    std::fs::create_dir_all(refreshed_path(&t).parent().unwrap()).unwrap();
    for garbage in [&b"{\"mediaType\": 3"[..], b"", b"{}"] {
        std::fs::write(refreshed_path(&t), garbage).unwrap();
        let r = verify_beacon(&t, &[], &artifact).expect_code(2);
        r.stderr_has(&["refreshed trusted root", "not usable", "update-trust-root"]);
        assert!(r.stderr().contains(&refreshed_path(&t).display().to_string()), "{}", r.report());
    }
    // A named root does not look at the refreshed copy.
    let named = repo().join("src/sigstore/trusted_root/public-good.json").display().to_string();
    let ok = verify_beacon(&t, &["--trusted-root", &named], &artifact).expect_code(0);
    ok.stderr_has(&["using the trusted root", "public-good.json"]);
    // Removing the file brings the embedded snapshot back.
    std::fs::remove_file(refreshed_path(&t)).unwrap();
    verify_beacon(&t, &[], &artifact).expect_code(0).stderr_has(&[EMBEDDED]);
}

/// A TUF repository (consistent snapshots, the layout of Sigstore's) signed with Ed25519
/// keys: root v1 trusts key 1 for every role, root v2 rotates every role to key 2.
struct TufRepo {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    root_v1: Vec<u8>,
    new_key: SigningKey,
}

fn tuf_key(k: &SigningKey) -> (String, Value) {
    let key = json!({
        "keytype": "ed25519",
        "scheme": "ed25519",
        "keyval": {"public": hex::encode(k.verifying_key().as_bytes())}
    });
    let id = hex::encode(sha256(&sigstore_tuf::canonical_json::to_canonical_bytes(&key).unwrap()));
    (id, key)
}

fn tuf_sign(signed: Value, keys: &[&SigningKey]) -> Vec<u8> {
    let canonical = sigstore_tuf::canonical_json::to_canonical_bytes(&signed).unwrap();
    let sigs: Vec<Value> = keys
        .iter()
        .map(|k| json!({"keyid": tuf_key(k).0, "sig": hex::encode(k.sign(&canonical).to_bytes())}))
        .collect();
    serde_json::to_vec(&json!({"signed": signed, "signatures": sigs})).unwrap()
}

const EXPIRES: &str = "2099-01-01T00:00:00Z";

fn tuf_root(version: u64, key: &SigningKey, signers: &[&SigningKey]) -> Vec<u8> {
    let (id, k) = tuf_key(key);
    let role = json!({"keyids": [id.clone()], "threshold": 1});
    tuf_sign(
        json!({
            "_type": "root", "spec_version": "1.0.31", "version": version, "expires": EXPIRES,
            "consistent_snapshot": true, "keys": {id: k},
            "roles": {"root": role, "timestamp": role, "snapshot": role, "targets": role}
        }),
        signers,
    )
}

impl TufRepo {
    fn new() -> TufRepo {
        let (k1, k2) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let root_v1 = tuf_root(1, &k1, &[&k1]);
        let mut files = HashMap::new();
        files.insert("2.root.json".to_string(), tuf_root(2, &k2, &[&k1, &k2]));
        TufRepo { files: Arc::new(Mutex::new(files)), root_v1, new_key: k2 }
    }

    /// Publishes `trusted_root` as version `version` of the targets, snapshot and timestamp.
    fn publish(&self, trusted_root: &[u8], version: u64) {
        let k = &self.new_key;
        let hash = hex::encode(sha256(trusted_root));
        let targets = tuf_sign(
            json!({"_type": "targets", "spec_version": "1.0.31", "version": version,
                "expires": EXPIRES, "targets": {"trusted_root.json":
                    {"length": trusted_root.len(), "hashes": {"sha256": hash.clone()}}}}),
            &[k],
        );
        let snapshot = tuf_sign(
            json!({"_type": "snapshot", "spec_version": "1.0.31", "version": version,
                "expires": EXPIRES, "meta": {"targets.json": {"version": version}}}),
            &[k],
        );
        let timestamp = tuf_sign(
            json!({"_type": "timestamp", "spec_version": "1.0.31", "version": version,
                "expires": EXPIRES, "meta": {"snapshot.json": {"version": version}}}),
            &[k],
        );
        let mut files = self.files.lock().unwrap();
        files.insert(format!("{version}.targets.json"), targets);
        files.insert(format!("{version}.snapshot.json"), snapshot);
        files.insert("timestamp.json".into(), timestamp);
        files.insert(format!("targets/{hash}.trusted_root.json"), trusted_root.to_vec());
    }

    fn set(&self, name: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(name.into(), bytes);
    }
}

/// Serves `files` over HTTP/1.1 on 127.0.0.1 (GET only, 404 for anything else) until
/// dropped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(files: Arc<Mutex<HashMap<String, Vec<u8>>>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let _ = answer(conn, &files);
                }
            }
        });
        Server { port, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(mut conn: TcpStream, files: &Mutex<HashMap<String, Vec<u8>>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line.len() > 8192 {
            break;
        }
    }
    let path = first.split(' ').nth(1).unwrap_or("/").trim_start_matches('/').to_string();
    let body = files.lock().unwrap().get(&path).cloned();
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", Vec::new()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)
}

#[test]
fn update_trust_root_refreshes_through_tuf_and_the_refresh_is_preferred() {
    let t = TestDir::new("sigstore-tuf-refresh");
    let tuf = TufRepo::new();
    let inst = Instance::new();
    let made_up_root = inst.trusted_root();
    tuf.publish(&made_up_root, 1);
    let server = Server::start(tuf.files.clone());
    let tuf_root = t.write("tuf-root.json", &tuf.root_v1);
    let update = |t: &TestDir| {
        t.cairn()
            .env("XDG_CACHE_HOME", cache(t))
            .args(["sigstore", "update-trust-root", "--tuf-url", &server.url(), "--tuf-root"])
            .arg(&tuf_root)
            .run()
    };
    let ok = update(&t).expect_code(0);
    ok.stderr_has(&["refreshed the public-good trusted root through TUF", "TUF root version 2"]);
    assert_eq!(std::fs::read(refreshed_path(&t)).unwrap(), made_up_root);

    // The refreshed root is preferred: a bundle of the made-up instance verifies with no
    // --trusted-root, and the public-good bundle no longer does.
    let artifact = t.write("a.txt", ARTIFACT).display().to_string();
    let bundle = t.write(
        "made-up.sigstore.json",
        keyless_message_bundle(&inst, email(EMAIL), ISSUER, ARTIFACT),
    );
    let bundle = bundle.display().to_string();
    let keyless = ["verify-bundle", "--bundle", &bundle, "--certificate-identity", EMAIL];
    let keyless = [&keyless[..], &["--certificate-oidc-issuer", ISSUER, &artifact]].concat();
    let ok = sigstore(&t, &keyless).expect_code(0);
    ok.stderr_has(&["trusted root refreshed through TUF on", "0 days old"]);
    assert!(!ok.stderr().contains("warning"), "{}", ok.report());
    verify_beacon(&t, &[], &testdata("a.txt")).expect_code(1);

    // An old refresh still works, with a warning.
    let old = SystemTime::now() - Duration::from_secs(200 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(refreshed_path(&t))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let ok = sigstore(&t, &keyless).expect_code(0);
    ok.stderr_has(&["200 days old", "warning: the trusted root is 200 days old"]);

    // A target that does not match the signed targets metadata is refused, and the
    // refreshed copy is left as it was.
    let before = std::fs::read(refreshed_path(&t)).unwrap();
    let next_root = Instance::new().trusted_root();
    tuf.publish(&next_root, 2);
    let mut evil = next_root.clone();
    evil.push(b' ');
    tuf.set(&format!("targets/{}.trusted_root.json", hex::encode(sha256(&next_root))), evil);
    update(&t).expect_code(2).stderr_has(&["TUF refresh from"]);
    assert_eq!(std::fs::read(refreshed_path(&t)).unwrap(), before);

    // Metadata signed by a key the root does not trust: refused as well.
    let rogue = SigningKey::from_bytes(&[9; 32]);
    tuf.set(
        "timestamp.json",
        tuf_sign(
            json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 3,
                "expires": EXPIRES, "meta": {"snapshot.json": {"version": 2}}}),
            &[&rogue],
        ),
    );
    update(&t).expect_code(2).stderr_has(&["TUF refresh from"]);
    assert_eq!(std::fs::read(refreshed_path(&t)).unwrap(), before);

    // Properly signed metadata for a target that is not a trusted root: refused too.
    tuf.publish(br#"{"not": "a trusted root"}"#, 3);
    update(&t).expect_code(2).stderr_has(&["trusted_root.json it delivered is not usable"]);
    assert_eq!(std::fs::read(refreshed_path(&t)).unwrap(), before);
    // And a good one is taken, rotating the refreshed copy.
    tuf.publish(&next_root, 4);
    update(&t).expect_code(0);
    assert_eq!(std::fs::read(refreshed_path(&t)).unwrap(), next_root);
}
