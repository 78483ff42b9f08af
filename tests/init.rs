//! The payload's init and the built-in runner, run for real: as root, inside a private
//! mount namespace (`unshare -m --propagation private`), on bundles built from a static
//! busybox (Debian `busybox-static`). Skips loudly when not root or when busybox is
//! missing (a missing busybox fails under `CI=true` or `CAIRN_REQUIRE_QEMU=1`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::{self, Cairn, TestDir};

/// Whether the system tests can run here; prints why not.
fn can_run(test: &str) -> bool {
    if !nix_is_root() {
        eprintln!("SKIPPED {test}: the runner tests need root (mount, unshare, pivot_root)");
        return false;
    }
    util::BUSYBOX.found(test)
}

fn nix_is_root() -> bool {
    // The test crate has no libc dependency: read the effective uid from /proc.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn caps(list: &[&str]) -> Value {
    json!({ "bounding": list, "effective": list, "inheritable": list, "permitted": list })
}

/// The mounts LinuxKit gives every container (as cairn's assemble writes them), minus the
/// cgroup one.
fn std_mounts() -> Value {
    json!([
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "nodev", "noexec", "relatime"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev"]}
    ])
}

/// Writes a bundle at `dir`: busybox in `rootfs/` (read-only) or `lower/` (writable, with
/// LinuxKit's tmpfs + overlay runtime mounts), running `sh -c script`.
fn bundle(dir: &Path, script: &str, readonly: bool, edit: impl FnOnce(&mut Value)) {
    let image = dir.join(if readonly { "rootfs" } else { "lower" });
    for d in ["bin", "work", "dev", "proc", "sys", "tmp"] {
        fs::create_dir_all(image.join(d)).unwrap();
    }
    fs::copy(util::BUSYBOX.name, image.join("bin/busybox")).unwrap();
    fs::set_permissions(image.join("work"), fs::Permissions::from_mode(0o1777)).unwrap();
    bundle_on(dir, &image, script, readonly, edit);
}

/// Writes a bundle at `dir` whose image files are at `image`: its own (see [`bundle`]) or,
/// as cairn lays out containers of the same image, another bundle's copy, which its
/// runtime.json mounts (a bind mount when read-only, else the lower layer of its overlay).
fn bundle_on(
    dir: &Path,
    image: &Path,
    script: &str,
    readonly: bool,
    edit: impl FnOnce(&mut Value),
) {
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/busybox", "sh", "-c", script],
            "env": ["PATH=/bin", "HELLO=hello from the env"],
            "cwd": "/work",
            "capabilities": caps(&["CAP_CHOWN", "CAP_NET_BIND_SERVICE"])
        },
        "root": {"path": "rootfs", "readonly": readonly},
        "mounts": std_mounts(),
        "linux": {"resources": {}, "namespaces": [{"type": "mount"}]}
    });
    if !readonly {
        config["root"].as_object_mut().unwrap().remove("readonly");
    }
    edit(&mut config);
    let (d, i) = (dir.display(), image.display());
    let mounts = if readonly {
        json!([{"destination": format!("{d}/rootfs"), "source": format!("{i}"),
                "options": ["bind"]}])
    } else {
        json!([
            {"destination": format!("{d}/tmp"), "type": "tmpfs", "source": "tmpfs"},
            {"destination": format!("{d}/tmp"), "options": ["remount", "private"]},
            {"destination": format!("{d}/rootfs"), "type": "overlay", "source": "overlay",
             "options": [format!("lowerdir={i}"), format!("upperdir={d}/tmp/upper"),
                         format!("workdir={d}/tmp/work")]}
        ])
    };
    let runtime = json!({"cgroups": [], "mounts": mounts, "mkdir": [], "interfaces": [],
        "bindNS": {}, "namespace": ""});
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    fs::write(dir.join("runtime.json"), serde_json::to_vec_pretty(&runtime).unwrap()).unwrap();
}

/// One runner test's directory with a bundle at `bundle/` (see [`bundle`]), or `None` (after
/// a skip note) when the runner tests cannot run here.
fn one_bundle(
    test: &str,
    script: &str,
    readonly: bool,
    edit: impl FnOnce(&mut Value),
) -> Option<(TestDir, PathBuf)> {
    if !can_run(test) {
        return None;
    }
    let t = TestDir::new(test);
    let b = t.join("bundle");
    bundle(&b, script, readonly, edit);
    Some((t, b))
}

/// `cairn internal run-bundle BUNDLE` inside a private mount namespace.
fn run_bundle(t: &TestDir, b: &Path) -> Cairn {
    internal(t, &[]).arg("run-bundle").arg(b)
}

