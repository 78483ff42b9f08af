//! Byte-identical outputs: the same spec and the same input files give the same bytes
//! whatever the machine's clock, time zone, locale, umask, working directory, home, store
//! location, input file order, modes and mtimes, and with no network. `SOURCE_DATE_EPOCH`
//! is the one environment variable that may change the bytes, and only as documented.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::util::{self, Cairn, HELLO_IMAGES, TestDir, UNSHARE, faketime_works, repo, sha256_file};

/// How one build's environment is set up.
struct Variant {
    name: &'static str,
    tz: &'static str,
    lc_all: &'static str,
    umask: &'static str,
    /// Run from `/` (all paths absolute) instead of from the test directory.
    from_root: bool,
    /// Copy the input files in reverse name order, with private modes.
    reverse: bool,
    /// mtime given to every copied input file.
    mtime: SystemTime,
    /// Copy the spec, its lock and `motd` elsewhere instead of building the repo's.
    copy_spec: bool,
    faketime: bool,
    /// HOME somewhere else (with a space in it), and USER and LOGNAME unset.
    odd_home: bool,
}

/// Copies `src` into `dst` one entry at a time in name order (or its reverse), giving files
/// and directories `mtime` and either the usual modes (0644/0755) or private ones (0600/0700).
fn copy_inputs(src: &Path, dst: &Path, reverse: bool, mtime: SystemTime) {
    fs::create_dir_all(dst).unwrap();
    let mut names: Vec<_> = fs::read_dir(src).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    if reverse {
        names.reverse();
    }
    for n in names {
        let (from, to) = (src.join(&n), dst.join(&n));
        let meta = fs::symlink_metadata(&from).unwrap();
        let exec = meta.permissions().mode() & 0o111 != 0;
        let mode = if meta.is_dir() {
            copy_inputs(&from, &to, reverse, mtime);
            if reverse { 0o700 } else { 0o755 }
        } else {
            fs::copy(&from, &to).unwrap();
            match (reverse, exec) {
                (false, false) => 0o644,
                (false, true) => 0o755,
                (true, false) => 0o600,
                (true, true) => 0o700,
            }
        };
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).unwrap();
        fs::File::open(&to).unwrap().set_modified(mtime).unwrap();
    }
    fs::File::open(dst).unwrap().set_modified(mtime).unwrap();
}

/// Output name → digest: the sha256 of each file, and for the OCI layout the printed
/// manifest digest plus the sha256 of every file inside it.
type Digests = BTreeMap<String, String>;

/// Sets up a fresh store for `v`, imports the hello inputs and builds every format; returns
/// the digests of the outputs.
fn build_variant(v: &Variant) -> Digests {
    let t = TestDir::new(v.name);
    let inputs = t.join("inputs");
    let order: Vec<_> =
        if v.reverse { HELLO_IMAGES.iter().rev().collect() } else { HELLO_IMAGES.iter().collect() };
    for (dir, _) in &order {
        copy_inputs(
            &repo().join("testdata/images").join(dir),
            &inputs.join(dir),
            v.reverse,
            v.mtime,
        );
    }
    let spec = if v.copy_spec {
        let dir = t.mkdir("elsewhere/spec dir");
        for f in ["hello.yml.lock", "motd", "hello.yml"] {
            fs::copy(repo().join("examples").join(f), dir.join(f)).unwrap();
            fs::File::open(dir.join(f)).unwrap().set_modified(v.mtime).unwrap();
        }
        dir.join("hello.yml")
    } else {
        repo().join("examples/hello.yml")
    };
    let store = if v.copy_spec { t.join("a/deeper/store") } else { t.store() };
    let cwd: PathBuf = if v.from_root { "/".into() } else { t.path().to_path_buf() };
    let faketime = v.faketime && faketime_works("determinism under a faked clock");
    let cairn = || {
        let mut c = t
            .cairn()
            .env("CAIRN_STORE", &store)
            .env("TZ", v.tz)
            .env("LC_ALL", v.lc_all)
            .env("LANG", v.lc_all)
            .current_dir(&cwd)
            .umask(v.umask);
        if faketime {
            c = c.wrap(["faketime", "2031-05-06 07:08:09"]);
        }
        if v.odd_home {
            c = c.env("HOME", t.join("another home")).env_remove("USER").env_remove("LOGNAME");
        }
        c
    };
    for (dir, name) in &order {
        cairn().arg("import").arg(inputs.join(dir)).args(["--name", name]).ok();
    }
    let out = t.join("out");
    let mut printed = cairn()
        .arg("build")
        .arg(&spec)
        .args(["--locked", "-f", "tar", "-f", "kernel+initrd", "-f", "oci", "-o"])
        .arg(&out)
        .ok()
        .build_digests();
    printed.extend(
        cairn()
            .arg("build")
            .arg(&spec)
            .args(["--locked", "-f", "kernel+initrd:zstd", "--name", "hello-zstd", "-o"])
            .arg(&out)
            .ok()
            .build_digests(),
    );
    // 5 image outputs + 3 attestations, then 3 image outputs + 3 attestations.
    assert_eq!(printed.len(), 14, "{printed:?}");
    output_digests(&out, &printed)
}

