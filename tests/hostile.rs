//! Hostile inputs: layers and archives crafted to escape the image root, exhaust resources
//! or confuse the parsers, plus bad specs, tampered stores and unusable output paths.
//!
//! Each hostile layer is imported as an OCI image layout and built. Every case asserts
//! either a clear error (exit 2, stderr naming the input and the reason) or a safe result,
//! and always that nothing was written outside the output directory (a canary directory
//! next to it stays empty, cairn's TMPDIR is left empty) and that a failed build left no
//! output files and no `.cairn-build-*` staging directory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{
    self, Layer, Outcome, RawTar, TestDir, build_hello, list_tree, repo, tar_entries, tar_file,
    write_oci_layout,
};

const IMAGE: &str = "hostile.example/image:1";

/// A test directory holding one imported hostile image and a spec using it.
///
/// Layout: `layout/` the OCI layout imported, `work/spec.yml` (+ lock), `work/out/` the
/// output directory, `work/canary/` an empty directory that must stay empty.
struct Case {
    t: TestDir,
}

impl Case {
    /// Imports `layers` as IMAGE and writes a spec that uses it as an `init` image.
    fn init(name: &str, layers: Vec<Layer>) -> Case {
        Case::with_spec(name, layers, &format!("init:\n  - {IMAGE}\n"))
    }

    /// Imports `layers` as IMAGE and writes a spec that runs it as a service.
    fn service(name: &str, layers: Vec<Layer>) -> Case {
        let spec =
            format!("services:\n  - name: svc\n    image: {IMAGE}\n    command: [\"/bin/true\"]\n");
        Case::with_spec(name, layers, &spec)
    }

    fn with_spec(name: &str, layers: Vec<Layer>, spec: &str) -> Case {
        let t = TestDir::new(name);
        write_oci_layout(&t.join("layout"), &layers);
        t.mkdir("work/canary");
        t.write("work/spec.yml", spec);
        let c = Case { t };
        c.cairn().arg("import").arg(c.t.join("layout")).args(["--name", IMAGE]).ok();
        c.cairn().arg("lock").arg(c.spec()).ok();
        c
    }

    fn cairn(&self) -> util::Cairn {
        self.t.cairn()
    }

    fn spec(&self) -> PathBuf {
        self.t.join("work/spec.yml")
    }

    fn out(&self) -> PathBuf {
        self.t.join("work/out")
    }

    /// `cairn build work/spec.yml -f tar -f oci -o work/out`, run from `work/`.
    fn build(&self) -> Outcome {
        self.build_with(&[])
    }

    fn build_with(&self, extra: &[&str]) -> Outcome {
        self.cairn()
            .current_dir(self.t.join("work"))
            .args(["build", "spec.yml", "-f", "tar", "-f", "oci", "-o", "out"])
            .args(extra)
            .run()
    }

    /// The build failed with exit 2 naming every one of `needles`, and left nothing behind.
    fn assert_refused(&self, r: &Outcome, needles: &[&str]) {
        assert_eq!(r.code(), Some(2), "expected exit status 2{}", r.report());
        r.stderr_has(needles);
        assert_no_output(&self.out(), r);
        self.assert_contained(r);
    }

    /// Nothing appeared outside the output directory.
    fn assert_contained(&self, r: &Outcome) {
        let canary = list_tree(&self.t.join("work/canary"));
        assert!(canary.is_empty(), "written outside the output: {canary:?}{}", r.report());
        let mut work = list_tree(&self.t.join("work"));
        work.retain(|p| !p.starts_with("out/"));
        work.retain(|p| !["canary/", "out/", "spec.yml", "spec.yml.lock"].contains(&p.as_str()));
        assert!(work.is_empty(), "unexpected files next to the output: {work:?}{}", r.report());
        self.t.assert_tmp_empty();
    }

    /// The build succeeded with only the expected outputs; returns the tar's bytes.
    fn assert_built(&self, r: &Outcome) -> Vec<u8> {
        assert_eq!(r.code(), Some(0), "expected success{}", r.report());
        self.assert_contained(r);
        let mut top: Vec<String> =
            list_tree(&self.out()).into_iter().filter(|p| p.matches('/').count() <= 1).collect();
        top.retain(|p| !p.starts_with("spec.oci/") || p == "spec.oci/");
        assert_eq!(
            top,
            ["spec.cdx.json", "spec.oci/", "spec.provenance.json", "spec.spdx.json", "spec.tar"],
            "{}",
            r.report()
        );
        fs::read(self.out().join("spec.tar")).unwrap()
    }
}

/// A failed build left no output file and no staging directory in `out`.
fn assert_no_output(out: &Path, r: &Outcome) {
    let left = list_tree(out);
    assert!(left.is_empty(), "a failed build left files in the output: {left:?}{}", r.report());
}

fn paths(tar: &[u8]) -> Vec<String> {
    tar_entries(tar).into_iter().map(|e| e.path.trim_end_matches('/').to_string()).collect()
}

/// `paths` of an image whose own entries are `own`: those plus LinuxKit's base entries,
/// which every image root gets, in the tar's (sorted) order.
fn with_base(own: &[&str]) -> Vec<String> {
    let base = ["dev", "dev/pts", "dev/shm", "etc", "etc/hosts", "etc/mtab", "etc/resolv.conf"];
    let mut all: Vec<String> =
        own.iter().chain(&base).chain(&["proc", "sys"]).map(|p| p.to_string()).collect();
    all.sort();
    all.dedup();
    all
}

