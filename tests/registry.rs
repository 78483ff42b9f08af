//! Registries: pull, lock, fetch, build and push against a real registry (Debian's
//! `docker-registry`, distribution 2.8: no referrers API, so the tag schema is used), the
//! same behind TLS with htpasswd basic auth, and the referrers API, retries and stalls
//! against the small spec-following server in `registry/server.rs`. `skopeo` checks that
//! what cairn pushes is readable by others and that cairn reads what others push.
//!
//! Under `CI=true` a missing `docker-registry`, `htpasswd` or `skopeo` fails the test;
//! elsewhere the test is skipped loudly.

mod server;

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cairn::digest::Digest;
use cairn::reference::ImageRef;

use crate::util::{self, TestDir, Tool};
use server::FakeRegistry;

/// Whether the external tools are there (missing ones fail under CI, else skip loudly).
fn tools(tools: &[Tool]) -> bool {
    tools.iter().all(|t| t.found("registry test"))
}

/// A `docker-registry` process on 127.0.0.1 with its own storage, killed on drop.
struct Distribution {
    child: Child,
    port: u16,
    storage: PathBuf,
}

impl Distribution {
    /// `tls`: (certificate, key, htpasswd) files for the TLS + basic auth instance.
    fn start(t: &TestDir, label: &str, tls: Option<(&Path, &Path, &Path)>) -> Distribution {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("finding a free port")
            .port();
        let storage = t.mkdir(format!("{label}-storage"));
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((cert, key, htpasswd)) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: cairn-test\n    path: {}\n",
                cert.display(),
                key.display(),
                htpasswd.display()
            ));
        }
        let config_path = t.write(format!("{label}.yml"), config);
        let log = fs::File::create(t.join(format!("{label}.log"))).expect("creating a log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(15), "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Distribution { child, port, storage }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The data file of a blob in the registry's storage.
    fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A signed OCI layout of examples/hello.yml in `out/` (hello.oci and its attestations).
fn build_signed_hello(t: &TestDir) -> PathBuf {
    t.import_hello();
    t.cairn().args(["keygen", "--out"]).arg(t.join("release")).ok();
    // --no-cache: the build cache would file the layout's blobs in the store, and the
    // tests that pull the pushed image back must find them missing.
    t.cairn()
        .arg("build")
        .arg(util::repo().join("examples/hello.yml"))
        .args(["--locked", "--no-cache", "-f", "oci", "--sign-key"])
        .arg(t.join("release.key"))
        .arg("-o")
        .arg(t.join("out"))
        .ok();
    t.join("out/hello.oci")
}

/// The signed hello layout pushed to `REPO:1` on a fresh [`FakeRegistry`].
struct Pushed {
    fake: FakeRegistry,
    layout: PathBuf,
    /// `HOST/REPO:1`.
    target: String,
    /// What `cairn push` printed: `HOST/REPO:1@sha256:…`.
    pinned: String,
}

fn push_hello_to_fake(t: &TestDir, repo: &str) -> Pushed {
    let fake = FakeRegistry::start();
    let layout = build_signed_hello(t);
    let target = format!("{}/{repo}:1", fake.host());
    let pinned = t.cairn().arg("push").arg(&layout).arg(&target).ok().stdout();
    Pushed { fake, layout, target, pinned }
}

fn attestations_equal(out: &Path, fetched: &[PathBuf]) {
    let names: Vec<String> =
        fetched.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["hello.intoto.jsonl", "hello.sigstore.json"]);
    for f in fetched {
        let original = out.join(f.file_name().unwrap());
        assert_eq!(fs::read(f).unwrap(), fs::read(&original).unwrap(), "{}", f.display());
    }
}

