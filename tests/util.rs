//! Shared test machinery: a private directory per test, a builder for `cairn` commands that
//! reports everything on failure, and writers for hand-made inputs (OCI image layouts, OCI
//! archives and raw tar bytes with names the `tar` crate would refuse to write).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use sha2::Digest as _;

/// The cairn binary Cargo built for this test run.
pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// The repository root (for `examples/` and `testdata/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The names `examples/hello.yml` gives its three components, with their `testdata/images/`
/// directory names.
pub const HELLO_IMAGES: [(&str, &str); 3] = [
    ("hello-kernel", "cairn.example/hello-kernel:1"),
    ("hello-init", "cairn.example/hello-init:1"),
    ("hello-app", "cairn.example/hello-app:1"),
];

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Lowercase hex sha256 of a file's contents.
pub fn sha256_file(path: &Path) -> String {
    sha256_hex(&fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

/// A unique temporary directory for one test, with its own store (`store/`), home (`home/`)
/// and temporary directory (`tmp/`, cairn's `TMPDIR`). Kept (and its path printed) when the
/// test panics, so a failure can be looked at.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cairn-it-{name}-"))
            .tempdir()
            .expect("creating a test directory");
        let root = dir.path().to_path_buf();
        for sub in ["home", "tmp"] {
            fs::create_dir(root.join(sub)).expect("creating test subdirectories");
        }
        TestDir { dir: Some(dir), root }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// The default store of commands made by [`TestDir::cairn`].
    pub fn store(&self) -> PathBuf {
        self.join("store")
    }

    /// Writes `bytes` to `rel` (parents created) and returns the full path.
    pub fn write(&self, rel: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("creating parent directories");
        }
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let path = self.join(rel);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        path
    }

    /// A `cairn` command using this directory's store, home and temporary directory, run in
    /// this directory, with `SOURCE_DATE_EPOCH` removed from the environment.
    pub fn cairn(&self) -> Cairn {
        Cairn::new(&self.root)
            .env("CAIRN_STORE", self.store())
            .env("HOME", self.join("home"))
            .env("TMPDIR", self.join("tmp"))
    }

    /// Imports the three components of `examples/hello.yml` from `testdata/images/`.
    pub fn import_hello(&self) {
        for (dir, name) in HELLO_IMAGES {
            self.cairn()
                .arg("import")
                .arg(repo().join("testdata/images").join(dir))
                .args(["--name", name])
                .ok();
        }
    }

    /// Checks that cairn left nothing in its temporary directory.
    pub fn assert_tmp_empty(&self) {
        let left = list_tree(&self.join("tmp"));
        assert!(left.is_empty(), "cairn left files in its TMPDIR: {left:?}");
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("test directory kept for inspection: {}", kept.display());
        }
    }
}