#[test]
fn dotdot_names_are_refused() {
    for (i, name) in ["../evil", "a/../../evil", "./../../../../../../tmp/evil"].iter().enumerate()
    {
        let c = Case::init(
            &format!("dotdot{i}"),
            vec![Layer::tar(RawTar::new().file("ok", b"fine").file(name, b"pwned").finish())],
        );
        let r = c.build();
        c.assert_refused(&r, &[name, "climbs out of the image root", "layer sha256:", IMAGE]);
    }
}

#[test]
fn absolute_names_land_under_the_root() {
    // A host path that would prove an escape (the case's own canary directory does not
    // exist yet when its layer is written, so use another test directory's).
    let probe = TestDir::new("abs-probe");
    let host = probe.join("pwned");
    let host_name = host.to_str().unwrap().to_string();
    let c = Case::init(
        "abs",
        vec![Layer::tar(
            RawTar::new()
                .file("/etc/abs", b"abs")
                .file(&host_name, b"x")
                .file("//x/y", b"y")
                .finish(),
        )],
    );
    let r = c.build();
    let tar = c.assert_built(&r);
    assert!(!host.exists(), "an absolute name was written on the host");
    assert_eq!(tar_file(&tar, "etc/abs").as_deref(), Some(&b"abs"[..]));
    assert_eq!(tar_file(&tar, host_name.trim_start_matches('/')).as_deref(), Some(&b"x"[..]));
    assert_eq!(tar_file(&tar, "x/y").as_deref(), Some(&b"y"[..]));
    for p in paths(&tar) {
        assert!(!p.starts_with('/') && !p.split('/').any(|c| c == ".."), "{p}");
    }
}

#[test]
fn writes_through_escaping_symlinks_stay_in_the_container() {
    let probe = TestDir::new("symlink-probe");
    let host_dir = probe.mkdir("target");
    let host_name = host_dir.to_str().unwrap().to_string();
    let links = RawTar::new()
        .symlink("escape", "/etc")
        .symlink("up", "../../../../../../../..")
        .symlink("host", &host_name)
        .symlink("rel", "../../../../../../../../../../tmp")
        .finish();
    let writes = RawTar::new()
        .file("escape/passwd", b"through /etc")
        .file("up/etc/shadow", b"through ..")
        .file("host/pwned", b"through an absolute host path")
        .file("rel/pwned", b"through ..")
        .finish();
    let c = Case::service("symlink", vec![Layer::tar(links), Layer::gzip(&writes)]);
    let r = c.build();
    let tar = c.assert_built(&r);
    assert!(list_tree(&host_dir).is_empty(), "written through a symlink on the host");
    let root = "containers/services/svc/lower";
    assert_eq!(
        tar_file(&tar, &format!("{root}/etc/passwd")).as_deref(),
        Some(&b"through /etc"[..])
    );
    assert_eq!(tar_file(&tar, &format!("{root}/etc/shadow")).as_deref(), Some(&b"through .."[..]));
    assert_eq!(
        tar_file(&tar, &format!("{root}/{}/pwned", host_name.trim_start_matches('/'))).as_deref(),
        Some(&b"through an absolute host path"[..])
    );
    assert!(tar_file(&tar, &format!("{root}/tmp/pwned")).is_some());
    // Nothing of the container's layers appears outside its rootfs.
    for p in paths(&tar) {
        let generated = ["containers", "containers/services", "containers/services/svc"];
        let inside = p.starts_with("containers/services/svc/") || generated.contains(&p.as_str());
        assert!(inside, "{p} is outside the container bundle");
    }
    // The links themselves are kept as they are: they are resolved at run time, in the
    // container's root.
    let escape = tar_entries(&tar).into_iter().find(|e| e.path == format!("{root}/escape"));
    assert_eq!(escape.and_then(|e| e.link).as_deref(), Some("/etc"));
}

#[test]
fn hardlinks_must_point_to_earlier_files_inside() {
    let cases: [(&str, RawTar, &[&str]); 3] = [
        ("hl-out", RawTar::new().hardlink("h", "../x"), &["\"h\"", "climbs out"]),
        (
            "hl-later",
            RawTar::new().hardlink("h", "later").file("later", b"l"),
            &["hardlink \"h\" points to \"later\"", "not a regular file already in the image"],
        ),
        (
            "hl-host",
            RawTar::new().hardlink("h", "/etc/shadow"),
            &["hardlink \"h\"", "not a regular file already in the image"],
        ),
    ];
    for (name, tar, needles) in cases {
        let c = Case::init(name, vec![Layer::tar(tar.finish())]);
        let r = c.build();
        c.assert_refused(&r, needles);
    }
    // A hardlink to an earlier file of the image is fine, also through an absolute name.
    let c = Case::init(
        "hl-ok",
        vec![Layer::tar(
            RawTar::new()
                .file("etc/f", b"data")
                .hardlink("g", "etc/f")
                .hardlink("h", "/etc/f")
                .finish(),
        )],
    );
    let tar = c.assert_built(&c.build());
    assert_eq!(tar_file(&tar, "etc/f").as_deref(), Some(&b"data"[..]));
    for name in ["g", "h"] {
        let e = tar_entries(&tar).into_iter().find(|e| e.path == name).expect(name);
        let same = match e.kind {
            b'1' => e.link.as_deref() == Some("etc/f"),
            _ => tar_file(&tar, name).as_deref() == Some(&b"data"[..]),
        };
        assert!(same, "{e:?} is not etc/f");
    }
}

