//! The command line end to end on `examples/hello.yml`: imports, `lock --check`, every output
//! format, what outside tools (tar, cpio, skopeo, umoci) make of the outputs, help texts,
//! completions and the `store` subcommands.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{self, CPIO, SKOPEO, TestDir, UMOCI, ZSTD, build_hello, repo, sha256_file};

#[test]
fn hello_example_end_to_end() {
    let t = TestDir::new("hello");
    for (dir, name) in util::HELLO_IMAGES {
        let out = t
            .cairn()
            .arg("import")
            .arg(repo().join("testdata/images").join(dir))
            .args(["--name", name])
            .ok();
        out.stdout_has(&[&format!("{name}\tsha256:")]);
    }
    // The committed lock matches what this fresh store resolves.
    t.cairn().arg("lock").arg(repo().join("examples/hello.yml")).arg("--check").ok();

    let out = t.join("out");
    let build = util::hello_build(&t, &out).ok();
    assert_eq!(
        util::list_tree(&out)
            .into_iter()
            .filter(|p| p == "hello.oci/" || !p.starts_with("hello.oci/"))
            .collect::<Vec<_>>(),
        [
            "hello-cmdline",
            "hello-initrd.img",
            "hello-kernel",
            "hello.cdx.json",
            "hello.oci/",
            "hello.provenance.json",
            "hello.spdx.json",
            "hello.tar"
        ],
        "LinuxKit's output names and the unsigned attestations, and nothing else (no staging \
         directory left)"
    );
    let digests = build.build_digests();
    let names: Vec<&str> = digests.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "hello.tar",
            "hello-kernel",
            "hello-initrd.img",
            "hello-cmdline",
            "hello.oci",
            "hello.spdx.json",
            "hello.cdx.json",
            "hello.provenance.json"
        ],
        "{}",
        build.report()
    );
    for (name, hex) in &digests {
        if name != "hello.oci" {
            assert_eq!(&sha256_file(&out.join(name)), hex, "printed digest of {name}");
        }
    }
    // For the OCI layout the printed digest is the image manifest's, which index.json names.
    let index = fs::read_to_string(out.join("hello.oci/index.json")).unwrap();
    let oci_hex = &digests.iter().find(|(n, _)| n == "hello.oci").unwrap().1;
    assert!(index.contains(&format!("sha256:{oci_hex}")), "index.json: {index}");
    assert!(out.join("hello.oci/blobs/sha256").join(oci_hex).is_file());

    assert_eq!(fs::read(out.join("hello-cmdline")).unwrap(), b"console=ttyS0 quiet");
    assert_eq!(
        fs::read(out.join("hello-kernel")).unwrap(),
        fs::read(repo().join("testdata/images/hello-kernel/kernel")).unwrap()
    );
    let tar = fs::read(out.join("hello.tar")).unwrap();
    assert_eq!(util::tar_file(&tar, "etc/hostname").as_deref(), Some(&b"hello\n"[..]));
    assert_eq!(
        util::tar_file(&tar, "etc/motd"),
        Some(fs::read(repo().join("examples/motd")).unwrap())
    );
    assert!(util::tar_file(&tar, "sbin/init").is_some());
    assert!(util::tar_file(&tar, "containers/services/greeter/config.json").is_some());
    assert!(util::tar_file(&tar, "containers/onboot/000-greet/lower/bin/hello").is_some());

    // Building again into the same directory replaces every output (the OCI layout
    // directory included) with the same bytes and leaves nothing else behind.
    let before = util::hash_tree(&out);
    let again = util::hello_build(&t, &out).ok();
    assert_eq!(again.build_digests(), digests);
    assert_eq!(util::hash_tree(&out), before);
    t.assert_tmp_empty();
}

#[test]
fn tar_output_lists_with_numeric_owners_only() {
    let t = TestDir::new("tarlist");
    let out = t.join("out");
    build_hello(&t, &out);
    let listing = Command::new("tar").arg("-tvf").arg(out.join("hello.tar")).output().unwrap();
    assert!(listing.status.success(), "tar -tvf: {}", String::from_utf8_lossy(&listing.stderr));
    let text = String::from_utf8(listing.stdout).unwrap();
    assert!(text.lines().count() > 20, "{text}");
    for line in text.lines() {
        // GNU tar prints "uname/gname" when the header has names, "uid/gid" when it does not.
        let owner = line.split_whitespace().nth(1).unwrap_or("");
        let numeric =
            owner.split('/').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        assert!(numeric, "host user or group name in {line:?}");
    }
    for e in util::tar_entries(&fs::read(out.join("hello.tar")).unwrap()) {
        assert!(e.uname.as_deref().unwrap_or_default().is_empty(), "uname in {e:?}");
        assert!(e.gname.as_deref().unwrap_or_default().is_empty(), "gname in {e:?}");
    }
}