/// `cairn internal ARGS` inside a private mount namespace (and the extra `unshare` flags).
fn internal(t: &TestDir, unshare_flags: &[&str]) -> Cairn {
    let mut wrapper = vec!["unshare", "-m", "--propagation", "private"];
    wrapper.extend_from_slice(unshare_flags);
    t.cairn().wrap(wrapper).arg("internal")
}

#[test]
fn run_bundle_readonly_sets_env_cwd_user_and_capabilities() {
    let Some((t, b)) = one_bundle(
        "run_bundle_readonly_sets_env_cwd_user_and_capabilities",
        "echo $HELLO; pwd; id -u; grep CapEff /proc/self/status; grep CapBnd /proc/self/status; \
         ls /dev/null; touch /x 2>/dev/null && echo WRITABLE || echo READONLY",
        true,
        |_| {},
    ) else {
        return;
    };
    let out = run_bundle(&t, &b).ok();
    let lines: Vec<String> = out.stdout().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "hello from the env",
            "/work",
            "0",
            // CAP_CHOWN (0) | CAP_NET_BIND_SERVICE (10)
            "CapEff:\t0000000000000401",
            "CapBnd:\t0000000000000401",
            "/dev/null",
            "READONLY"
        ],
        "{}",
        out.report()
    );
}

/// A read-only container's `/dev` tmpfs is mounted `ro` (LinuxKit's readonly transform): its
/// mount points and device nodes must still be created, and it must end up read-only.
#[test]
fn run_bundle_readonly_dev_gets_its_mount_points_and_devices() {
    let Some((t, b)) = one_bundle(
        "run_bundle_readonly_dev_gets_its_mount_points_and_devices",
        "test -c /dev/null && test -d /dev/pts && echo DEVICES; \
         touch /dev/x 2>/dev/null && echo DEV-WRITABLE || echo DEV-READONLY",
        true,
        |config| {
            let mut mounts = std_mounts();
            for m in mounts.as_array_mut().unwrap() {
                if m["destination"] == "/dev" || m["destination"] == "/dev/pts" {
                    m["options"].as_array_mut().unwrap().push(json!("ro"));
                }
            }
            config["mounts"] = mounts;
        },
    ) else {
        return;
    };
    // The image has no dev/pts directory: it must be created inside the read-only /dev.
    let _ = fs::remove_dir_all(b.join("rootfs/dev"));
    fs::create_dir_all(b.join("rootfs/dev")).unwrap();
    let out = run_bundle(&t, &b).ok();
    let lines: Vec<String> = out.stdout().lines().map(str::to_string).collect();
    assert_eq!(lines, ["DEVICES", "DEV-READONLY"], "{}", out.report());
}

#[test]
fn run_bundle_overlay_is_writable_and_leaves_the_image_alone() {
    let Some((t, b)) = one_bundle(
        "run_bundle_overlay_is_writable_and_leaves_the_image_alone",
        "echo written > /work/new; cat /work/new; id -u; id -G; grep CapEff /proc/self/status; exit 7",
        false,
        |c| {
            // A non-root user keeps only its ambient capabilities across exec.
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [27]});
            c["process"]["capabilities"]["ambient"] = json!(["CAP_NET_BIND_SERVICE"]);
            c["process"]["cwd"] = json!("/");
        },
    ) else {
        return;
    };
    let out = run_bundle(&t, &b).code(7);
    assert_eq!(
        out.stdout(),
        "written\n1000\n1000 27\nCapEff:\t0000000000000400\n",
        "{}",
        out.report()
    );
    assert!(!b.join("lower/work/new").exists(), "the overlay wrote into lower/");
}

#[test]
fn run_bundle_new_uts_and_pid_namespaces() {
    let Some((t, b)) = one_bundle(
        "run_bundle_new_uts_and_pid_namespaces",
        "hostname; echo pid=$$; ls /proc | grep -c '^[0-9]'",
        true,
        |c| {
            c["hostname"] = json!("cairn-box");
            c["linux"]["namespaces"] =
                json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]);
        },
    ) else {
        return;
    };
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = run_bundle(&t, &b).ok();
    // PID 1 of its namespace, and alone there (sh, ls and grep may all be counted).
    let stdout = out.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["cairn-box", "pid=1"], "{}", out.report());
    assert!(lines[2].parse::<u32>().unwrap() <= 3, "{}", out.report());
    assert_eq!(fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host_before);
}