#[test]
fn whiteouts_naming_a_parent_are_refused() {
    let lower = RawTar::new().file("a/b/f", b"x").file("keep", b"k").finish();
    for (i, name) in ["a/b/.wh...", "a/.wh..", "a/.wh."].iter().enumerate() {
        let upper = RawTar::new().file(name, b"").finish();
        let c =
            Case::init(&format!("whiteout{i}"), vec![Layer::tar(lower.clone()), Layer::tar(upper)]);
        let r = c.build();
        c.assert_refused(&r, &["whiteout", name, "does not name a plain file"]);
    }
    // An ordinary whiteout still works.
    let upper = RawTar::new().file("a/b/.wh.f", b"").finish();
    let c = Case::init("whiteout-ok", vec![Layer::tar(lower), Layer::tar(upper)]);
    let tar = c.assert_built(&c.build());
    assert_eq!(paths(&tar), with_base(&["a", "a/b", "keep"]));
}

#[test]
fn device_nodes_are_left_out_with_a_warning() {
    let layer = RawTar::new()
        .entry(b"dev/tty0", b'3', b"", b"")
        .entry(b"dev/sda", b'4', b"", b"")
        .entry(b"run/fifo", b'6', b"", b"")
        .file("etc/ok", b"ok")
        .finish();
    let c = Case::init("devices", vec![Layer::tar(layer)]);
    let r = c.build();
    let tar = c.assert_built(&r);
    r.stderr_has(&["warning", "left out a device node or FIFO", IMAGE]);
    for p in ["dev/tty0", "dev/sda", "run/fifo"] {
        r.stderr_has(&[p]);
        assert!(!paths(&tar).contains(&p.to_string()), "{p} is in the image");
    }
    assert_eq!(tar_file(&tar, "etc/ok").as_deref(), Some(&b"ok"[..]));
    assert!(tar_entries(&tar).iter().all(|e| matches!(e.kind, b'0' | b'5' | b'2' | b'1')));
}

#[test]
fn truncated_layers_are_refused() {
    // The header claims 4096 bytes; 10 follow and the stream ends.
    let short =
        RawTar::new().file("ok", b"fine").raw(b"big", b'0', b"", 0o644, 4096, b"0123456789");
    let c = Case::init("truncated", vec![Layer::tar(short.unfinished())]);
    let r = c.build();
    c.assert_refused(&r, &["truncated", "layer sha256:", IMAGE]);

    // A gzip stream cut in the middle.
    let full = RawTar::new().file("f", &[7u8; 100_000]).finish();
    let mut gz = util::gzip(&full);
    gz.truncate(gz.len() / 2);
    let c = Case::init("truncated-gz", vec![Layer::gzipped(gz, util::sha256_hex(&full))]);
    let r = c.build();
    c.assert_refused(&r, &["layer sha256:", IMAGE]);
}

#[test]
fn duplicate_entries_last_one_wins() {
    let layer = RawTar::new()
        .file("etc/dup", b"first")
        .file("etc/dup", b"second")
        .symlink("x", "/etc/dup")
        .file("x", b"a file replaces the link")
        .dir("d")
        .file("d/inner", b"i")
        .dir("d")
        .finish();
    let c = Case::init("dup", vec![Layer::tar(layer)]);
    let tar = c.assert_built(&c.build());
    assert_eq!(paths(&tar), with_base(&["d", "d/inner", "etc", "etc/dup", "x"]));
    assert_eq!(tar_file(&tar, "etc/dup").as_deref(), Some(&b"second"[..]));
    assert_eq!(tar_file(&tar, "x").as_deref(), Some(&b"a file replaces the link"[..]));
    // And the result is the same every time.
    fs::remove_dir_all(c.out()).unwrap();
    let again = c.assert_built(&c.build());
    assert_eq!(tar, again);
}

#[test]
fn non_utf8_names_are_refused() {
    let c = Case::init(
        "nonutf8",
        vec![Layer::tar(RawTar::new().entry(b"etc/bad\xffname", b'0', b"", b"x").finish())],
    );
    let r = c.build();
    c.assert_refused(&r, &["etc/bad", "not valid UTF-8", IMAGE]);

    let c = Case::init(
        "nonutf8-link",
        vec![Layer::tar(RawTar::new().entry(b"link", b'2', b"target\xfe", b"").finish())],
    );
    let r = c.build();
    c.assert_refused(&r, &["link", "not valid UTF-8"]);
}

#[test]
fn gzip_bomb_is_stopped_by_the_unpacked_size_limit() {
    let layer = gzipped_zeros(64 << 20);
    assert!(layer.blob.len() < 1 << 20, "the bomb is {} bytes", layer.blob.len());
    let c = Case::init("bomb", vec![layer]);
    let r = c.build_with(&["--max-unpacked-size", "1048576"]);
    c.assert_refused(&r, &["1048576", "--max-unpacked-size", "layer sha256:", IMAGE]);
}