#[test]
fn initrd_is_a_newc_cpio_archive() {
    let t = TestDir::new("cpio");
    let out = t.join("out");
    build_hello(&t, &out);
    t.cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "kernel+initrd:zstd", "--name", "hello-zstd", "-o"])
        .arg(&out)
        .ok();
    if !CPIO.found("initrd_is_a_newc_cpio_archive") {
        return;
    }
    let mut cpio_input = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(out.join("hello-initrd.img")).unwrap())
        .read_to_end(&mut cpio_input)
        .unwrap();
    let listing = cpio_list(&cpio_input);
    for want in ["sbin/init", "etc/hostname", "containers/services/greeter/config.json"] {
        assert!(listing.lines().any(|l| l == want), "{want} not in the initrd: {listing}");
    }
    // The zstd initrd holds the same archive.
    let zstd_input = fs::read(out.join("hello-zstd-initrd.img")).unwrap();
    assert!(zstd_input.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "not a zstd stream");
    if ZSTD.found("zstd initrd check") {
        let out = Command::new("zstd")
            .args(["-dc"])
            .arg(t.join("out/hello-zstd-initrd.img"))
            .output()
            .unwrap();
        assert!(out.status.success(), "zstd -dc: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, cpio_input, "gzip and zstd initrds differ after decompression");
    }
}

fn cpio_list(archive: &[u8]) -> String {
    let mut child = Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = archive.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "cpio -t: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn oci_output_is_accepted_by_skopeo_and_umoci() {
    let t = TestDir::new("ocitools");
    let out = t.join("out");
    let build = build_hello(&t, &out);
    let oci_hex = build.build_digests().into_iter().find(|(n, _)| n == "hello.oci").unwrap().1;
    let layout = out.join("hello.oci");
    if SKOPEO.found("skopeo inspect of the OCI output") {
        let r = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:latest", layout.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&r.stdout);
        assert!(r.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&r.stderr));
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["Digest"], format!("sha256:{oci_hex}"), "{stdout}");
        assert_eq!(v["Os"], "linux", "{stdout}");
        assert_eq!(v["Architecture"], "amd64", "{stdout}");
    }
    if UMOCI.found("umoci unpack of the OCI output") {
        let bundle = t.join("bundle");
        let r = Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(r.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&r.stderr));
        let rootfs = bundle.join("rootfs");
        assert_eq!(fs::read(rootfs.join("etc/hostname")).unwrap(), b"hello\n");
        assert!(rootfs.join("sbin/init").is_file());
        // greeter shares greet's copy of hello-app.
        assert!(rootfs.join("containers/onboot/000-greet/lower/bin/hello").is_file());
    }
}

#[test]
fn help_of_each_subcommand_shows_examples() {
    let t = TestDir::new("help");
    for sub in ["import", "lock", "build", "keygen", "sign", "completions"] {
        let out = t.cairn().args([sub, "--help"]).ok();
        out.stdout_has(&["Examples:", &format!("cairn {sub} ")]);
    }
    let top = t.cairn().arg("--help").ok();
    top.stdout_has(&[
        "Exit status:",
        "import",
        "lock",
        "build",
        "keygen",
        "sign",
        "store",
        "completions",
    ]);
}

#[test]
fn help_of_store_subcommands_shows_examples() {
    let t = TestDir::new("storehelp");
    for sub in [
        &["store", "--help"][..],
        &["store", "ls", "--help"],
        &["store", "gc", "--help"],
        &["store", "fsck", "--help"],
    ] {
        let out = t.cairn().args(sub).ok();
        out.stdout_has(&["Examples:", "cairn store "]);
    }
}

#[test]
fn usage_errors_exit_2() {
    let t = TestDir::new("usage");
    t.cairn().args(["build", "--no-such-flag"]).code(2);
    t.cairn().args(["frobnicate"]).code(2);
    t.cairn().args(["build", "x.yml", "-f", "floppy"]).fails_with(&["floppy"]);
    t.cairn().args(["--version"]).ok().stdout_has(&["cairn "]);
}

#[test]
fn completions_print_a_script() {
    let t = TestDir::new("completions");
    let bash = t.cairn().args(["completions", "bash"]).ok().stdout();
    assert!(bash.contains("_cairn") && bash.contains("complete"), "{bash}");
    for shell in ["zsh", "fish"] {
        let s = t.cairn().args(["completions", shell]).ok().stdout();
        assert!(s.contains("cairn"), "{shell}: {s}");
    }
    t.cairn().args(["completions", "cmd.exe"]).code(2);
}