fn output_digests(out: &Path, printed: &[(String, String)]) -> Digests {
    let mut d = Digests::new();
    for (name, hex) in printed {
        let path = out.join(name);
        if path.is_dir() {
            for (rel, h) in util::hash_tree(&path) {
                d.insert(format!("{name}/{rel}"), format!("{h} {}", mode(&path.join(&rel))));
            }
            d.insert(format!("{name} (printed)"), hex.clone());
        } else {
            let h = sha256_file(&path);
            assert_eq!(&h, hex, "printed digest of {name}");
            d.insert(name.clone(), format!("{h} {}", mode(&path)));
        }
    }
    d
}

/// The permission bits of an output, which must not depend on the umask either.
fn mode(path: &Path) -> String {
    format!("{:o}", fs::metadata(path).unwrap().permissions().mode() & 0o7777)
}

fn assert_same(a: &Digests, b: &Digests, what: &str) {
    let differ: Vec<_> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(differ.is_empty(), "{what}: outputs differ:\n{}", differ.join("\n"));
}

#[test]
fn outputs_do_not_depend_on_the_environment() {
    let a = Variant {
        name: "det-a",
        tz: "UTC",
        lc_all: "C",
        umask: "022",
        from_root: false,
        reverse: false,
        mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
        copy_spec: false,
        faketime: false,
        odd_home: false,
    };
    let b = Variant {
        name: "det-b",
        tz: "Pacific/Chatham",
        lc_all: "de_DE.UTF-8",
        umask: "077",
        from_root: true,
        reverse: true,
        mtime: SystemTime::now(),
        copy_spec: true,
        faketime: true,
        odd_home: true,
    };
    let (da, db) = std::thread::scope(|s| {
        let ha = s.spawn(|| build_variant(&a));
        let hb = s.spawn(|| build_variant(&b));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert!(da.len() > 14, "{da:?}");
    assert_same(&da, &db, "UTC/C/022/cwd/ordered vs Chatham/de_DE/077/`/`/reversed/faketime");
}

#[test]
fn builds_without_network() {
    if !UNSHARE.works("build without network", Command::new("unshare").args(["-n", "true"])) {
        return;
    }
    let t = TestDir::new("nonet");
    let online = util::build_hello(&t, &t.join("online")).build_digests();
    let offline =
        util::hello_build(&t, &t.join("offline")).wrap(["unshare", "-n"]).ok().build_digests();
    assert_same(
        &output_digests(&t.join("online"), &online),
        &output_digests(&t.join("offline"), &offline),
        "with vs without network",
    );
}

/// A copy of the hello spec, lock and motd in `t`, returning the spec's path.
fn spec_copy(t: &TestDir) -> PathBuf {
    let dir = t.mkdir("spec");
    for f in ["hello.yml", "hello.yml.lock", "motd"] {
        fs::copy(repo().join("examples").join(f), dir.join(f)).unwrap();
    }
    dir.join("hello.yml")
}

fn build_tar(c: Cairn, spec: &Path, out: &Path) -> Vec<u8> {
    c.arg("build").arg(spec).args(["-f", "tar", "-o"]).arg(out).ok();
    fs::read(out.join("hello.tar")).unwrap()
}

#[test]
fn source_date_epoch_sets_and_clamps_every_mtime() {
    const SDE: u64 = 1_700_000_000;
    let t = TestDir::new("sde");
    t.import_hello();
    let spec = repo().join("examples/hello.yml");
    let plain = build_tar(t.cairn(), &spec, &t.join("plain"));
    let dated = build_tar(t.cairn().env("SOURCE_DATE_EPOCH", SDE.to_string()), &spec, &t.join("d"));
    assert_ne!(plain, dated, "SOURCE_DATE_EPOCH did not change the output");
    for e in util::tar_entries(&plain) {
        assert_eq!(e.mtime, 0, "the lock's date (0) is not used for {e:?}");
    }
    let entries = util::tar_entries(&dated);
    for e in &entries {
        assert!(e.mtime <= SDE, "{e:?} is newer than SOURCE_DATE_EPOCH");
    }
    let mtime_of = |p: &str| entries.iter().find(|e| e.path == p).map(|e| e.mtime);
    assert_eq!(mtime_of("etc/hostname"), Some(SDE), "generated files get exactly the date");
    assert_eq!(mtime_of("boot/cmdline"), Some(SDE));
    assert_eq!(mtime_of("sbin/init"), Some(0), "older layer mtimes stay");

    // Inputs newer than the date are clamped down to it.
    let t2 = TestDir::new("sde-clamp");
    for (dir, name) in HELLO_IMAGES {
        t2.cairn()
            .env("SOURCE_DATE_EPOCH", "1800000000")
            .arg("import")
            .arg(repo().join("testdata/images").join(dir))
            .args(["--name", name])
            .ok();
    }
    let spec2 = spec_copy(&t2);
    t2.cairn().arg("lock").arg(&spec2).ok();
    let clamped =
        build_tar(t2.cairn().env("SOURCE_DATE_EPOCH", SDE.to_string()), &spec2, &t2.join("out"));
    for e in util::tar_entries(&clamped) {
        assert_eq!(e.mtime, SDE, "{e:?} is not clamped to SOURCE_DATE_EPOCH");
    }
    // The same build twice gives the same bytes (built again, not reused from the cache).
    let again = build_tar(
        t2.cairn().env("SOURCE_DATE_EPOCH", SDE.to_string()).env("CAIRN_NO_CACHE", "1"),
        &spec2,
        &t2.join("o2"),
    );
    assert_eq!(clamped, again);
}

#[test]
fn malformed_source_date_epoch_is_an_error() {
    let t = TestDir::new("sde-bad");
    t.import_hello();
    let out = t.join("out");
    for value in ["abc", "-1", "1.5", "99999999999999999999"] {
        let r = t
            .cairn()
            .env("SOURCE_DATE_EPOCH", value)
            .arg("build")
            .arg(repo().join("examples/hello.yml"))
            .args(["-f", "tar", "-o"])
            .arg(&out)
            .fails_with(&["SOURCE_DATE_EPOCH"]);
        r.stderr_has(&[value]);
        assert!(util::list_tree(&out).is_empty(), "output written despite the error");
    }
    t.cairn()
        .env("SOURCE_DATE_EPOCH", "abc")
        .arg("import")
        .arg(repo().join("testdata/images/hello-app"))
        .args(["--name", "x.example/y:1"])
        .fails_with(&["SOURCE_DATE_EPOCH"]);
    t.cairn()
        .env("SOURCE_DATE_EPOCH", "abc")
        .arg("lock")
        .arg(spec_copy(&t))
        .fails_with(&["SOURCE_DATE_EPOCH"]);
}