/// A layer holding one file of `size` zeros, gzip-compressed to about a thousandth.
fn gzipped_zeros(size: usize) -> Layer {
    let mut tar = RawTar::new().raw(b"zeros", b'0', b"", 0o644, size as u64, &[]).unfinished();
    tar.resize(tar.len() + size + 1024, 0);
    Layer::gzip(&tar)
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let t = TestDir::new("yaml");
    t.write("spec.yml", "init:\n  - a.example/b:1\n onboot: [\n");
    for verb in ["lock", "build"] {
        let r = t.cairn().args([verb, "spec.yml"]).fails_with(&["spec.yml:3:"]);
        let err = r.stderr();
        let pos = err.find("spec.yml:3:").unwrap() + "spec.yml:3:".len();
        assert!(err[pos..].starts_with(|c: char| c.is_ascii_digit()), "no column{}", r.report());
    }
    // Not YAML at all, and not UTF-8.
    t.write("bin.yml", b"\xff\xfe\x00kernel");
    t.cairn().args(["lock", "bin.yml"]).fails_with(&["bin.yml", "UTF-8"]);
    t.cairn().args(["lock", "missing.yml"]).fails_with(&["missing.yml"]);
}

#[test]
fn unknown_fields_get_a_hint() {
    let t = TestDir::new("unknown");
    t.lock_fails(
        "init:\n  - a.example/b:1\nonbot:\n  - name: x\n",
        &["spec.yml:3:1", "unknown field `onbot`", "did you mean `onboot`"],
    );
    t.write("svc.yml", "services:\n  - name: s\n    image: a.example/b:1\n    comand: [\"/x\"]\n");
    t.cairn().args(["build", "svc.yml"]).fails_with(&["svc.yml:4:", "comand", "command"]);
}

#[test]
fn images_missing_from_the_store_are_named() {
    let t = TestDir::new("missing");
    t.lock_fails(
        "init:\n  - a.example/not-imported:1\n",
        &["a.example/not-imported:1", "not in the store", "cairn import"],
    );
    // The hello lock pins images this empty store does not have.
    let out = t.join("out");
    let r = t
        .cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "tar", "-o"])
        .arg(&out)
        .fails_with(&["cairn.example/hello-", "not in the store", "cairn import"]);
    assert_no_output(&out, &r);
}

/// The path of a layer blob in `t`'s store, made writable so a test can tamper with it.
fn layer_blob(t: &TestDir, layer_hex: &str) -> PathBuf {
    let p = t.store().join("blobs/sha256").join(layer_hex);
    assert!(p.is_file(), "{} is not in the store", p.display());
    util::make_writable(&p);
    p
}

/// Changes the hello-app layer blob in `t`'s store with `change`, then builds the tar and
/// OCI formats into `out/`, which must fail (exit 2): (layer hex, output dir, outcome).
fn build_after_changing_the_layer(
    t: &TestDir,
    change: impl FnOnce(&mut Vec<u8>),
) -> (String, PathBuf, Outcome) {
    let hex = hello_app_layer();
    let blob = layer_blob(t, &hex);
    let mut bytes = fs::read(&blob).unwrap();
    change(&mut bytes);
    fs::write(&blob, &bytes).unwrap();
    let out = t.join("out");
    let r = build_hello_tar(t, &out);
    assert_eq!(r.code(), Some(2), "{}", r.report());
    (hex, out, r)
}

/// The layer digest of hello-app, from the committed lock.
fn hello_app_layer() -> String {
    let lock: serde_json::Value =
        serde_json::from_slice(&fs::read(repo().join("examples/hello.yml.lock")).unwrap()).unwrap();
    let d = lock["images"]["cairn.example/hello-app:1"]["layers"][0].as_str().unwrap();
    d.strip_prefix("sha256:").unwrap().to_string()
}

fn build_hello_tar(t: &TestDir, out: &Path) -> Outcome {
    t.cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "tar", "-f", "oci", "-o"])
        .arg(out)
        .run()
}

#[test]
fn a_layer_changed_in_the_store_fails_the_build() {
    let t = TestDir::new("tampered");
    build_hello(&t, &t.join("first"));
    // Inside bin/hello's contents (the second 512-byte block, after its header): the layer
    // still parses, only the digest tells.
    let (hex, out, r) = build_after_changing_the_layer(&t, |b| b[512 + 512 + 5] ^= 0x20);
    r.stderr_has(&[&format!("sha256:{hex}"), "corrupt", "hashes to"]);
    assert_no_output(&out, &r);
    t.assert_tmp_empty();
}

#[test]
fn a_layer_header_changed_in_the_store_is_reported_as_corrupt() {
    let t = TestDir::new("tampered-header");
    build_hello(&t, &t.join("first"));
    // The mode field of bin/hello's header.
    let (hex, out, r) = build_after_changing_the_layer(&t, |b| b[512 + 100] ^= 0x01);
    assert_no_output(&out, &r);
    r.stderr_has(&[&format!("sha256:{hex}"), "corrupt"]);
}

