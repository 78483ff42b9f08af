//! OpenSSL, an independent implementation, reads cairn's PKCS#8 keys, plain and encrypted,
//! and derives the same public key; and keys OpenSSL encrypted load in cairn.
//!
//! The other independent checks of what cairn signs (securesystemslib on the DSSE
//! envelopes, `@sigstore/verify` on the bundles) run on the real binary's outputs, in
//! `tests/signing.rs`. A missing `openssl` skips loudly, or fails under `CI=true` (see
//! [`crate::testkit::Tool`]).

use std::path::PathBuf;
use std::process::{Command, Output};

use super::keys::tests::fixed_key;
use super::keys::{Algorithm, SigningKey};
use crate::testkit::Tool;

const OPENSSL: Tool = Tool { name: "openssl", install: "apt-get install openssl", switch: None };

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

struct Fixture {
    dir: tempfile::TempDir,
    key: SigningKey,
}

impl Fixture {
    fn new(alg: Algorithm) -> Fixture {
        Fixture { dir: tempfile::tempdir().unwrap(), key: fixed_key(alg) }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[test]
fn openssl_reads_cairn_keys() {
    if !OPENSSL.works("openssl_reads_cairn_keys", Command::new("openssl").arg("version")) {
        return;
    }
    for alg in Algorithm::ALL {
        let f = Fixture::new(alg);
        let expected = f.key.public_key().to_spki_pem();
        for passphrase in [None, Some("correct horse")] {
            let pem = f.key.to_pkcs8_pem(passphrase).unwrap();
            let key_path = f.write("key.pem", &pem);
            let mut cmd = Command::new("openssl");
            cmd.args(["pkey", "-pubout", "-in"]).arg(&key_path);
            cmd.args(["-passin", &format!("pass:{}", passphrase.unwrap_or(""))]);
            let out = run(&mut cmd);
            assert!(out.status.success(), "{alg}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{alg} {passphrase:?}");
        }
        // And the other way: keys OpenSSL encrypted (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC,
        // and scrypt + AES-256-CBC) load in cairn.
        let plain = f.write("plain.pem", &f.key.to_pkcs8_pem(None).unwrap());
        for kdf in [&["-v2", "aes-256-cbc"][..], &["-v2", "aes-256-cbc", "-scrypt"][..]] {
            let mut cmd = Command::new("openssl");
            cmd.args(["pkcs8", "-topk8", "-passout", "pass:s3cret"])
                .args(kdf)
                .arg("-in")
                .arg(&plain);
            let out = run(&mut cmd);
            assert!(out.status.success(), "{alg}: {}", String::from_utf8_lossy(&out.stderr));
            let pem = String::from_utf8(out.stdout).unwrap();
            assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{pem}");
            let key = SigningKey::from_pkcs8_pem(&pem, Some("s3cret")).unwrap();
            assert_eq!(key.public_key(), f.key.public_key(), "{alg} {kdf:?}");
        }
    }
}
