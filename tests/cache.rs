//! The build cache: a warm build reuses the outputs of an identical earlier one, byte for
//! byte; any changed input misses; a corrupt entry is found, reported and rebuilt; `store
//! gc` and `store fsck` look after the entries; concurrent builds and gc stay consistent.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use crate::util::{Cairn, Outcome, TestDir, hash_tree, make_writable, repo};

const REUSED: &str = "reused the outputs of an identical earlier build";

/// A copy of the hello spec, lock and motd in `t/spec`; returns the spec's path.
fn hello_spec(t: &TestDir) -> PathBuf {
    t.import_hello();
    let dir = t.mkdir("spec");
    for f in ["hello.yml", "hello.yml.lock", "motd"] {
        fs::copy(repo().join("examples").join(f), dir.join(f)).unwrap();
    }
    dir.join("hello.yml")
}

/// `cairn build SPEC --locked ARGS -o OUT`, cache on, with `-f tar -f kernel+initrd -f oci`
/// unless `ARGS` name formats.
fn build(t: &TestDir, spec: &Path, out: &str, args: &[&str]) -> Cairn {
    let formats: &[&str] =
        if args.contains(&"-f") { &[] } else { &["-f", "tar", "-f", "kernel+initrd", "-f", "oci"] };
    t.cairn()
        .env_remove("CAIRN_NO_CACHE")
        .arg("build")
        .arg(spec)
        .arg("--locked")
        .args(formats)
        .args(args)
        .arg("-o")
        .arg(t.join(out))
}

fn reused(o: &Outcome) -> bool {
    o.stderr().contains(REUSED)
}

/// Builds twice more into `out`: the first must rebuild, the second reuse.
fn misses_then_hits(t: &TestDir, spec: &Path, out: &str, args: &[&str], what: &str) {
    let first = build(t, spec, out, args).ok();
    assert!(!reused(&first), "{what}: the cache was hit{}", first.report());
    let second = build(t, spec, out, args).ok();
    assert!(reused(&second), "{what}: the cache was missed twice{}", second.report());
}