#[test]
fn a_truncated_blob_in_the_store_fails_the_build() {
    let t = TestDir::new("truncated-blob");
    let out = t.join("out");
    t.import_hello();
    let hex = hello_app_layer();
    let blob = layer_blob(&t, &hex);
    let bytes = fs::read(&blob).unwrap();
    fs::write(&blob, &bytes[..1000]).unwrap();
    let r = build_hello_tar(&t, &out);
    assert_eq!(r.code(), Some(2), "{}", r.report());
    r.stderr_has(&[&format!("sha256:{hex}"), "1000"]);
    assert_no_output(&out, &r);
    // Same length, wrong bytes at the end: the digest check catches it.
    let mut same_len = bytes.clone();
    same_len.truncate(bytes.len() - 1);
    same_len.push(1);
    fs::write(&blob, &same_len).unwrap();
    let r = build_hello_tar(&t, &out);
    assert_eq!(r.code(), Some(2), "{}", r.report());
    r.stderr_has(&[&format!("sha256:{hex}"), "corrupt"]);
    assert_no_output(&out, &r);
}

#[test]
fn an_output_path_under_a_file_is_an_error() {
    let t = TestDir::new("unwritable");
    t.import_hello();
    let file = t.write("somefile", "not a directory");
    let r = build_hello_tar(&t, &file.join("out"));
    assert_eq!(r.code(), Some(2), "{}", r.report());
    r.stderr_has(&["output directory", "somefile/out"]);
    assert_eq!(fs::read(&file).unwrap(), b"not a directory");
    assert_eq!(list_tree(t.path()).iter().filter(|p| p.contains("cairn-build")).count(), 0);
}

#[test]
fn a_format_that_fails_after_others_leaves_no_output() {
    // tar is written first, then kernel+initrd fails: the spec has no kernel.
    let c = Case::init("no-kernel", vec![Layer::tar(RawTar::new().file("f", b"x").finish())]);
    fs::create_dir(c.out()).unwrap();
    let r = c.build_with(&["-f", "kernel+initrd"]);
    c.assert_refused(&r, &["kernel+initrd needs a kernel"]);
    // Outputs of an earlier build stay as they were.
    fs::write(c.out().join("spec.tar"), "an earlier build").unwrap();
    let r = c.build_with(&["-f", "kernel+initrd"]);
    assert_eq!(r.code(), Some(2), "{}", r.report());
    assert_eq!(list_tree(&c.out()), ["spec.tar"], "{}", r.report());
    assert_eq!(fs::read(c.out().join("spec.tar")).unwrap(), b"an earlier build");
}

/// A copy of the hello spec, lock and motd in `t`.
fn hello_copy(t: &TestDir) -> PathBuf {
    let dir = t.mkdir("spec");
    for f in ["hello.yml", "hello.yml.lock", "motd"] {
        fs::copy(repo().join("examples").join(f), dir.join(f)).unwrap();
    }
    dir.join("hello.yml")
}

#[test]
fn a_stale_lock_with_locked_exits_1() {
    let t = TestDir::new("stale");
    t.import_hello();
    let spec = hello_copy(&t);
    let text = fs::read_to_string(&spec).unwrap().replace("\"hello\\n\"", "\"changed\\n\"");
    fs::write(&spec, text).unwrap();
    let out = t.join("out");
    let r =
        t.cairn().arg("build").arg(&spec).args(["--locked", "-f", "tar", "-o"]).arg(&out).code(1);
    r.stderr_has(&["hello.yml.lock", "cairn lock"]);
    assert_no_output(&out, &r);
    t.cairn().arg("lock").arg(&spec).arg("--check").code(1).stderr_has(&["stale", "cairn lock"]);
    // A changed source file is caught too.
    let t2 = TestDir::new("stale-motd");
    let spec2 = hello_copy(&t2);
    fs::write(spec2.with_file_name("motd"), "changed\n").unwrap();
    let r =
        t.cairn().arg("build").arg(&spec2).args(["--locked", "-f", "tar", "-o"]).arg(&out).run();
    assert_ne!(r.code(), Some(0), "built with a changed motd{}", r.report());
    r.stderr_has(&["motd", "cairn lock"]);
    assert_no_output(&out, &r);
    // Relocking fixes it.
    t.cairn().arg("lock").arg(&spec).ok();
    t.cairn().arg("build").arg(&spec).args(["--locked", "-f", "tar", "-o"]).arg(&out).ok();
}

#[test]
fn tag_only_images_need_a_lock_and_digests_do_not() {
    let t = TestDir::new("pins");
    t.import_hello();
    t.write("tag.yml", "init:\n  - cairn.example/hello-init:1\n");
    let out = t.join("out");
    let r = t.cairn().args(["build", "tag.yml", "-f", "tar", "-o", "out"]).fails_with(&[
        "cairn.example/hello-init:1",
        "neither in the lock nor pinned",
        "cairn lock",
    ]);
    assert_no_output(&out, &r);

    let ls = t.cairn().args(["store", "ls"]).ok().stdout();
    let digest = ls
        .lines()
        .find_map(|l| l.strip_prefix("cairn.example/hello-init:1\t"))
        .expect("hello-init in store ls")
        .to_string();
    t.write("pinned.yml", format!("init:\n  - cairn.example/hello-init:1@{digest}\n"));
    let r = t.cairn().args(["build", "pinned.yml", "-f", "tar", "-o", "out"]).ok();
    assert!(!t.join("pinned.yml.lock").exists(), "build wrote a lock");
    assert!(out.join("pinned.tar").is_file(), "{}", r.report());
    let tar = fs::read(out.join("pinned.tar")).unwrap();
    assert!(tar_file(&tar, "sbin/init").is_some());

    // A digest the store does not have is named.
    let wrong = format!("sha256:{}", "0".repeat(64));
    t.write("wrong.yml", format!("init:\n  - cairn.example/hello-init:1@{wrong}\n"));
    let r = t
        .cairn()
        .args(["build", "wrong.yml", "-f", "tar", "-o", "out2"])
        .fails_with(&[&wrong, "not in the store"]);
    assert_no_output(&t.join("out2"), &r);
}