/// Every path under `dir` (relative, sorted, directories with a trailing `/`); empty when
/// `dir` does not exist.
pub fn list_tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A `cairn` invocation. Runs through an optional wrapper (`faketime …`, `unshare -n`,
/// `sh -c 'umask 077; exec "$@"' sh`), and on an unexpected result panics with the
/// command, working directory, exit status, stdout and stderr.
pub struct Cairn {
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: PathBuf,
}

impl Cairn {
    /// A bare command run in `cwd`: the caller sets the store.
    pub fn new(cwd: &Path) -> Cairn {
        Cairn {
            wrapper: Vec::new(),
            args: Vec::new(),
            env: vec![("SOURCE_DATE_EPOCH".into(), None)],
            cwd: cwd.to_path_buf(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cairn {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cairn {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cairn {
        self.env.push((k.as_ref().into(), Some(v.as_ref().into())));
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Cairn {
        self.env.push((k.as_ref().into(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cairn {
        self.cwd = dir.as_ref().to_path_buf();
        self
    }

    /// Runs cairn as the last argument of `wrapper` (cairn's own arguments follow it).
    pub fn wrap<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, wrapper: I) -> Cairn {
        let mut w: Vec<OsString> = wrapper.into_iter().map(|a| a.as_ref().into()).collect();
        w.append(&mut self.wrapper);
        self.wrapper = w;
        self
    }

    /// Runs cairn with this umask (through `sh`, so the test process's umask is untouched).
    pub fn umask(self, mask: &str) -> Cairn {
        self.wrap(["sh", "-c", &format!("umask {mask}; exec \"$@\""), "sh"])
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.env {
            match v {
                Some(v) => write!(s, "{}={:?} ", k.to_string_lossy(), v).unwrap(),
                None => write!(s, "-u {} ", k.to_string_lossy()).unwrap(),
            }
        }
        for w in &self.wrapper {
            write!(s, "{:?} ", w).unwrap();
        }
        s.push_str(CAIRN);
        for a in &self.args {
            write!(s, " {:?}", a).unwrap();
        }
        s
    }

    /// Runs the command, whatever its exit status.
    pub fn run(&self) -> Outcome {
        let mut argv: Vec<OsString> = self.wrapper.clone();
        argv.push(CAIRN.into());
        argv.extend(self.args.iter().cloned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(&self.cwd);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let output = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", self.describe()));
        Outcome { command: self.describe(), cwd: self.cwd.clone(), output }
    }

    /// Runs and requires exit status 0.
    pub fn ok(&self) -> Outcome {
        self.run().expect_code(0)
    }

    /// Runs and requires exit status `code`.
    pub fn code(&self, code: i32) -> Outcome {
        self.run().expect_code(code)
    }

    /// Runs and requires exit status 2 (an error) with every one of `needles` in stderr.
    pub fn fails_with(&self, needles: &[&str]) -> Outcome {
        let out = self.code(2);
        out.stderr_has(needles);
        out
    }
}

/// What a finished command did.
pub struct Outcome {
    command: String,
    cwd: PathBuf,
    pub output: Output,
}

impl Outcome {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// The full report printed when an expectation fails.
    pub fn report(&self) -> String {
        format!(
            "\ncommand: {}\ncwd: {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command,
            self.cwd.display(),
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    pub fn expect_code(self, code: i32) -> Outcome {
        assert_eq!(self.code(), Some(code), "expected exit status {code}{}", self.report());
        self
    }

    /// Panics unless stderr contains every one of `needles`.
    pub fn stderr_has(&self, needles: &[&str]) {
        let err = self.stderr();
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}{}", self.report());
        }
    }

    /// Panics unless stdout contains every one of `needles`.
    pub fn stdout_has(&self, needles: &[&str]) {
        let out = self.stdout();
        for n in needles {
            assert!(out.contains(n), "stdout lacks {n:?}{}", self.report());
        }
    }

    /// The `DIGEST  PATH` lines `cairn build` prints, as (file name, digest without the
    /// `sha256:` prefix).
    pub fn build_digests(&self) -> Vec<(String, String)> {
        self.stdout()
            .lines()
            .map(|l| {
                let (d, p) = l.split_once("  ").unwrap_or_else(|| {
                    panic!("unexpected build output line {l:?}{}", self.report())
                });
                let hex = d.strip_prefix("sha256:").unwrap_or_else(|| panic!("digest {d:?}"));
                let name = Path::new(p).file_name().unwrap().to_string_lossy().into_owned();
                (name, hex.to_string())
            })
            .collect()
    }
}

/// A tar archive built header by header, so that hostile names, types and sizes reach cairn
/// exactly as written (the `tar` crate refuses to write most of them).
#[derive(Default)]
pub struct RawTar(Vec<u8>);

impl RawTar {
    pub fn new() -> RawTar {
        RawTar(Vec::new())
    }

    /// Appends one ustar header for `name` of type `kind` and the data; the header's size
    /// field says `claimed` bytes whatever `data` holds.
    pub fn raw(
        mut self,
        name: &[u8],
        kind: u8,
        link: &[u8],
        mode: u32,
        claimed: u64,
        data: &[u8],
    ) -> RawTar {
        assert!(name.len() <= 100 && link.len() <= 100, "RawTar takes names of up to 100 bytes");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{claimed:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub fn entry(self, name: &[u8], kind: u8, link: &[u8], data: &[u8]) -> RawTar {
        let mode = if kind == b'5' { 0o755 } else { 0o644 };
        self.raw(name, kind, link, mode, data.len() as u64, data)
    }

    pub fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.entry(name.as_bytes(), b'0', b"", data)
    }

    pub fn dir(self, name: &str) -> RawTar {
        self.entry(name.as_bytes(), b'5', b"", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> RawTar {
        self.raw(name.as_bytes(), b'2', target.as_bytes(), 0o777, 0, b"")
    }

    pub fn hardlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name.as_bytes(), b'1', target.as_bytes(), b"")
    }

    /// A PAX extended header (`x`) setting `key` for the next entry.
    pub fn pax(self, key: &str, value: &[u8]) -> RawTar {
        let body_len = 1 + key.len() + 1 + value.len() + 1;
        let mut len = body_len + 1;
        while (len.to_string().len() + body_len) != len {
            len = len.to_string().len() + body_len;
        }
        let mut record = format!("{len} {key}=").into_bytes();
        record.extend_from_slice(value);
        record.push(b'\n');
        self.entry(b"PaxHeaders/entry", b'x', b"", &record)
    }

    /// A GNU long name (`L`) entry naming the next entry `name`.
    pub fn gnu_long_name(self, name: &[u8]) -> RawTar {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(b"././@LongLink", b'L', b"", &data)
    }

    /// The archive with its two zero end blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }

    /// The bytes so far, without end blocks (for truncated archives).
    pub fn unfinished(self) -> Vec<u8> {
        self.0
    }
}

/// gzip with flate2's default (deterministic) header.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// One layer blob of an image [`write_oci_layout`] writes.
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    /// sha256 hex of the uncompressed tar.
    pub diff_id: String,
}

impl Layer {
    pub fn tar(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: sha256_hex(&tar),
            blob: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar",
        }
    }

    pub fn gzip(tar: &[u8]) -> Layer {
        Layer::gzipped(gzip(tar), sha256_hex(tar))
    }

    /// A gzip layer from already-compressed bytes and the digest of what they expand to.
    pub fn gzipped(blob: Vec<u8>, diff_id: String) -> Layer {
        Layer { blob, media_type: "application/vnd.oci.image.layer.v1.tar+gzip", diff_id }
    }
}

/// Writes an OCI image layout holding one linux/amd64 image made of `layers` into `dir`
/// (created), JSON written by hand. Returns the manifest's sha256 hex.
pub fn write_oci_layout(dir: &Path, layers: &[Layer]) -> String {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let hex = sha256_hex(bytes);
        fs::write(blobs.join(&hex), bytes).unwrap();
        hex
    };
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| format!("sha256:{}", l.diff_id)).collect::<Vec<_>>(),
        },
    }))
    .unwrap();
    let config_hex = put(&config);
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": l.media_type,
                "digest": format!("sha256:{}", put(&l.blob)),
                "size": l.blob.len(),
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": layer_descs,
    }))
    .unwrap();
    let manifest_hex = put(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": "latest" },
        }],
    }))
    .unwrap();
    fs::write(dir.join("index.json"), index).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest_hex
}