fn cache_entries(t: &TestDir) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(t.store().join("cache"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The blob holding `file` (a path relative to the output directory) in the only entry.
fn cached_blob(t: &TestDir, file: &str) -> PathBuf {
    let entries = cache_entries(t);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry: serde_json::Value = serde_json::from_slice(&fs::read(&entries[0]).unwrap()).unwrap();
    let f = entry["files"].as_array().unwrap().iter().find(|f| f["path"] == file).unwrap();
    let hex = f["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap();
    t.store().join("blobs/sha256").join(hex)
}

#[test]
fn a_warm_build_reuses_byte_identical_outputs() {
    let t = TestDir::new("cache-warm");
    let spec = hello_spec(&t);
    let cold = build(&t, &spec, "cold", &["--no-cache"]).ok();
    assert!(!reused(&cold));
    assert!(cache_entries(&t).is_empty(), "--no-cache filed an entry");
    let first = build(&t, &spec, "out", &[]).ok();
    assert!(!reused(&first), "{}", first.report());
    assert_eq!(cache_entries(&t).len(), 1);
    // Into a fresh directory and into the same one: the same bytes as the cold build.
    for out in ["warm", "out"] {
        let warm = build(&t, &spec, out, &[]).ok();
        assert!(reused(&warm), "{}", warm.report());
        assert_eq!(warm.build_digests(), cold.build_digests());
        assert_eq!(hash_tree(&t.join(out)), hash_tree(&t.join("cold")), "{out}");
    }
    // CAIRN_NO_CACHE=1 is --no-cache.
    let off = build(&t, &spec, "off", &[]).env("CAIRN_NO_CACHE", "1").ok();
    assert!(!reused(&off));
    assert_eq!(hash_tree(&t.join("off")), hash_tree(&t.join("cold")));
    // -q says nothing about it.
    let quiet = build(&t, &spec, "quiet", &[]).arg("-q").ok();
    assert_eq!(quiet.stderr(), "");
    t.cairn().args(["store", "fsck"]).ok().stderr_has(&["1 build cache entries checked"]);
}

#[test]
fn large_outputs_already_in_place_are_rehashed_not_copied() {
    let t = TestDir::new("cache-in-place");
    let spec = hello_spec(&t);
    // A 3 MiB source file makes the tar output large enough to be checked in place.
    let big: Vec<u8> =
        (0..3u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    fs::write(spec.with_file_name("big.bin"), &big).unwrap();
    let mut text = fs::read_to_string(&spec).unwrap();
    text.push_str("  - path: big.bin\n    source: big.bin\n    mode: \"0644\"\n");
    fs::write(&spec, text).unwrap();
    t.cairn().arg("lock").arg(&spec).ok();
    build(&t, &spec, "cold", &["--no-cache"]).ok();
    build(&t, &spec, "out", &[]).ok();
    let tar = t.join("out/hello.tar");
    let inode = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&tar).unwrap());
    let before = inode();
    assert!(reused(&build(&t, &spec, "out", &[]).ok()));
    assert_eq!(inode(), before, "a verified output in place was replaced");
    assert_eq!(hash_tree(&t.join("out")), hash_tree(&t.join("cold")));

    // A changed byte (same size), or another mode: replaced from the cache.
    let mut bytes = fs::read(&tar).unwrap();
    bytes[1 << 20] ^= 1;
    fs::write(&tar, &bytes).unwrap();
    assert!(reused(&build(&t, &spec, "out", &[]).ok()));
    assert_eq!(hash_tree(&t.join("out")), hash_tree(&t.join("cold")));
    assert_ne!(inode(), before);
    let before = inode();
    fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(reused(&build(&t, &spec, "out", &[]).ok()));
    assert_ne!(inode(), before);
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&tar).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(hash_tree(&t.join("out")), hash_tree(&t.join("cold")));
}

#[test]
fn any_changed_input_misses() {
    let t = TestDir::new("cache-miss");
    let spec = hello_spec(&t);
    let lock = spec.with_extension("yml.lock");
    misses_then_hits(&t, &spec, "out", &[], "the first build");

    misses_then_hits(&t, &spec, "out", &["--name", "other"], "another output name");
    misses_then_hits(&t, &spec, "out", &["-f", "kernel+initrd:zstd"], "a format");
    misses_then_hits(&t, &spec, "out", &["-f", "kernel+initrd"], "another codec");
    misses_then_hits(&t, &spec, "out", &["-f", "oci", "-f", "kernel+initrd"], "more formats");
    misses_then_hits(&t, &spec, "out", &["-f", "kernel+initrd", "-f", "oci"], "their order");
    let dated = || build(&t, &spec, "out", &[]).env("SOURCE_DATE_EPOCH", "1700000000");
    assert!(!reused(&dated().ok()), "SOURCE_DATE_EPOCH did not change the key");
    assert!(reused(&dated().ok()));
    misses_then_hits(&t, &spec, "out", &["--builder-id", "https://ci.example/b"], "builder id");

    // A file source changed without relocking: never the old outputs, the build's error.
    let motd = spec.with_file_name("motd");
    fs::write(&motd, "changed\n").unwrap();
    build(&t, &spec, "out", &[]).fails_with(&["motd"]);
    t.cairn().arg("lock").arg(&spec).ok();
    misses_then_hits(&t, &spec, "out", &[], "a changed file source, relocked");
    let tar = fs::read(t.join("out/hello.tar")).unwrap();
    assert!(crate::util::tar_file(&tar, "etc/motd").unwrap() == b"changed\n");

    // A lock entry that changes only the provenance (where a component came from).
    let text = fs::read_to_string(&lock).unwrap();
    let edited = text.replacen(
        "\"platform\": \"linux/amd64\",",
        "\"platform\": \"linux/amd64\",\n      \"repository\": \"registry.example/hello\",",
        1,
    );
    assert_ne!(text, edited);
    fs::write(&lock, edited).unwrap();
    misses_then_hits(&t, &spec, "out", &[], "a lock entry");
    let provenance = fs::read_to_string(t.join("out/hello.provenance.json")).unwrap();
    assert!(provenance.contains("registry.example/hello"), "{provenance}");

    // The spec's bytes (a comment only).
    let mut s = fs::read_to_string(&spec).unwrap();
    s.push_str("# a comment\n");
    fs::write(&spec, s).unwrap();
    t.cairn().arg("lock").arg(&spec).ok();
    misses_then_hits(&t, &spec, "out", &[], "the spec's bytes");
}

#[test]
fn a_corrupt_cache_entry_is_detected_and_rebuilt() {
    let t = TestDir::new("cache-corrupt");
    let spec = hello_spec(&t);
    build(&t, &spec, "cold", &["--no-cache"]).ok();
    build(&t, &spec, "out", &[]).ok();

    // A flipped byte in the cached initrd.
    let blob = cached_blob(&t, "hello-initrd.img");
    make_writable(&blob);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    t.cairn().args(["store", "fsck"]).code(1).stdout_has(&["corrupt"]);
    let again = build(&t, &spec, "out", &[]).ok();
    again.stderr_has(&["warning", "unusable, rebuilding", "corrupt"]);
    assert!(!reused(&again));
    assert_eq!(hash_tree(&t.join("out")), hash_tree(&t.join("cold")));
    // The rebuild replaced the blob and the entry: the store is sound and the cache works.
    t.cairn().args(["store", "fsck"]).ok();
    assert!(reused(&build(&t, &spec, "out", &[]).ok()));

    // A truncated OCI layout file, then an unreadable entry, then a missing blob.
    let blob = cached_blob(&t, "hello.oci/index.json");
    make_writable(&blob);
    fs::write(&blob, b"{").unwrap();
    let again = build(&t, &spec, "out", &[]).ok();
    again.stderr_has(&["unusable, rebuilding"]);
    assert_eq!(hash_tree(&t.join("out")), hash_tree(&t.join("cold")));

    let entry = cache_entries(&t).remove(0);
    fs::write(&entry, b"{\"schema\": 1, \"key\": ").unwrap();
    t.cairn().args(["store", "fsck"]).code(1).stdout_has(&["cache entry", "unusable"]);
    build(&t, &spec, "out", &[]).ok().stderr_has(&["unusable, rebuilding"]);
    assert_eq!(hash_tree(&t.join("out")), hash_tree(&t.join("cold")));

    fs::remove_file(cached_blob(&t, "hello.tar")).unwrap();
    t.cairn().args(["store", "fsck"]).code(1).stdout_has(&["cache entry", "missing"]);
    build(&t, &spec, "out", &[]).ok().stderr_has(&["unusable, rebuilding"]);
    assert_eq!(hash_tree(&t.join("out")), hash_tree(&t.join("cold")));
    t.cairn().args(["store", "fsck"]).ok();
    // gc drops an entry whose blob is missing, and fsck is content again.
    fs::remove_file(cached_blob(&t, "hello.tar")).unwrap();
    t.cairn().args(["store", "gc"]).ok().stderr_has(&["1 build cache entries"]);
    assert!(cache_entries(&t).is_empty());
    t.cairn().args(["store", "fsck"]).ok();
}

#[test]
fn an_entry_naming_paths_outside_the_output_is_refused() {
    let t = TestDir::new("cache-hostile");
    let spec = hello_spec(&t);
    build(&t, &spec, "out", &[]).ok();
    let entry = cache_entries(&t).remove(0);
    let text = fs::read_to_string(&entry).unwrap();
    let evil = text.replacen("\"path\": \"hello.tar\"", "\"path\": \"../escaped\"", 1);
    assert_ne!(text, evil);
    fs::write(&entry, evil).unwrap();
    build(&t, &spec, "out", &[]).ok().stderr_has(&["unusable, rebuilding", "../escaped"]);
    assert!(!t.join("escaped").exists());
    assert!(list_names(&t.join("out")).iter().all(|n| n.starts_with("hello")));
}

fn list_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect()
}

