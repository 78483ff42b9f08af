//! SIGKILL at random moments: `import`, `lock`, `build`, `sign`, `keygen` and `store gc`
//! are killed after a random delay in [0, T] (T the time an uninterrupted run takes; half
//! the kills near T, where outputs are put in place), over and over (imports beside a concurrent
//! `gc`, builds and `gc` beside concurrent imports and `gc`). After every kill:
//! - `store fsck` exits 0: every listed image is complete; what a killed process left is
//!   reported as `leftover` and removed by the next `gc`;
//! - the output directory holds the complete previous set of outputs or the complete new
//!   one (compared with reference builds), or a committed interrupted publish that the next
//!   command finishes into the new one; never a partial file under an output's name;
//! - a lock file, signature envelope or bundle is absent or byte-identical to a reference;
//!   a private or public key written by `keygen` is absent or complete.
//!
//! The delays come from a seeded generator: `CAIRN_CRASH_SEED=N` replays a run's delays (the
//! seed is printed on failure; timing still varies from machine to machine) and
//! `CAIRN_CRASH_ROUNDS=N` sets the number of kills per test.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Cairn, TestDir, Tool, hash_tree, hello_build, list_tree, repo};

/// Kills per test when `CAIRN_CRASH_ROUNDS` is not set: small enough for every test of this
/// module to finish within seconds.
const DEFAULT_ROUNDS: u64 = 12;

/// A small xorshift64* generator: the delays of a run are a function of its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, max] for half the draws; the other half in [3/4, 5/4] of `max`, where
    /// a command publishes what it wrote.
    fn delay(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros() as u64;
        let d = match self.next() % 2 {
            0 => self.next() % (micros + 1),
            _ => micros * 3 / 4 + self.next() % (micros / 2 + 1),
        };
        Duration::from_micros(d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len.div_ceil(8)).flat_map(|_| self.next().to_le_bytes()).take(len).collect()
    }
}

/// One test's randomness and its seed, printed when the test fails.
struct Crash {
    test: &'static str,
    seed: u64,
    rounds: u64,
    rng: Rng,
    /// Runs killed, and runs that finished first.
    killed: u64,
    finished: u64,
}

impl Crash {
    fn new(test: &'static str) -> Crash {
        let seed = match std::env::var("CAIRN_CRASH_SEED") {
            Ok(s) => s.parse().unwrap_or_else(|_| panic!("CAIRN_CRASH_SEED={s:?} is not a u64")),
            Err(_) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                now.map_or(1, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
            }
        };
        let rounds = match std::env::var("CAIRN_CRASH_ROUNDS") {
            Ok(s) => s.parse().unwrap_or_else(|_| panic!("CAIRN_CRASH_ROUNDS={s:?} is not a u64")),
            Err(_) => DEFAULT_ROUNDS,
        };
        // xorshift must not start at 0.
        Crash { test, seed, rounds, rng: Rng(seed | 1), killed: 0, finished: 0 }
    }

    /// Runs `cmd`, killing it with SIGKILL after a random delay in [0, `max`]. Returns the
    /// exit code when it finished first, `None` when it was killed.
    fn run_killed(&mut self, cmd: &Cairn, max: Duration) -> Option<i32> {
        let delay = self.rng.delay(max);
        let mut child = cmd
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning cairn");
        thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("waiting for cairn");
        match status.signal() {
            Some(9) => {
                self.killed += 1;
                None
            }
            _ => {
                self.finished += 1;
                status.code()
            }
        }
    }
}

impl Drop for Crash {
    fn drop(&mut self) {
        eprintln!(
            "{}: seed {}, {} runs killed, {} finished first",
            self.test, self.seed, self.killed, self.finished
        );
        if thread::panicking() {
            eprintln!(
                "{}: replay with CAIRN_CRASH_SEED={} CAIRN_CRASH_ROUNDS={}",
                self.test, self.seed, self.rounds
            );
        }
    }
}

/// How long an uninterrupted run takes (it must succeed), with a floor so that a very fast
/// command still gets kills spread over its start-up.
fn time_of(cmd: &Cairn) -> Duration {
    let start = Instant::now();
    cmd.ok();
    start.elapsed().max(Duration::from_millis(5))
}

/// `store fsck` exits 0 (every listed image complete); returns the leftovers it reports.
fn fsck_clean(t: &TestDir) -> Vec<String> {
    let out = t.cairn().args(["store", "fsck"]).ok().stdout();
    out.lines().filter_map(|l| l.strip_prefix("leftover\t")).map(str::to_string).collect()
}