#[test]
fn pull_lock_fetch_build_push_against_distribution() {
    if !tools(&[util::DOCKER_REGISTRY, util::SKOPEO]) {
        return;
    }
    let t = TestDir::new("registry-dist");
    let reg = Distribution::start(&t, "plain", None);
    let host = reg.host();
    let layout = build_signed_hello(&t);

    // cairn pulls what skopeo pushed: the same digests as the local import.
    let a = TestDir::new("registry-dist-a");
    let spec_text = fs::read_to_string(util::repo().join("examples/hello.yml"))
        .unwrap()
        .replace("cairn.example/", &format!("{host}/"));
    a.write("hello.yml", &spec_text);
    fs::copy(util::repo().join("examples/motd"), a.join("motd")).unwrap();
    for (_, name) in util::HELLO_IMAGES {
        let local = t.cairn().args(["store", "ls"]).ok().stdout();
        assert!(local.contains(name), "{local}");
        let remote = name.replace("cairn.example/", &format!("{host}/"));
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:{name}", t.store().display()),
            &format!("docker://{remote}"),
        ]);
        let pulled = a.cairn().args(["pull", &remote]).ok().stdout();
        assert!(pulled.starts_with(&format!("{remote}\tsha256:")), "{pulled}");
        let again = a.cairn().args(["pull", &remote]).ok();
        assert!(again.stderr().contains("(0 blobs, 0 bytes transferred)"), "{}", again.stderr());
    }
    a.cairn().args(["store", "fsck"]).ok();

    // lock from the pulled store: the same pins, and no registry repository recorded.
    a.cairn().arg("lock").arg(a.join("hello.yml")).ok();
    let from_store = fs::read_to_string(a.join("hello.yml.lock")).unwrap();
    assert!(!from_store.contains("\"repository\""), "{from_store}");

    // lock with an empty store: refs are resolved on the registry and pulled; --offline
    // never reaches for the network and names the missing ref.
    let l = TestDir::new("registry-dist-lock");
    for f in ["hello.yml", "motd"] {
        fs::copy(a.join(f), l.join(f)).unwrap();
    }
    let offline = l
        .cairn()
        .args(["lock", "--offline"])
        .arg(l.join("hello.yml"))
        .fails_with(&[&format!("{host}/"), "is not in the store"]);
    assert!(!l.join("hello.yml.lock").exists(), "{}", offline.stderr());
    l.cairn().arg("lock").arg(l.join("hello.yml")).ok();
    let locked = fs::read_to_string(l.join("hello.yml.lock")).unwrap();
    assert_eq!(locked.matches(&format!("\"repository\": \"{host}/")).count(), 3, "{locked}");
    // Digests as locked from the pulled store; the repository survives a re-lock from the store.
    let pins = |text: &str| -> Vec<String> {
        text.lines().filter(|l| l.contains("sha256:")).map(str::to_string).collect()
    };
    assert_eq!(pins(&locked), pins(&from_store));
    l.cairn().args(["lock", "--check", "--offline"]).arg(l.join("hello.yml")).ok();
    l.cairn()
        .args(["build", "--locked", "-f", "tar", "-o"])
        .arg(l.join("out"))
        .arg(l.join("hello.yml"))
        .ok();

    // fetch into an empty store, build offline from it.
    let b = TestDir::new("registry-dist-b");
    fs::copy(a.join("hello.yml"), b.join("hello.yml")).unwrap();
    fs::copy(l.join("hello.yml.lock"), b.join("hello.yml.lock")).unwrap();
    fs::copy(a.join("motd"), b.join("motd")).unwrap();
    let fetched = b.cairn().arg("fetch").arg(b.join("hello.yml")).ok().stdout();
    assert!(!fetched.contains("\t0 blobs"), "{fetched}");
    let again = b.cairn().arg("fetch").arg(b.join("hello.yml")).ok().stdout();
    assert_eq!(again.matches("\t0 blobs\t0 bytes").count(), 3, "{again}");
    b.cairn()
        .args(["build", "--locked", "-f", "oci", "-o"])
        .arg(b.join("out"))
        .arg(b.join("hello.yml"))
        .ok();
    // The provenance names each component by its registry repository and digest.
    let provenance = fs::read_to_string(b.join("out/hello.provenance.json")).unwrap();
    assert!(!provenance.contains("pkg:oci/"), "{provenance}");
    let lock: serde_json::Value = serde_json::from_str(&locked).unwrap();
    for image in lock["images"].as_object().unwrap().values() {
        let uri = format!(
            "oci://{}@{}",
            image["repository"].as_str().unwrap(),
            image["digest"].as_str().unwrap()
        );
        assert!(provenance.contains(&format!("\"uri\": \"{uri}\"")), "{uri} in {provenance}");
    }

    // push: skopeo reads it; pushing twice uploads nothing and attaches nothing new.
    let target = format!("{host}/team/hello:1");
    let pushed = t.cairn().arg("push").arg(&layout).arg(&target).ok();
    let pinned = pushed.stdout().trim().to_string();
    assert!(pinned.starts_with(&format!("{target}@sha256:")), "{pinned}");
    let again = t.cairn().arg("push").arg(&layout).arg(&target).ok();
    assert_eq!(again.stdout().trim(), pinned);
    assert!(
        again.stderr().contains("(0 blobs, 0 bytes uploaded, 0 attestations attached)"),
        "{}",
        again.stderr()
    );
    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{target}")]);
    let digest = pinned.rsplit('@').next().unwrap();
    assert!(inspect.contains(digest), "{inspect}");
    let tags = skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{host}/team/hello")]);
    assert!(tags.contains(&format!("sha256-{}", digest.trim_start_matches("sha256:"))), "{tags}");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:copy", t.join("skopeo-copy").display()),
    ]);

    // The attestations come back through the tag schema, byte for byte.
    let fetched = cairn::registry::fetch_referrers(
        &ImageRef::parse(&target).unwrap(),
        &Digest::parse(digest).unwrap(),
        &t.join("referrers"),
        &cairn::registry::Options::default(),
    )
    .unwrap();
    attestations_equal(&t.join("out"), &fetched);

    // verify REF@sha256: the image and its attestations from the registry, as on disk.
    let key = t.join("release.pub");
    let verify = |r: &str| t.cairn().arg("verify").arg(r).arg("--key").arg(&key).run();
    let pinned = pinned.as_str();
    let passed = verify(pinned).expect_code(0).stdout();
    assert!(passed.contains("hello.oci"), "{passed}");
    let json = t.cairn().arg("verify").arg(pinned).arg("--key").arg(&key).arg("--json").ok();
    assert!(json.stdout().starts_with('{'), "{}", json.stdout());
    // A tag is refused: verify checks what is deployed, by digest.
    verify(&target).expect_code(2).stderr_has(&["no digest", "@sha256:"]);
    // A referrer altered in the registry is refused (exit 1), and so is a missing one.
    let link = |p: &str| fs::read_to_string(reg.storage.join(p)).unwrap().trim().to_string();
    let tags = "docker/registry/v2/repositories/team/hello/_manifests/tags";
    let tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    let index_digest = link(&format!("{tags}/{tag}/current/link"));
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(reg.blob_data(&index_digest)).unwrap()).unwrap();
    let artifact = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(reg.blob_data(artifact)).unwrap()).unwrap();
    let layer = reg.blob_data(manifest["layers"][0]["digest"].as_str().unwrap());
    let original = fs::read(&layer).unwrap();
    let mut tampered = original.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    fs::write(&layer, &tampered).unwrap();
    verify(pinned).expect_code(1).stderr_has(&["verification failed", "failed verification"]);
    fs::write(&layer, &original).unwrap();
    verify(pinned).expect_code(0);
    fs::remove_dir_all(reg.storage.join(format!("{tags}/{tag}"))).unwrap();
    let missing = verify(pinned).expect_code(1);
    assert!(missing.stdout().contains("no attestations found"), "{}", missing.stdout());

    // A blob corrupted in the registry's storage is refused, and nothing is stored.
    let app = format!("{host}/hello-app:1");
    let c = TestDir::new("registry-dist-corrupt");
    let resolved = cairn::registry::resolve(
        &ImageRef::parse(&app).unwrap(),
        "linux/amd64",
        &cairn::registry::Options::default(),
    )
    .unwrap();
    let layer = resolved.layers[0].digest.to_string();
    let data = reg.blob_data(&layer);
    let mut bytes = fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&data, bytes).unwrap();
    let out = c.cairn().args(["pull", &app]).fails_with(&[
        "failed verification",
        &layer,
        "nothing was stored",
    ]);
    assert_eq!(out.code(), Some(2));
    assert!(!c.store().join("blobs/sha256").join(layer.trim_start_matches("sha256:")).exists());
    let ls = c.cairn().args(["store", "ls"]).ok().stdout();
    assert!(!ls.contains("hello-app"), "{ls}");
    c.cairn().args(["store", "fsck"]).ok();
}