#[test]
fn gc_keeps_recent_entries_and_drops_old_ones_or_all() {
    let t = TestDir::new("cache-gc");
    let spec = hello_spec(&t);
    let blobs = || fs::read_dir(t.store().join("blobs/sha256")).unwrap().count();
    let imported = blobs();
    build(&t, &spec, "out", &[]).ok();
    assert!(blobs() > imported);
    t.cairn().args(["store", "gc"]).ok();
    assert!(reused(&build(&t, &spec, "out", &[]).ok()), "gc dropped a fresh entry");
    t.cairn().args(["store", "fsck"]).ok().stderr_has(&["1 build cache entries checked"]);

    // Unused for longer than the cache keeps entries: dropped, with the blobs only it held.
    let entry = cache_entries(&t).remove(0);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(15 * 24 * 3600);
    fs::File::options().write(true).open(&entry).unwrap().set_modified(old).unwrap();
    t.cairn().args(["store", "gc", "--dry-run"]).ok();
    assert!(entry.exists(), "--dry-run dropped an entry");
    t.cairn().args(["store", "gc"]).ok();
    assert!(cache_entries(&t).is_empty());
    assert_eq!(blobs(), imported);
    t.cairn().args(["store", "fsck"]).ok();

    // A reuse counts as a use; --drop-cache drops even fresh entries.
    build(&t, &spec, "out", &[]).ok();
    t.cairn().args(["store", "gc", "--drop-cache"]).ok().stderr_has(&["1 build cache entries"]);
    assert!(cache_entries(&t).is_empty());
    assert_eq!(blobs(), imported);
    assert!(!reused(&build(&t, &spec, "out", &[]).ok()));
}