/// Packs an OCI image layout directory into an OCI archive (a tar of the layout).
pub fn write_oci_archive(layout: &Path, archive: &Path) {
    let mut b = tar::Builder::new(fs::File::create(archive).unwrap());
    b.mode(tar::HeaderMode::Deterministic);
    let mut paths = list_tree(layout);
    paths.retain(|p| !p.ends_with('/'));
    for p in paths {
        b.append_path_with_name(layout.join(&p), &p).unwrap();
    }
    b.into_inner().unwrap().sync_all().unwrap();
}

/// The entries of a tar archive as (path, entry type byte, mode, uid, gid, mtime, size).
pub fn tar_entries(bytes: &[u8]) -> Vec<TarEntry> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .expect("reading tar")
        .map(|e| {
            let e = e.expect("reading tar entry");
            let h = e.header();
            TarEntry {
                path: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                kind: h.entry_type().as_byte(),
                link: e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                size: h.size().unwrap(),
                uname: h.username_bytes().map(<[u8]>::to_vec),
                gname: h.groupname_bytes().map(<[u8]>::to_vec),
            }
        })
        .collect()
}

/// The contents of one regular file in a tar archive.
pub fn tar_file(bytes: &[u8], path: &str) -> Option<Vec<u8>> {
    let mut ar = tar::Archive::new(bytes);
    for e in ar.entries().ok()? {
        let mut e = e.ok()?;
        if e.path_bytes().as_ref() == path.as_bytes() {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut out).ok()?;
            return Some(out);
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: String,
    pub kind: u8,
    pub link: Option<String>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub uname: Option<Vec<u8>>,
    pub gname: Option<Vec<u8>>,
}

/// Makes `path` writable by its owner only (and readable), e.g. before corrupting a blob.
pub fn make_writable(path: &Path) {
    let mut p = fs::metadata(path).unwrap().permissions();
    p.set_mode(p.mode() | 0o200);
    fs::set_permissions(path, p).unwrap();
}

/// Whether `program` can be run (found on PATH).
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `faketime` is installed and really changes the clock a child process sees.
pub fn faketime_works() -> bool {
    have("faketime")
        && Command::new("faketime")
            .args(["2031-05-06 07:08:09", "date", "-u", "+%Y"])
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"2031"))
}

/// Prints a loud skip note (shown with `--nocapture`, and in the output of failed tests).
pub fn skip(what: &str, why: &str) {
    eprintln!("\n*** SKIPPED: {what}: {why} ***\n");
}

/// Every file under `dir` with its sha256 hex (for comparing OCI layout outputs).
pub fn hash_tree(dir: &Path) -> Vec<(String, String)> {
    list_tree(dir)
        .into_iter()
        .map(|p| {
            let full = dir.join(&p);
            let h = if p.ends_with('/') { String::new() } else { sha256_file(&full) };
            (p, h)
        })
        .collect()
}

/// Imports the hello components into `t`'s store and builds every format with `--locked`
/// into `out`; returns the build's outcome.
pub fn build_hello(t: &TestDir, out: &Path) -> Outcome {
    t.import_hello();
    t.cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "tar", "-f", "kernel+initrd", "-f", "oci", "-o"])
        .arg(out)
        .ok()
}
