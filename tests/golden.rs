//! Golden digests: the outputs of `examples/hello.yml`, built from a fresh store, must have
//! exactly the digests committed in `tests/golden/hello/expected.digests`.
//!
//! The file has `sha256sum`'s format (hex digest, two spaces, file name), one line per
//! output in the order cairn prints them (the images, then the SBOMs and the provenance);
//! for the OCI layout directory the digest is the image manifest digest cairn prints. After an intended change of the output bytes,
//! regenerate it with `CAIRN_BLESS=1 cargo test --test integration golden` and commit it
//! with the change that explains it.
//!
//! `tests/golden/hello/tar.list` lists the entries of `hello.tar` (type, mode, owner, size,
//! path, link target), so that a change of digests shows what changed in the layout: the
//! LinuxKit base entries of every image root (`dev/pts`, `etc/hosts`, `etc/mtab`, …), and
//! the one copy of `hello-app` that `greet` holds and `greeter` mounts. It is blessed with
//! the digests.

use std::fs;

use crate::util::{TestDir, build_hello, repo, sha256_file, tar_entries, tar_file};

#[test]
fn hello_outputs_match_the_golden_digests() {
    let t = TestDir::new("golden");
    let out = t.join("out");
    let mut digests = build_hello(&t, &out).build_digests();
    let zstd = t
        .cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "kernel+initrd:zstd", "--name", "hello-zstd", "-o"])
        .arg(&out)
        .ok();
    digests.extend(zstd.build_digests());

    let mut actual = String::new();
    for (name, hex) in &digests {
        let path = out.join(name);
        if path.is_file() {
            assert_eq!(&sha256_file(&path), hex, "cairn printed a wrong digest for {name}");
        }
        actual.push_str(&format!("{hex}  {name}\n"));
    }

    check_golden("expected.digests", &actual);

    // greet and greeter use the same image: its files are in the tar once, in greet's
    // bundle, and greeter's runtime.json mounts them.
    let tar = fs::read(out.join("hello.tar")).unwrap();
    let entries = tar_entries(&tar);
    let apps: Vec<&str> =
        entries.iter().map(|e| e.path.as_str()).filter(|p| p.ends_with("bin/hello")).collect();
    assert_eq!(apps, ["containers/onboot/000-greet/lower/bin/hello"]);
    assert!(!entries.iter().any(|e| e.path.starts_with("containers/services/greeter/lower")));
    let runtime = tar_file(&tar, "containers/services/greeter/runtime.json").unwrap();
    let runtime: serde_json::Value = serde_json::from_slice(&runtime).unwrap();
    assert_eq!(runtime["mounts"][2]["options"][0], "lowerdir=/containers/onboot/000-greet/lower");
    assert_eq!(
        runtime["mounts"][2]["options"][1],
        "upperdir=/containers/services/greeter/tmp/upper"
    );

    let mut listing = String::new();
    for e in entries {
        let link = e.link.map(|l| format!(" -> {l}")).unwrap_or_default();
        listing.push_str(&format!(
            "{} {:04o} {}:{} {:>6} {}{link}\n",
            e.kind as char, e.mode, e.uid, e.gid, e.size, e.path
        ));
    }
    check_golden("tar.list", &listing);
}

/// Compares `actual` with `tests/golden/hello/NAME` (writes it under `CAIRN_BLESS=1`).
fn check_golden(name: &str, actual: &str) {
    let golden = repo().join("tests/golden/hello").join(name);
    if std::env::var_os("CAIRN_BLESS").is_some_and(|v| v == "1") {
        fs::create_dir_all(golden.parent().unwrap()).unwrap();
        fs::write(&golden, actual).unwrap();
        eprintln!("CAIRN_BLESS=1: wrote {}", golden.display());
        return;
    }
    let expected = fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!("reading {}: {e}\nCreate it with CAIRN_BLESS=1.", golden.display())
    });
    if expected != actual {
        let mut diff = String::new();
        for line in expected.lines() {
            if !actual.lines().any(|l| l == line) {
                diff.push_str(&format!("- {line}\n"));
            }
        }
        for line in actual.lines() {
            if !expected.lines().any(|l| l == line) {
                diff.push_str(&format!("+ {line}\n"));
            }
        }
        panic!(
            "the hello outputs differ from {}:\n{diff}\nIf the change is intended, rerun with \
             CAIRN_BLESS=1 and commit the new file.",
            golden.display()
        );
    }
}
