//! Several processes on one store or output directory at once, and the leftovers of killed
//! ones: nothing is lost, and garbage is found and removed.

use std::fs;
use std::thread;

use crate::util::{TestDir, list_tree, repo};

/// A PID no process can have (above Linux's largest `pid_max`): a killed process's leftover.
const DEAD_PID: u32 = 2_000_000_000;

#[test]
fn concurrent_imports_lose_no_name() {
    let t = TestDir::new("concurrent-import");
    const N: usize = 8;
    for i in 0..N {
        t.write(format!("rootfs{i}/etc/which"), format!("{i}\n"));
    }
    for round in 0..3 {
        let names: Vec<String> = (0..N).map(|i| format!("x.example/c{i}:r{round}")).collect();
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let cmd = t
                    .cairn()
                    .arg("import")
                    .arg(t.join(format!("rootfs{i}")))
                    .args(["--name", name]);
                thread::spawn(move || cmd.ok())
            })
            .collect();
        for h in handles {
            h.join().expect("an import thread panicked");
        }
        let listed = t.cairn().args(["store", "ls"]).ok().stdout();
        for name in &names {
            assert!(
                listed.lines().any(|l| l.split('\t').next() == Some(name)),
                "round {round}: {name} is missing after concurrent imports:\n{listed}"
            );
        }
        t.cairn().args(["store", "fsck"]).ok();
    }
}

#[test]
fn concurrent_import_and_gc_keep_the_imported_blobs() {
    let t = TestDir::new("import-gc");
    for i in 0..4 {
        t.write(format!("rootfs{i}/etc/which"), format!("{i}\n"));
    }
    let imports: Vec<_> = (0..4)
        .map(|i| {
            let cmd = t
                .cairn()
                .arg("import")
                .arg(t.join(format!("rootfs{i}")))
                .args(["--name", &format!("x.example/g{i}:1")]);
            thread::spawn(move || cmd.ok())
        })
        .collect();
    let gcs: Vec<_> = (0..4)
        .map(|_| {
            let cmd = t.cairn().args(["store", "gc"]);
            thread::spawn(move || cmd.ok())
        })
        .collect();
    for h in imports.into_iter().chain(gcs) {
        h.join().expect("a thread panicked");
    }
    // Every import is complete: fsck finds no missing blob.
    t.cairn().args(["store", "fsck"]).ok();
    let listed = t.cairn().args(["store", "ls"]).ok().stdout();
    assert_eq!(listed.lines().count(), 4, "{listed}");
}

#[test]
fn leftovers_of_killed_imports_are_reported_and_collected() {
    let t = TestDir::new("leftovers");
    t.import_hello();
    let tmp = t.store().join(".tmp");
    let dead_dir = tmp.join(format!("import-{DEAD_PID}-abc"));
    fs::create_dir_all(&dead_dir).unwrap();
    fs::write(dead_dir.join(format!("blob-{DEAD_PID}-x")), "partial").unwrap();
    let dead_file = tmp.join(format!("blob-{DEAD_PID}-def"));
    fs::write(&dead_file, "partial").unwrap();
    // A live process's (this test's) temporary file is not garbage.
    let live = tmp.join(format!("blob-{}-ghi", std::process::id()));
    fs::write(&live, "in progress").unwrap();

    let fsck = t.cairn().args(["store", "fsck"]).ok().stdout();
    for p in [&dead_dir, &dead_file] {
        assert!(fsck.contains(&format!("leftover\t{}", p.display())), "{fsck}");
    }
    assert!(!fsck.contains(&live.display().to_string()), "{fsck}");

    t.cairn().args(["store", "gc"]).ok();
    assert!(!dead_dir.exists() && !dead_file.exists());
    assert!(live.exists());
    let fsck = t.cairn().args(["store", "fsck"]).ok().stdout();
    assert!(!fsck.contains("leftover"), "{fsck}");
}

#[test]
fn a_build_removes_staging_of_dead_builds_only() {
    let t = TestDir::new("stale-staging");
    t.import_hello();
    let out = t.mkdir("out");
    let dead = t.mkdir(format!("out/.cairn-build-{DEAD_PID}-abc"));
    fs::write(dead.join("image.tar"), "partial").unwrap();
    let live = t.mkdir(format!("out/.cairn-build-{}-def", std::process::id()));
    t.cairn()
        .arg("build")
        .arg(repo().join("examples/hello.yml"))
        .args(["--locked", "-f", "tar", "-o"])
        .arg(&out)
        .ok();
    let left = list_tree(&out);
    assert!(!dead.exists(), "a dead build's staging directory is still there: {left:?}");
    assert!(live.exists(), "a live build's staging directory was removed: {left:?}");
}

/// Found by `crash::build_and_gc_killed_beside_a_concurrent_gc` (seed 1796406600414342347):
/// `store fsck` failed with "cannot open …: No such file or directory" when a concurrent
/// `gc` collected a blob between fsck's listing and its rehash, and could report blobs of a
/// re-tagged image as missing when gc removed them between fsck's reading of the index and
/// its walk.
#[test]
fn fsck_beside_retags_and_gc_finds_nothing_wrong() {
    let t = TestDir::new("fsck-gc");
    for i in 0..2 {
        t.write(format!("rootfs{i}/etc/noise"), vec![i as u8; 256 << 10]);
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        let churn = s.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let root = t.join(format!("rootfs{}", n % 2));
                t.cairn().arg("import").arg(root).args(["--name", "x.example/churn:1"]).ok();
                t.cairn().args(["store", "gc"]).ok();
                n += 1;
            }
        });
        let fscks: Vec<_> = (0..30).map(|_| t.cairn().args(["store", "fsck"]).run()).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().expect("the import and gc thread panicked");
        for f in fscks {
            f.expect_code(0);
        }
    });
}