#[test]
fn a_corrupt_oci_archive_leaves_nothing_in_the_store() {
    let t = TestDir::new("corrupt-archive");
    t.import_hello();
    let ls_before = t.cairn().args(["store", "ls"]).ok().stdout();
    let store_before = list_tree(&t.store());

    let layer = RawTar::new().file("etc/new", b"new content that is not yet in the store").finish();
    let layout = t.join("layout");
    write_oci_layout(&layout, &[Layer::gzip(&layer)]);
    let archive = t.join("image.oci.tar");
    util::write_oci_archive(&layout, &archive);
    let good = fs::read(&archive).unwrap();

    // A blob whose content does not match its name.
    let bad_layout = t.join("bad-layout");
    write_oci_layout(&bad_layout, &[Layer::tar(layer.clone())]);
    let layer_hex = util::sha256_hex(&layer);
    let blob = bad_layout.join("blobs/sha256").join(&layer_hex);
    let mut b = fs::read(&blob).unwrap();
    b[600] ^= 1;
    fs::write(&blob, b).unwrap();
    util::write_oci_archive(&bad_layout, &t.join("mismatch.tar"));

    // Cut in the middle of a member (a cut between members leaves a valid, shorter tar).
    t.write("truncated.tar", &good[..good.len() / 2 + 100]);

    // index.json names a manifest that is not there.
    let missing_layout = t.join("missing-layout");
    let manifest = write_oci_layout(&missing_layout, &[Layer::tar(layer.clone())]);
    fs::remove_file(missing_layout.join("blobs/sha256").join(&manifest)).unwrap();
    util::write_oci_archive(&missing_layout, &t.join("missing.tar"));

    for (file, needles) in [
        ("mismatch.tar", &["mismatch.tar", &layer_hex[..12], "corrupt"][..]),
        ("truncated.tar", &["truncated.tar", "truncated"]),
        ("missing.tar", &["missing.tar", &manifest[..12], "not in the input"]),
    ] {
        t.cairn()
            .arg("import")
            .arg(t.join(file))
            .args(["--name", "x.example/bad:1"])
            .fails_with(needles);
        assert_eq!(list_tree(&t.store()), store_before, "{file} left something in the store");
    }
    // The same, unpacked as a layout directory with a corrupt blob.
    t.cairn()
        .arg("import")
        .arg(&bad_layout)
        .args(["--name", "x.example/bad:1"])
        .fails_with(&[&layer_hex[..12]]);
    assert_eq!(list_tree(&t.store()), store_before, "the bad layout left something in the store");

    t.cairn().args(["store", "fsck"]).ok();
    assert_eq!(t.cairn().args(["store", "ls"]).ok().stdout(), ls_before);
    // The intact archive imports.
    t.cairn().arg("import").arg(&archive).args(["--name", "x.example/good:1"]).ok();
    t.cairn().args(["store", "fsck"]).ok();
}

#[test]
fn hostile_rootfs_tars_are_checked_at_import_or_build() {
    let t = TestDir::new("rootfs-tar");
    t.import_hello();
    let store_before = list_tree(&t.store());
    // A truncated rootfs tar is refused at import and leaves nothing behind.
    let short = RawTar::new().raw(b"big", b'0', b"", 0o644, 4096, b"0123456789").unfinished();
    t.write("short.tar", &short);
    t.cairn()
        .arg("import")
        .arg(t.join("short.tar"))
        .args(["--name", "x.example/short:1"])
        .fails_with(&["short.tar", "truncated"]);
    assert_eq!(list_tree(&t.store()), store_before);
    // Not a tar at all.
    t.write("junk.tar", [0x42u8; 3000]);
    t.cairn()
        .arg("import")
        .arg(t.join("junk.tar"))
        .args(["--name", "x.example/junk:1"])
        .fails_with(&["junk.tar"]);
    assert_eq!(list_tree(&t.store()), store_before);

    // A rootfs tar with a `..` name may be stored, but never builds.
    let evil = RawTar::new().file("ok", b"x").file("../../evil", b"pwned").finish();
    t.write("evil.tar", &evil);
    let imported =
        t.cairn().arg("import").arg(t.join("evil.tar")).args(["--name", "x.example/evil:1"]).run();
    if imported.code() == Some(0) {
        t.write("evil.yml", "init:\n  - x.example/evil:1\n");
        t.cairn().args(["lock", "evil.yml"]).ok();
        let r = t
            .cairn()
            .args(["build", "evil.yml", "-f", "tar", "-o", "out"])
            .fails_with(&["../../evil", "climbs out"]);
        assert_no_output(&t.join("out"), &r);
    } else {
        imported.expect_code(2).stderr_has(&["evil.tar", "../../evil"]);
    }
    assert!(!t.path().parent().unwrap().join("evil").exists());
}