#[test]
fn store_ls_lists_the_imports() {
    let t = TestDir::new("ls");
    t.cairn().args(["store", "ls"]).ok();
    t.import_hello();
    let ls = t.cairn().args(["store", "ls"]).ok().stdout();
    let names: Vec<&str> = ls.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(
        names,
        ["cairn.example/hello-app:1", "cairn.example/hello-init:1", "cairn.example/hello-kernel:1"],
        "{ls}"
    );
    for line in ls.lines() {
        let digest = line.split('\t').nth(1).unwrap_or("");
        assert!(digest.starts_with("sha256:") && digest.len() == 71, "{line:?}");
    }
}

/// The blob files of a store, largest first.
fn blobs_by_size(store: &Path) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.metadata().unwrap().len(), e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

#[test]
fn store_fsck_finds_a_corrupt_blob() {
    let t = TestDir::new("fsck");
    t.import_hello();
    t.cairn().args(["store", "fsck"]).ok();
    let (_, hex) = blobs_by_size(&t.store()).remove(0);
    let path = t.store().join("blobs/sha256").join(&hex);
    util::make_writable(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    let out = t.cairn().args(["store", "fsck"]).code(1);
    out.stdout_has(&[&format!("corrupt\tsha256:{hex}")]);
    out.stderr_has(&["1 corrupt"]);

    // A blob that went missing is named too.
    fs::remove_file(&path).unwrap();
    let out = t.cairn().args(["store", "fsck"]).code(1);
    out.stdout_has(&[&format!("missing\tsha256:{hex}")]);
}

#[test]
fn store_gc_keeps_referenced_blobs() {
    let t = TestDir::new("gc");
    t.import_hello();
    // An image that is then renamed away leaves three unreferenced blobs.
    t.write("rootfs/etc/only-here", "garbage\n");
    t.cairn().arg("import").arg(t.join("rootfs")).args(["--name", "x.example/tmp:1"]).ok();
    let before = blobs_by_size(&t.store());
    t.cairn()
        .arg("import")
        .arg(repo().join("testdata/images/hello-init"))
        .args(["--name", "x.example/tmp:1"])
        .ok();

    let dry = t.cairn().args(["store", "gc", "--dry-run"]).ok();
    let doomed: Vec<String> = dry
        .stdout()
        .lines()
        .map(|l| l.strip_prefix("would remove\tsha256:").expect(l).to_string())
        .collect();
    assert_eq!(doomed.len(), 3, "{}", dry.report());
    assert_eq!(blobs_by_size(&t.store()), before, "--dry-run deleted something");

    let gc = t.cairn().args(["store", "gc"]).ok();
    for hex in &doomed {
        gc.stdout_has(&[&format!("removed\tsha256:{hex}")]);
        assert!(!t.store().join("blobs/sha256").join(hex).exists(), "{hex} survived gc");
    }
    assert_eq!(blobs_by_size(&t.store()).len(), before.len() - 3);
    t.cairn().args(["store", "fsck"]).ok();
    // Everything the hello example needs is still there.
    t.cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "tar", "-o"])
        .arg(t.join("out"))
        .ok();
    let again = t.cairn().args(["store", "gc"]).ok();
    assert_eq!(again.stdout(), "", "a second gc found more garbage");
}

#[test]
fn a_build_never_replaces_a_directory_it_did_not_write() {
    let t = TestDir::new("dir-clash");
    t.import_hello();
    let spec = repo().join("examples/hello.yml");
    // A user's directory where the tar output would go: refused, nothing else written.
    t.write("out/hello.tar/keep-me", "precious");
    t.cairn()
        .arg("build")
        .arg(&spec)
        .args(["-f", "kernel+initrd", "-f", "tar", "-o", "out"])
        .fails_with(&["hello.tar", "not an earlier cairn OCI output"]);
    assert_eq!(std::fs::read_to_string(t.join("out/hello.tar/keep-me")).unwrap(), "precious");
    assert_eq!(crate::util::list_tree(&t.join("out")), ["hello.tar/", "hello.tar/keep-me"]);
    // An earlier OCI output is replaced as a whole.
    t.cairn().arg("build").arg(&spec).args(["-f", "oci", "-o", "oci-out"]).ok();
    t.write("oci-out/hello.oci/stale-file", "x");
    t.cairn().arg("build").arg(&spec).args(["-f", "oci", "-o", "oci-out"]).ok();
    assert!(!t.join("oci-out/hello.oci/stale-file").exists());
    assert!(t.join("oci-out/hello.oci/oci-layout").is_file());
}

/// A reader that closes the pipe early (`cairn store ls | grep -q x`) ends the command
/// quietly with status 0, as `ls` does: no panic, no message.
#[test]
fn a_closed_stdout_is_a_quiet_success() {
    let t = TestDir::new("closed-stdout");
    t.import_hello();
    for args in [&["store", "ls"][..], &["completions", "bash"][..]] {
        let mut child = Command::new(util::CAIRN)
            .args(args)
            .current_dir(t.path())
            .env("CAIRN_STORE", t.store())
            .env("HOME", t.join("home"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the child can write: its first write fails with EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}