/// After every kill, with no writer of the store running: the store is sound, fsck reports
/// everything left in its temporary directory as a leftover (all its writers are dead), and
/// with `collect` a `gc` removes all of it.
fn check_store(t: &TestDir, collect: bool) {
    let tmp = t.store().join(".tmp");
    let in_tmp = || -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&tmp)
            .map_or(Vec::new(), |d| d.flatten().map(|e| e.path().display().to_string()).collect());
        v.sort();
        v
    };
    let before = in_tmp();
    let leftovers = fsck_clean(t);
    if !leftovers.is_empty() {
        eprintln!("fsck reported {} leftovers of killed processes", leftovers.len());
    }
    // (A concurrent gc may remove some meanwhile.)
    for p in before.iter().filter(|p| Path::new(p).exists()) {
        assert!(leftovers.contains(p), "fsck does not report {p} as a leftover: {leftovers:?}");
    }
    if collect {
        t.cairn().args(["store", "gc"]).ok();
        let after = fsck_clean(t);
        assert!(after.is_empty(), "gc left {after:?} (fsck reported {leftovers:?})");
        assert_eq!(in_tmp(), Vec::<String>::new(), "gc left entries in {}", tmp.display());
    }
}

/// The names `store ls` lists.
fn listed(t: &TestDir) -> Vec<String> {
    let out = t.cairn().args(["store", "ls"]).ok().stdout();
    out.lines().filter_map(|l| l.split('\t').next()).map(str::to_string).collect()
}

/// A root filesystem with `len` bytes of noise (incompressible, so writing it takes time).
fn noisy_rootfs(t: &TestDir, rel: &str, rng: &mut Rng, len: usize) -> std::path::PathBuf {
    t.write(format!("{rel}/etc/noise"), rng.bytes(len));
    t.write(format!("{rel}/etc/which"), rel);
    t.join(rel)
}

/// Visible files of an output directory (staging directories left out) with their sha256.
type Tree = BTreeMap<String, String>;

fn visible(dir: &Path) -> Tree {
    hash_tree(dir).into_iter().filter(|(p, _)| !p.starts_with(".cairn-")).collect()
}

/// The state a reader sees once the committed publishes left in `dir` by killed processes
/// are finished: each output of a `.commit` list still in staging replaces its namesake.
fn after_recovery(dir: &Path) -> Tree {
    let mut tree = visible(dir);
    let Ok(entries) = fs::read_dir(dir) else { return tree };
    let mut staged: Vec<_> =
        entries.flatten().map(|e| e.path()).filter(|p| p.join(".commit").is_file()).collect();
    staged.sort_by_key(|p| fs::metadata(p.join(".commit")).and_then(|m| m.modified()).ok());
    for staging in staged {
        let mark = fs::read_to_string(staging.join(".commit")).unwrap_or_default();
        for name in mark.lines().filter(|n| !n.is_empty()) {
            if staging.join(name).symlink_metadata().is_err() {
                continue;
            }
            let inside = format!("{name}/");
            tree.retain(|p, _| p != name && !p.starts_with(&inside));
            for (p, h) in hash_tree(&staging) {
                if p == name || p.starts_with(&inside) {
                    tree.insert(p, h);
                }
            }
        }
    }
    tree
}

/// The output directory holds one of `sets` (or nothing of them yet, when `may_be_empty`),
/// possibly behind a committed publish the next command finishes; and every file under an
/// output's name is one of that name's reference versions.
fn check_outputs(dir: &Path, sets: &[&Tree], may_be_empty: bool, what: &str) {
    let now = visible(dir);
    for (p, h) in &now {
        assert!(
            sets.iter().any(|s| s.get(p) == Some(h)),
            "{what}: {p} in {} is no complete version of that output (sha256 {h})",
            dir.display()
        );
    }
    let recovered = after_recovery(dir);
    let complete = sets.iter().any(|s| **s == recovered) || (may_be_empty && recovered.is_empty());
    assert!(complete, "{what}: {} holds a mix of output sets: {recovered:#?}", dir.display());
}