#[test]
fn an_oci_archive_cut_between_members_is_refused() {
    let t = TestDir::new("cut-archive");
    let layout = t.join("layout");
    write_oci_layout(&layout, &[Layer::tar(RawTar::new().file("f", b"x").finish())]);
    let archive = t.join("image.oci.tar");
    util::write_oci_archive(&layout, &archive);
    let good = fs::read(&archive).unwrap();
    // Members are the blobs, index.json, oci-layout, then 1024 zero bytes: keep the blobs
    // only. The result has no end-of-archive marker, so it is not a whole tar.
    let index_header = (0..good.len())
        .step_by(512)
        .find(|&i| good[i..].starts_with(b"index.json\0"))
        .expect("index.json member");
    t.write("cut.tar", &good[..index_header]);
    t.cairn()
        .arg("import")
        .arg(t.join("cut.tar"))
        .args(["--name", "x.example/cut:1"])
        .fails_with(&["cut.tar", "truncated"]);
    assert!(list_tree(&t.store().join("blobs")).iter().all(|p| p.ends_with('/')));
}

#[test]
fn extended_header_names_are_checked_like_plain_ones() {
    // Longer than the 100 bytes a plain header holds, and climbing above the root.
    let deep = format!("{}evil", "a/../../".repeat(15));
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "pax-dotdot",
            RawTar::new().pax("path", b"../pax-evil").file("harmless", b"x").finish(),
            "../pax-evil",
        ),
        (
            "gnu-dotdot",
            RawTar::new().gnu_long_name(deep.as_bytes()).file("harmless", b"x").finish(),
            "evil",
        ),
        (
            "pax-link",
            RawTar::new().pax("linkpath", b"../../x").hardlink("h", "harmless").finish(),
            "climbs out",
        ),
    ];
    for (name, tar, needle) in cases {
        let c = Case::init(name, vec![Layer::tar(tar)]);
        let r = c.build();
        c.assert_refused(&r, &[needle]);
    }
    // A long name that stays inside is fine.
    let long = format!("{}/file", "dir/".repeat(40).trim_end_matches('/'));
    let c = Case::init(
        "gnu-ok",
        vec![Layer::tar(RawTar::new().gnu_long_name(long.as_bytes()).file("short", b"l").finish())],
    );
    let tar = c.assert_built(&c.build());
    assert_eq!(tar_file(&tar, &long).as_deref(), Some(&b"l"[..]));
}

#[test]
fn symlink_loops_and_odd_link_targets_are_refused() {
    let cases: [(&str, RawTar, &[&str]); 3] = [
        (
            "loop",
            RawTar::new().symlink("a", "b").symlink("b", "a").file("a/x", b"x"),
            &["\"a/x\"", "too many levels of symbolic links"],
        ),
        (
            "hl-dir",
            RawTar::new().dir("d").hardlink("h", "d"),
            &["hardlink \"h\"", "not a regular file"],
        ),
        (
            "hl-symlink",
            RawTar::new().symlink("s", "/etc/passwd").hardlink("h", "s"),
            &["hardlink \"h\"", "not a regular file"],
        ),
    ];
    for (name, tar, needles) in cases {
        let c = Case::init(name, vec![Layer::tar(tar.finish())]);
        let r = c.build();
        c.assert_refused(&r, needles);
    }
}

#[test]
fn spec_files_are_placed_inside_the_image_even_through_its_symlinks() {
    let probe = TestDir::new("files-probe");
    let host = probe.mkdir("host-etc");
    let layer = RawTar::new().symlink("etc", host.to_str().unwrap()).finish();
    let spec =
        format!("init:\n  - {IMAGE}\nfiles:\n  - path: etc/hostname\n    contents: \"x\\n\"\n");
    let c = Case::with_spec("files-symlink", vec![Layer::tar(layer)], &spec);
    let tar = c.assert_built(&c.build());
    assert!(list_tree(&host).is_empty(), "a files entry was written on the host");
    let inside = format!("{}/hostname", host.to_str().unwrap().trim_start_matches('/'));
    assert_eq!(tar_file(&tar, &inside).as_deref(), Some(&b"x\n"[..]));

    // Paths that climb out and container names that are paths are spec errors.
    let t = TestDir::new("spec-paths");
    t.write("a.yml", "files:\n  - path: etc/../../x\n    contents: y\n");
    t.cairn().args(["lock", "a.yml"]).fails_with(&["a.yml:2:", "climbs out"]);
    t.write("b.yml", "services:\n  - name: ../../evil\n    image: a.example/b:1\n");
    t.cairn().args(["lock", "b.yml"]).fails_with(&["b.yml:2:", "../../evil"]);
}

#[test]
fn owner_ids_beyond_32_bits_are_refused() {
    // uid in GNU base-256 form: 2^40.
    let mut tar = RawTar::new().file("f", b"x").finish();
    tar[108..116].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 0]);
    tar[148..156].copy_from_slice(b"        ");
    let sum: u32 = tar[..512].iter().map(|&b| u32::from(b)).sum();
    tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let c = Case::init("uid", vec![Layer::tar(tar)]);
    let r = c.build();
    c.assert_refused(&r, &["\"f\"", "larger than 32 bits"]);
}

