//! Shared test machinery: a private directory per test, a builder for `cairn` commands that
//! reports everything on failure, and hand-made inputs written to disk with the fixture
//! builder the unit tests use too (`cairn::testkit`: raw tars, layers, OCI layouts).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use cairn::testkit::Tool;
pub use cairn::testkit::{Layer, RawTar, gzip, sha256_hex};
use cairn::testkit::{OciLayout, tar_dir};

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

    /// Writes `spec` to `spec.yml` and requires `cairn lock spec.yml` to fail (exit 2) with
    /// every one of `needles` in stderr.
    pub fn lock_fails(&self, spec: &str, needles: &[&str]) -> Outcome {
        self.write("spec.yml", spec);
        self.cairn().args(["lock", "spec.yml"]).fails_with(needles)
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

    /// The command as a [`Command`], to spawn it (or kill it) without waiting.
    pub fn command(&self) -> Command {
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
        cmd
    }

    /// Runs the command, whatever its exit status.
    pub fn run(&self) -> Outcome {
        let output =
            self.command().output().unwrap_or_else(|e| panic!("running {}: {e}", self.describe()));
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

/// Writes an OCI image layout holding one linux/amd64 image made of `layers` into `dir`
/// (created). Returns the manifest's sha256 hex.
pub fn write_oci_layout(dir: &Path, layers: &[Layer]) -> String {
    let layout = OciLayout::new(layers);
    layout.write(dir).unwrap_or_else(|e| panic!("writing {}: {e}", dir.display()));
    layout.manifest
}

/// Packs an OCI image layout directory into an OCI archive (a tar of the layout).
pub fn write_oci_archive(layout: &Path, archive: &Path) {
    let tar = tar_dir(layout).unwrap_or_else(|e| panic!("reading {}: {e}", layout.display()));
    fs::write(archive, tar).unwrap_or_else(|e| panic!("writing {}: {e}", archive.display()));
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

// What each test needs from the machine (see [`Tool`] for the rule when it is missing).

/// A tool only `CI=true` requires.
const fn apt(name: &'static str, install: &'static str) -> Tool {
    Tool { name, install, switch: None }
}

/// A tool of the boot and runner tests, required by `CAIRN_REQUIRE_QEMU=1` too.
const fn boot(name: &'static str, install: &'static str) -> Tool {
    Tool { name, install, switch: Some("CAIRN_REQUIRE_QEMU") }
}

/// An independent validator, required by `CAIRN_REQUIRE_EXTERNAL=1` too.
const fn external(name: &'static str, install: &'static str) -> Tool {
    Tool { name, install, switch: Some("CAIRN_REQUIRE_EXTERNAL") }
}

pub const CPIO: Tool = apt("cpio", "apt-get install cpio");
pub const ZSTD: Tool = apt("zstd", "apt-get install zstd");
pub const SKOPEO: Tool = apt("skopeo", "apt-get install skopeo");
pub const DOCKER_REGISTRY: Tool = apt("docker-registry", "bash .ci/registry-setup");
pub const HTPASSWD: Tool = apt("htpasswd", "bash .ci/registry-setup");
pub const UMOCI: Tool = apt("umoci", "apt-get install umoci");
pub const UNSHARE: Tool = apt("unshare", "apt-get install util-linux");
pub const FAKETIME: Tool = apt("faketime", "apt-get install faketime");
pub const QEMU: Tool = boot("qemu-system-x86_64", "bash .ci/qemu-setup");
/// The Debian kernel and busybox-static packages the boot tests boot.
pub const BOOT_DEBS: Tool =
    boot("the Debian kernel and busybox-static .debs", "bash .ci/qemu-setup");
/// The static busybox the runner tests put in their bundles.
pub const BUSYBOX: Tool = boot("/bin/busybox", "apt-get install busybox-static");
/// The Python validators of `tests/external/`.
pub const PYTHON_VALIDATORS: Tool = external(
    "python3 with spdx-tools, cyclonedx-python-lib, in-toto-attestation, securesystemslib",
    "python3 -m pip install -r tests/external/requirements.txt",
);
/// `@sigstore/verify` for `tests/external/verify_bundle.mjs`.
pub const SIGSTORE_JS: Tool =
    external("node with @sigstore/verify", "npm ci --prefix tests/external/node");

/// Whether `faketime` is installed and really changes the clock a child process sees; if
/// not, see [`Tool::missing`].
pub fn faketime_works(test: &str) -> bool {
    let out = Command::new("faketime").args(["2031-05-06 07:08:09", "date", "-u", "+%Y"]).output();
    let why = match out {
        Ok(o) if o.stdout.starts_with(b"2031") => return true,
        Ok(o) => format!("it does not fake the clock: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("cannot run it: {e}"),
    };
    FAKETIME.missing(test, &why);
    false
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

/// `cairn build examples/hello.yml --locked -f tar -f kernel+initrd -f oci -o OUT` in `t`.
pub fn hello_build(t: &TestDir, out: &Path) -> Cairn {
    t.cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "tar", "-f", "kernel+initrd", "-f", "oci", "-o"])
        .arg(out)
}

/// Imports the hello components into `t`'s store and builds every format with `--locked`
/// into `out`; returns the build's outcome.
pub fn build_hello(t: &TestDir, out: &Path) -> Outcome {
    t.import_hello();
    hello_build(t, out).ok()
}