#[test]
fn import_killed_at_random() {
    let mut c = Crash::new("import_killed_at_random");
    let t = TestDir::new("crash-import");
    t.import_hello();
    let roots: Vec<_> = (0..3)
        .map(|i| noisy_rootfs(&t, &format!("rootfs{i}"), &mut c.rng, (i + 1) << 18))
        .collect();
    let import = |i: usize, name: &str| {
        t.cairn().arg("import").arg(&roots[i % roots.len()]).args(["--name", name])
    };
    let max = time_of(&import(2, "x.example/timed:1"));
    let mut done = vec!["x.example/timed:1".to_string()];
    let rounds = c.rounds;
    let mut round = |round: u64| {
        let name = format!("x.example/k:{round}");
        let i = c.rng.next() as usize;
        match c.run_killed(&import(i, &name), max) {
            Some(0) => done.push(name),
            Some(code) => panic!("round {round}: import exited {code} without being killed"),
            None => {}
        }
        check_store(&t, round % 4 == 3);
        let names = listed(&t);
        for n in &done {
            assert!(names.contains(n), "round {round}: {n} was lost: {names:?}");
        }
    };
    // Half the rounds beside a gc that collects what killed imports leave while the next
    // ones run; half without, so that fsck sees those leftovers.
    beside_gc(&t, || (0..rounds / 2).for_each(&mut round));
    (rounds / 2..rounds).for_each(round);
    check_store(&t, true);
}

/// Runs `body` while another thread runs `store gc` over and over (and, with `churn`, first
/// re-tags `x.example/churn:1` between two contents, so that gc has garbage to collect).
fn beside_gc_churning(t: &TestDir, churn: &[&Path], body: impl FnOnce()) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let gc = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if !churn.is_empty() {
                    let root = churn[n % churn.len()];
                    t.cairn().arg("import").arg(root).args(["--name", "x.example/churn:1"]).ok();
                }
                t.cairn().args(["store", "gc"]).ok();
                n += 1;
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        stop.store(true, Ordering::Relaxed);
        gc.join().expect("the concurrent gc failed");
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}

fn beside_gc(t: &TestDir, body: impl FnOnce()) {
    beside_gc_churning(t, &[], body);
}

#[test]
fn gc_killed_at_random() {
    let mut c = Crash::new("gc_killed_at_random");
    let t = TestDir::new("crash-gc");
    t.import_hello();
    let roots: Vec<_> =
        (0..2).map(|i| noisy_rootfs(&t, &format!("rootfs{i}"), &mut c.rng, 1 << 20)).collect();
    let gc = t.cairn().args(["store", "gc"]);
    let max = time_of(&gc);
    for round in 0..c.rounds {
        // Re-tagging leaves the previous image's blobs to collect.
        let root = &roots[round as usize % 2];
        t.cairn().arg("import").arg(root).args(["--name", "x.example/retag:1"]).ok();
        // Sometimes the garbage is large, so the kill lands among the deletions.
        let max = if round % 2 == 0 { max } else { max * 3 };
        if let Some(code) = c.run_killed(&gc, max) {
            assert_eq!(code, 0, "round {round}: gc failed without being killed");
        }
        check_store(&t, false);
        assert_eq!(listed(&t).len(), 4, "round {round}: an image was lost");
    }
    check_store(&t, true);
}

/// A spec using the hello components and one more image; `variant` changes one file, so
/// that the lock and every output differ between variants.
fn write_spec(t: &TestDir, variant: u8) {
    let hello = fs::read_to_string(repo().join("examples/hello.yml")).unwrap();
    let spec = hello
        .replace(
            "  - cairn.example/hello-init:1\n",
            "  - cairn.example/hello-init:1\n  - x.example/noise:1\n",
        )
        .replace("contents: \"hello\\n\"", &format!("contents: \"variant {variant}\\n\""));
    assert!(spec.contains("x.example/noise:1") && spec.contains("variant"), "{spec}");
    t.write("spec/spec.yml", spec);
    fs::copy(repo().join("examples/motd"), t.join("spec/motd")).unwrap();
}

/// A store with the spec's images and the references: for each variant, its lock.
fn spec_setup(c: &mut Crash, t: &TestDir, noise: usize) -> [Vec<u8>; 2] {
    t.import_hello();
    let root = noisy_rootfs(t, "noise", &mut c.rng, noise);
    t.cairn().arg("import").arg(root).args(["--name", "x.example/noise:1"]).ok();
    [0, 1].map(|v| {
        write_spec(t, v);
        lock(t).ok();
        fs::read(t.join("spec/spec.yml.lock")).unwrap()
    })
}

fn lock(t: &TestDir) -> Cairn {
    t.cairn().args(["lock", "--offline"]).arg(t.join("spec/spec.yml"))
}