#[test]
fn tls_and_basic_auth_against_distribution() {
    if !tools(&[util::DOCKER_REGISTRY, util::HTPASSWD]) {
        return;
    }
    let t = TestDir::new("registry-tls");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let cert_path = t.write("server.pem", cert.pem());
    let key_path = t.write("server.key", key.serialize_pem());
    let ca_path = t.write("ca.pem", ca_pem);
    let htpasswd =
        Command::new("htpasswd").args(["-Bbn", "alice", "correct-horse"]).output().unwrap();
    assert!(htpasswd.status.success());
    let htpasswd_path = t.write("htpasswd", htpasswd.stdout);
    let reg = Distribution::start(&t, "tls", Some((&cert_path, &key_path, &htpasswd_path)));
    let host = reg.host();
    let layout = build_signed_hello(&t);
    let target = format!("{host}/hello:1");
    let auth = |pw: &str| format!("{host}=alice:{pw}");

    t.cairn()
        .arg("push")
        .arg(&layout)
        .arg(&target)
        .arg("--registry-ca")
        .arg(&ca_path)
        .env("CAIRN_REGISTRY_AUTH", auth("correct-horse"))
        .ok();

    // Wrong password: exit 2, a clear message, and the password nowhere.
    let wrong = t
        .cairn()
        .args(["pull", &target, "--registry-ca"])
        .arg(&ca_path)
        .env("CAIRN_REGISTRY_AUTH", auth("battery-staple"))
        .fails_with(&[&format!("authentication to {host} failed"), "CAIRN_REGISTRY_AUTH"]);
    assert_eq!(wrong.code(), Some(2));
    assert!(
        !wrong.stderr().contains("battery-staple") && !wrong.stdout().contains("battery-staple")
    );

    // Without the CA the server is not trusted (and never downgraded to plain HTTP).
    let untrusted =
        t.cairn().args(["pull", &target]).env("CAIRN_REGISTRY_AUTH", auth("correct-horse")).run();
    assert_eq!(untrusted.code(), Some(2), "{}", untrusted.report());

    // Credentials from the Docker config.json.
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("alice:correct-horse")
    };
    t.write("docker/config.json", format!(r#"{{"auths":{{"{host}":{{"auth":"{encoded}"}}}}}}"#));
    let pulled = t
        .cairn()
        .args(["pull", &target, "--name", "example/pulled:1", "--registry-ca"])
        .arg(&ca_path)
        .env("DOCKER_CONFIG", t.join("docker"))
        .env_remove("CAIRN_REGISTRY_AUTH")
        .ok()
        .stdout();
    assert!(pulled.starts_with("docker.io/example/pulled:1\tsha256:"), "{pulled}");
}

#[test]
fn referrers_api_retries_and_stalls_against_a_spec_server() {
    let t = TestDir::new("registry-api");
    let Pushed { fake, layout, target, pinned } = push_hello_to_fake(&t, "hello");
    let digest = Digest::parse(pinned.trim().rsplit('@').next().unwrap()).unwrap();
    // The server indexes referrers itself: no tag-schema index was written.
    assert!(!fake.has_manifest(&format!("hello/sha256-{}", digest.hex())));
    let puts = fake.requests("PUT /v2/hello/manifests/");
    let blob_puts = fake.requests("PUT /v2/hello/blobs/uploads/");
    let uploads = fake.requests("POST /v2/hello/blobs/uploads/");
    t.cairn().arg("push").arg(&layout).arg(&target).ok();
    assert_eq!(fake.requests("PUT /v2/hello/manifests/"), puts, "a second push re-put manifests");
    assert_eq!(
        fake.requests("POST /v2/hello/blobs/uploads/"),
        uploads,
        "a second push re-uploaded"
    );
    let fetched = cairn::registry::fetch_referrers(
        &ImageRef::parse(&target).unwrap(),
        &digest,
        &t.join("referrers"),
        &cairn::registry::Options::default(),
    )
    .unwrap();
    attestations_equal(&t.join("out"), &fetched);

    // verify REF@sha256: finds the attestations through the referrers API.
    let passed = t
        .cairn()
        .arg("verify")
        .arg(pinned.trim())
        .arg("--key")
        .arg(t.join("release.pub"))
        .ok()
        .stdout();
    assert!(passed.contains("hello.oci"), "{passed}");

    // Chunked upload and a cross-repository mount.
    for (repo, flag, value) in
        [("chunked", "--chunk-size", "100"), ("mounted", "--mount-from", "hello")]
    {
        let target = format!("{}/{repo}:1", fake.host());
        t.cairn().arg("push").arg(&layout).arg(target).args([flag, value]).ok();
    }
    assert!(fake.requests("PATCH /v2/chunked/blobs/uploads/") > 2);
    // The image's config and layer are mounted; only the attestation blobs go up.
    assert_eq!(fake.requests("PUT /v2/mounted/blobs/uploads/"), blob_puts - 2);

    // Two failures are retried; a registry that keeps failing is reported.
    fake.state.lock().unwrap().fail = 2;
    t.cairn().args(["pull", &target, "--name", "example/retried:1"]).ok();
    fake.state.lock().unwrap().fail = 1000;
    let failed = t.cairn().args(["pull", &target, "--registry-attempts", "3"]).fails_with(&[
        "HTTP 500",
        "injected failure",
        "retries exhausted",
    ]);
    assert_eq!(failed.code(), Some(2));
    fake.state.lock().unwrap().fail = 0;

    // A stalled connection is given up on and retried; one that always stalls is reported.
    fake.state.lock().unwrap().stall = 2;
    t.cairn().args(["pull", &target, "--registry-timeout", "1"]).ok();
    fake.state.lock().unwrap().stall = 1000;
    let stalled = t
        .cairn()
        .args(["pull", &target, "--registry-timeout", "1", "--registry-attempts", "2"])
        .fails_with(&["stalled"]);
    assert_eq!(stalled.code(), Some(2));
}

#[test]
fn an_interrupted_pull_leaves_a_valid_store_and_resumes() {
    let t = TestDir::new("registry-interrupted");
    let Pushed { fake, layout, target, .. } = push_hello_to_fake(&t, "resume");
    let manifest: serde_json::Value = {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let digest = Digest::parse(index["manifests"][0]["digest"].as_str().unwrap()).unwrap();
        let blob = layout.join("blobs/sha256").join(digest.hex());
        serde_json::from_slice(&fs::read(blob).unwrap()).unwrap()
    };
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();

    // The layer cannot be had: the pull fails after the config has landed.
    fake.state.lock().unwrap().fail_path = Some(layer.clone());
    let failed = t
        .cairn()
        .args(["pull", &target, "--name", "example/resume:1", "--jobs", "1"])
        .args(["--registry-attempts", "1"])
        .fails_with(&["HTTP 500"]);
    assert_eq!(failed.code(), Some(2));
    // The store is valid, and the half-pulled image has no name.
    t.cairn().args(["store", "fsck"]).ok();
    let names = t.cairn().args(["store", "ls"]).ok().stdout();
    assert!(!names.contains("example/resume"), "{names}");

    // The next pull transfers only what is missing: the layer.
    fake.state.lock().unwrap().fail_path = None;
    let blob_gets = |fake: &FakeRegistry| fake.requests("GET /v2/resume/blobs/");
    let before = blob_gets(&fake);
    t.cairn().args(["pull", &target, "--name", "example/resume:1"]).ok();
    assert_eq!(blob_gets(&fake) - before, 1, "the resumed pull fetched more than the layer");
    let names = t.cairn().args(["store", "ls"]).ok().stdout();
    assert!(names.contains("example/resume:1"), "{names}");
    t.cairn().args(["store", "fsck"]).ok();
}