#[test]
fn signed_warm_builds_are_signed_afresh_and_identical() {
    let t = TestDir::new("cache-signed");
    let spec = hello_spec(&t);
    for alg in ["ed25519", "ecdsa-p256"] {
        t.cairn().umask("022").args(["keygen", "--out", alg, "--alg", alg]).ok();
        let key = t.join(format!("{alg}.key"));
        let signed = |out: &str, extra: &[&str]| {
            build(&t, &spec, out, extra)
                .arg("--sign-key")
                .arg(&key)
                .env_remove("CAIRN_KEY_PASSPHRASE")
        };
        let cold = format!("{alg}-cold");
        signed(&cold, &["--no-cache"]).ok();
        assert!(t.join(&cold).join("hello.intoto.jsonl").is_file());
        // One entry serves builds signed with any key, and unsigned ones.
        let warm = format!("{alg}-warm");
        let o = signed(&warm, &[]).ok();
        assert!(alg != "ecdsa-p256" || reused(&o), "{}", o.report());
        assert!(reused(&signed(&warm, &[]).ok()));
        assert_eq!(hash_tree(&t.join(&warm)), hash_tree(&t.join(&cold)), "{alg}");
        let unsigned = build(&t, &spec, &format!("{alg}-unsigned"), &[]).ok();
        assert!(reused(&unsigned));
        assert!(!t.join(format!("{alg}-unsigned/hello.intoto.jsonl")).exists());
        t.cairn()
            .args(["verify"])
            .arg(t.join(&warm))
            .arg("--key")
            .arg(t.join(format!("{alg}.pub")))
            .arg("--policy")
            .arg(repo().join("policies/default.yaml"))
            .ok();
    }
}

#[test]
fn concurrent_builds_and_gc_keep_the_cache_consistent() {
    let t = TestDir::new("cache-concurrent");
    let spec = hello_spec(&t);
    build(&t, &spec, "cold", &["--no-cache"]).ok();
    let expected = hash_tree(&t.join("cold"));
    for round in 0..2 {
        let mut handles: Vec<_> = (0..4)
            .map(|i| {
                let cmd = build(&t, &spec, &format!("out{round}-{i}"), &[]);
                thread::spawn(move || cmd.ok())
            })
            .collect();
        let gc = t.cairn().args(["store", "gc", "--drop-cache"]);
        handles.push(thread::spawn(move || gc.ok()));
        for h in handles {
            h.join().expect("a build thread panicked");
        }
        for i in 0..4 {
            assert_eq!(hash_tree(&t.join(format!("out{round}-{i}"))), expected, "{round}-{i}");
        }
        t.cairn().args(["store", "fsck"]).ok();
    }
    build(&t, &spec, "last", &[]).ok();
    assert!(reused(&build(&t, &spec, "last", &[]).ok()));
}