#[test]
fn lock_killed_at_random() {
    let mut c = Crash::new("lock_killed_at_random");
    let t = TestDir::new("crash-lock");
    let refs = spec_setup(&mut c, &t, 64 << 10);
    let lock_path = t.join("spec/spec.yml.lock");
    fs::remove_file(&lock_path).unwrap();
    let max = time_of(&lock(&t));
    for round in 0..c.rounds {
        write_spec(&t, (round % 2) as u8);
        if let Some(code) = c.run_killed(&lock(&t), max) {
            assert_eq!(code, 0, "round {round}: lock failed without being killed");
        }
        match fs::read(&lock_path) {
            Ok(bytes) => assert!(
                refs.contains(&bytes),
                "round {round}: {} is neither lock:\n{}",
                lock_path.display(),
                String::from_utf8_lossy(&bytes)
            ),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "round {round}"),
        }
    }
    // The next write removes the temporary files of killed runs.
    lock(&t).ok();
    let mut left: Vec<String> = fs::read_dir(t.join("spec"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["motd", "spec.yml", "spec.yml.lock"]);
}

fn build(t: &TestDir, out: &Path) -> Cairn {
    t.cairn()
        .arg("build")
        .arg(t.join("spec/spec.yml"))
        .args(["--locked", "-f", "tar", "-f", "kernel+initrd", "-f", "oci", "--name", "img", "-o"])
        .arg(out)
}

/// For each variant, the outputs of an uninterrupted build (the spec is left at `variant`
/// 1 and locked), and how long a build takes.
fn reference_builds(t: &TestDir) -> ([Tree; 2], Duration) {
    let mut max = Duration::ZERO;
    let refs = [0u8, 1].map(|v| {
        write_spec(t, v);
        lock(t).ok();
        let out = t.join(format!("ref{v}"));
        max = max.max(time_of(&build(t, &out)));
        visible(&out)
    });
    assert_ne!(refs[0], refs[1]);
    (refs, max)
}

/// A test of killed builds: its randomness, a directory with the spec's images, the
/// reference outputs of both variants and the time a build takes.
fn build_setup(test: &'static str) -> (Crash, TestDir, [Tree; 2], Duration) {
    let mut c = Crash::new(test);
    let t = TestDir::new(test);
    spec_setup(&mut c, &t, 256 << 10);
    let (refs, max) = reference_builds(&t);
    (c, t, refs, max)
}

/// Writes the variant's spec and lock (neither killed) and returns a build of it into `out`.
fn build_variant(t: &TestDir, v: u8, out: &Path) -> Cairn {
    write_spec(t, v);
    lock(t).ok();
    build(t, out)
}

#[test]
fn build_killed_at_random() {
    let (mut c, t, refs, max) = build_setup("build_killed_at_random");
    let out = t.join("out");
    let mut published = false;
    for round in 0..c.rounds {
        let v = (round % 2) as u8;
        match c.run_killed(&build_variant(&t, v, &out), max) {
            Some(0) => assert_eq!(visible(&out), refs[v as usize], "round {round}"),
            Some(code) => panic!("round {round}: build exited {code} without being killed"),
            None => {}
        }
        check_outputs(&out, &[&refs[0], &refs[1]], !published, &format!("round {round}"));
        published |= !visible(&out).is_empty();
        t.assert_tmp_empty();
    }
    check_store(&t, true);
    // The next build finishes or removes whatever the killed ones left.
    build_variant(&t, 0, &out).ok();
    let all: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(all.is_empty(), "staging left in {}: {all:?}", out.display());
    assert_eq!(visible(&out), refs[0]);
}

/// Found, with `cairn sign` writing its two files one after the other, a new envelope beside
/// the previous key's bundle (seed 1796407263891487526, round 6): they are now published as
/// one set.
#[test]
fn sign_killed_at_random() {
    let mut c = Crash::new("sign_killed_at_random");
    let t = TestDir::new("crash-sign");
    spec_setup(&mut c, &t, 16 << 10);
    write_spec(&t, 0);
    lock(&t).ok();
    let out = t.join("out");
    build(&t, &out).ok();
    let unsigned = visible(&out);
    let keys = ["a", "b"].map(|k| {
        t.cairn().args(["keygen", "--out"]).arg(t.join(k)).ok();
        t.join(format!("{k}.key"))
    });
    let sign = |k: usize| t.cairn().arg("sign").arg(&out).arg("--key").arg(&keys[k]);
    let mut max = Duration::ZERO;
    let refs = [0, 1].map(|k| {
        max = max.max(time_of(&sign(k)));
        visible(&out)
    });
    assert_ne!(refs[0], refs[1]);
    for round in 0..c.rounds {
        let k = (round % 2) as usize;
        if let Some(code) = c.run_killed(&sign(k), max) {
            assert_eq!(code, 0, "round {round}: sign failed without being killed");
            assert_eq!(visible(&out), refs[k], "round {round}");
        }
        check_outputs(&out, &[&refs[0], &refs[1]], false, &format!("round {round}"));
    }
    sign(0).ok();
    assert_eq!(visible(&out), refs[0]);
    // Signing never touched the outputs it signs.
    let outputs: Tree = visible(&out)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(".intoto.jsonl") && !p.ends_with(".sigstore.json"))
        .collect();
    assert_eq!(outputs, unsigned);
}