#[test]
fn whiteouts_do_not_reach_into_other_images() {
    let wiper = RawTar::new()
        .file(".wh..wh..opq", b"")
        .file("boot/.wh.kernel", b"")
        .file("sbin/.wh.init", b"")
        .file("w", b"w")
        .finish();
    let spec = format!(
        "kernel:\n  image: cairn.example/hello-kernel:1\n  cmdline: \"x\"\n\
         init:\n  - cairn.example/hello-init:1\n  - {IMAGE}\n"
    );
    let t = TestDir::new("cross-whiteout");
    t.import_hello();
    write_oci_layout(&t.join("layout"), &[Layer::tar(wiper)]);
    t.cairn().arg("import").arg(t.join("layout")).args(["--name", IMAGE]).ok();
    t.write("spec.yml", spec);
    t.cairn().args(["lock", "spec.yml"]).ok();
    let r =
        t.cairn().args(["build", "spec.yml", "-f", "tar", "-f", "kernel+initrd", "-o", "out"]).ok();
    let tar = fs::read(t.join("out/spec.tar")).unwrap();
    let p = paths(&tar);
    for want in ["boot/kernel", "sbin/init", "etc/passwd", "w"] {
        assert!(p.contains(&want.to_string()), "{want} is gone: {p:?}{}", r.report());
    }
}

#[test]
fn yaml_alias_bombs_are_refused_with_file_and_line() {
    // The shape from the report: one 100 KiB anchored string aliased 10,000 times, a
    // 142 KB spec that expands to about 1 GB.
    let t = TestDir::new("aliases");
    let mut spec = format!("init: [&a \"{}\"", "A".repeat(100 << 10));
    spec.push_str(&", *a".repeat(10_000));
    spec.push_str("]\n");
    t.write("bomb.yml", spec.as_bytes());
    for verb in ["lock", "build"] {
        t.cairn().args([verb, "bomb.yml"]).fails_with(&["bomb.yml:1:", "aliases expand"]);
    }
    // Many aliases of a tiny value are refused by their count.
    let mut spec = String::from("init: [&a \"x\"");
    spec.push_str(&", *a".repeat(5_000));
    spec.push_str("]\n");
    t.write("many.yml", spec.as_bytes());
    t.cairn().args(["lock", "many.yml"]).fails_with(&["many.yml:1:", "4096 YAML aliases"]);
    // A few aliases are fine: the error is the missing image, not the aliases.
    t.write("ok.yml", "init: [&a a.example/b:1, *a]\n");
    let r = t.cairn().args(["lock", "ok.yml"]).code(2);
    assert!(!r.stderr().contains("YAML aliases"), "{}", r.report());
}

#[test]
fn gzip_bomb_is_stopped_by_the_expansion_ratio() {
    // 80 MiB of zeros gzip to about 80 KiB (1000:1); under the default size limit, a
    // ratio of 10 stops it once past the 64 MiB every layer may hold.
    let c = Case::init("ratio", vec![gzipped_zeros(80 << 20)]);
    let r = c.build_with(&["--max-expansion-ratio", "10"]);
    c.assert_refused(&r, &["--max-expansion-ratio", "10 times", "layer sha256:", IMAGE]);
}

/// A spec may be someone else's: its `files[].source` paths may only read under its own
/// directory (after `..` and symlinks), unless `--allow-source-outside DIR` says otherwise,
/// on `lock` and on `build` alike.
#[test]
fn spec_sources_outside_the_spec_directory_are_refused() {
    let t = TestDir::new("source-outside");
    t.import_hello();
    t.write("secret", "host secret\n");
    t.write("spec/inside", "fine\n");
    std::os::unix::fs::symlink(t.join("secret"), t.join("spec/link")).unwrap();
    let hello = fs::read_to_string(repo().join("examples/hello.yml")).unwrap();
    let hello = hello.split("\nfiles:").next().unwrap().to_string();
    let secret = t.join("secret");
    for (name, source) in
        [("dotdot", "../secret"), ("absolute", secret.to_str().unwrap()), ("symlink", "link")]
    {
        let spec = format!("{hello}\nfiles:\n  - path: etc/x\n    source: {source:?}\n");
        let spec_path = t.write(format!("spec/{name}.yml"), &spec);
        let lock = || t.cairn().arg("lock").arg(&spec_path);
        let r = lock().fails_with(&[
            &format!("{name}.yml"),
            source,
            "outside the spec's directory",
            "--allow-source-outside",
        ]);
        assert!(!r.stderr().contains("host secret"), "{name}");
        assert!(!t.join(format!("spec/{name}.yml.lock")).exists(), "{name}: lock written");
        // Opted in: the lock pins it; a build still needs the same opt-in to read it.
        lock().arg("--allow-source-outside").arg(t.path()).ok();
        let out = t.join(format!("out-{name}"));
        let build = || {
            t.cairn().arg("build").arg(&spec_path).args(["--locked", "-f", "tar", "-o"]).arg(&out)
        };
        build().fails_with(&[&format!("{name}.yml"), source, "outside the spec's directory"]);
        assert!(list_tree(&out).is_empty(), "{name}: output despite the refusal");
        build().arg("--allow-source-outside").arg(t.path()).ok();
    }
    // Inside the spec's directory needs no flag.
    let spec = format!("{hello}\nfiles:\n  - path: etc/x\n    source: inside\n");
    let spec_path = t.write("spec/ok.yml", &spec);
    t.cairn().arg("lock").arg(&spec_path).ok();
}
