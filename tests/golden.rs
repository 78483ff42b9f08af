//! Golden digests: the outputs of `examples/hello.yml`, built from a fresh store, must have
//! exactly the digests committed in `tests/golden/hello/expected.digests`.
//!
//! The file has `sha256sum`'s format (hex digest, two spaces, file name), one line per
//! output in the order cairn prints them (the images, then the SBOMs and the provenance);
//! for the OCI layout directory the digest is the image manifest digest cairn prints. After an intended change of the output bytes,
//! regenerate it with `CAIRN_BLESS=1 cargo test --test integration golden` and commit it
//! with the change that explains it.

use std::fs;

use crate::util::{TestDir, build_hello, repo, sha256_file};

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

    let golden = repo().join("tests/golden/hello/expected.digests");
    if std::env::var_os("CAIRN_BLESS").is_some_and(|v| v == "1") {
        fs::create_dir_all(golden.parent().unwrap()).unwrap();
        fs::write(&golden, &actual).unwrap();
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