#[test]
fn build_and_gc_killed_beside_a_concurrent_gc() {
    let (mut c, t, refs, max) = build_setup("build_and_gc_killed_beside_a_concurrent_gc");
    let spare = noisy_rootfs(&t, "spare", &mut c.rng, 256 << 10);
    let out = t.join("out");
    let noise = t.join("noise");
    beside_gc_churning(&t, &[&spare, &noise], || {
        let gc = t.cairn().args(["store", "gc"]);
        for round in 0..c.rounds {
            let v = (round % 2) as u8;
            let cmd = build_variant(&t, v, &out);
            if let Some(code) = c.run_killed(&cmd, max) {
                assert_eq!(code, 0, "round {round}: build failed without being killed");
            }
            check_outputs(&out, &[&refs[0], &refs[1]], true, &format!("round {round}"));
            if let Some(code) = c.run_killed(&gc, max / 2) {
                assert_eq!(code, 0, "round {round}: gc failed without being killed");
            }
            fsck_clean(&t);
        }
    });
    check_store(&t, true);
    // Nothing a build needs was collected: an uninterrupted build still works.
    build_variant(&t, 1, &out).ok();
    assert_eq!(visible(&out), refs[1]);
}

/// Unmounts a test's file system when dropped (before its directory is removed).
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_output_file_system_is_refused_before_writing() {
    const TEST: &str = "a_full_output_file_system_is_refused_before_writing";
    const TMPFS: Tool =
        Tool { name: "a mountable tmpfs", install: "run the tests as root", switch: None };
    let mut c = Crash::new(TEST);
    let t = TestDir::new("crash-space");
    spec_setup(&mut c, &t, 2 << 20);
    let out = t.mkdir("small");
    let mut mount = std::process::Command::new("mount");
    mount.args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&out);
    if !TMPFS.works(TEST, &mut mount) {
        return;
    }
    let _mounted = Mount(out.clone());
    let build = t
        .cairn()
        .arg("build")
        .arg(t.join("spec/spec.yml"))
        .args(["--locked", "-f", "tar", "-o"])
        .arg(&out);
    let failed = build.fails_with(&["not enough space in output directory", "are available"]);
    failed.stderr_has(&[&out.display().to_string()]);
    assert!(list_tree(&out).is_empty(), "{:?}", list_tree(&out));
    // What fits is written.
    hello_build(&t, &out).ok();
    assert!(out.join("hello.tar").is_file(), "{:?}", list_tree(&out));
}

/// Found an empty `.pub` beside a complete `.key` when keygen created both files before
/// writing them (seed 1796408233539612397, round 2).
#[test]
fn keygen_killed_at_random() {
    let mut c = Crash::new("keygen_killed_at_random");
    let t = TestDir::new("crash-keygen");
    let keys = t.mkdir("keys");
    let keygen = |n: u64| t.cairn().args(["keygen", "--out"]).arg(keys.join(format!("k{n}")));
    let max = time_of(&keygen(c.rounds));
    for round in 0..c.rounds {
        if let Some(code) = c.run_killed(&keygen(round), max) {
            assert_eq!(code, 0, "round {round}: keygen failed without being killed");
        }
        for (suffix, end) in
            [(".key", "-----END PRIVATE KEY-----\n"), (".pub", "-----END PUBLIC KEY-----\n")]
        {
            let path = keys.join(format!("k{round}{suffix}"));
            if let Ok(text) = fs::read_to_string(&path) {
                assert!(
                    text.ends_with(end),
                    "round {round}: {} is partial:\n{text}",
                    path.display()
                );
            }
        }
    }
    // The next key written removes the temporary files of killed runs.
    keygen(c.rounds + 1).ok();
    let left: Vec<String> = list_tree(&keys).into_iter().filter(|n| n.starts_with('.')).collect();
    assert!(left.is_empty(), "{left:?}");
}