#[test]
fn run_bundle_refuses_a_bad_bundle_naming_it() {
    let t = TestDir::new("init-bad");
    t.write("b/config.json", "{ not json");
    let out = t.cairn().args(["internal", "run-bundle"]).arg(t.join("b")).code(2);
    out.stderr_has(&["bundle", "b", "config.json is not valid"]);
    t.write(
        "c/config.json",
        r#"{"process":{"args":["/x"]},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"user"}]}}"#,
    );
    let out = t.cairn().args(["internal", "run-bundle"]).arg(t.join("c")).code(2);
    out.stderr_has(&["user namespaces", "not supported by cairn's built-in runner"]);
}

/// Runs `body` with a test directory and the path of its `containers/` directory (not yet
/// made), unless the runner tests cannot run here (then it notes the skip).
fn with_containers(test: &str, body: impl FnOnce(&TestDir, &Path)) {
    if can_run(test) {
        let t = TestDir::new(test);
        body(&t, &t.join("containers"));
    }
}

#[test]
fn init_runs_onboot_services_and_onshutdown_in_order() {
    with_containers("init_runs_onboot_services_and_onshutdown_in_order", |t, c| {
        let ns =
            |c: &mut Value| c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}]);
        bundle(&c.join("onboot/000-first"), "echo MARK-first", true, ns);
        bundle(&c.join("onboot/001-second"), "echo MARK-second; exit 3", false, ns);
        bundle(&c.join("services/svc"), "echo MARK-service", true, ns);
        bundle(&c.join("onshutdown/000-bye"), "echo MARK-bye", true, ns);
        let out = run_init(t, c);
        assert_in_order(
            &out,
            &[
                "cairn-init: starting (pid 1)",
                "MARK-first",
                "cairn-init: onboot 000-first exited 0",
                "MARK-second",
                "cairn-init: onboot 001-second exited 3",
                "cairn-init: service svc started",
                "MARK-service",
                "cairn-init: service svc exited 0",
                "cairn-init: all services exited",
                "MARK-bye",
                "cairn-init: onshutdown 000-bye exited 0",
                "cairn-init: power off",
            ],
        );
    });
}

/// `cairn internal init` on the bundles under `containers`, as PID 1 of a new PID namespace:
/// reboot(RB_POWER_OFF) there ends the namespace with SIGINT.
fn run_init(t: &TestDir, containers: &Path) -> util::Outcome {
    let out = internal(t, &["-p", "-f", "-u"])
        .args(["init", "--no-mount", "--containers"])
        .arg(containers)
        .run();
    let status = out.output.status;
    assert!(
        status.signal() == Some(2) || status.code() == Some(130),
        "expected the namespace to end with SIGINT{}",
        out.report()
    );
    out
}

fn assert_in_order(out: &util::Outcome, order: &[&str]) {
    let stdout = out.stdout();
    let mut at = 0;
    for needle in order {
        let found = stdout[at..].find(needle);
        assert!(found.is_some(), "{needle:?} missing or out of order{}", out.report());
        at += found.unwrap() + needle.len();
    }
}

/// Containers of the same image share one copy, as cairn lays them out: the first holds it
/// in its `lower/`, a read-only one binds it, a writable one overlays it. All run, none of
/// them can change the shared copy, and a writable one's changes stay its own.
#[test]
fn init_runs_containers_sharing_one_copy_of_their_image() {
    with_containers("init_runs_containers_sharing_one_copy_of_their_image", |t, c| {
        let lower = c.join("onboot/000-first/lower");
        bundle(
            &c.join("onboot/000-first"),
            "echo first > /work/mark; echo MARK-$(cat /work/mark)",
            false,
            |_| {},
        );
        bundle_on(
            &c.join("onboot/001-ro"),
            &lower,
            "ls /work/mark 2>/dev/null || echo MARK-ro-clean; \
             touch /work/x 2>/dev/null && echo MARK-ro-writable || echo MARK-ro-readonly",
            true,
            |_| {},
        );
        bundle_on(
            &c.join("services/svc"),
            &lower,
            "ls /work/mark 2>/dev/null || echo MARK-svc-clean; echo svc > /work/svc; \
             echo MARK-$(cat /work/svc)",
            false,
            |_| {},
        );
        let out = run_init(t, c);
        assert_in_order(
            &out,
            &[
                "MARK-first",
                "cairn-init: onboot 000-first exited 0",
                "MARK-ro-clean",
                "MARK-ro-readonly",
                "cairn-init: onboot 001-ro exited 0",
                "MARK-svc-clean",
                "MARK-svc",
                "cairn-init: service svc exited 0",
            ],
        );
        let left: Vec<_> =
            fs::read_dir(lower.join("work")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "the shared copy was changed: {left:?}");
        assert!(!c.join("services/svc/lower").exists());
    });
}
