use super::*;

/// config.json and runtime.json as cairn's assemble writes them for `examples/hello.yml`'s
/// `greeter` service (a writable container).
const GREETER_CONFIG: &str = r#"{
    "ociVersion": "1.0.2",
    "process": {
        "user": { "uid": 0, "gid": 0 },
        "args": [ "/bin/hello" ],
        "cwd": "/",
        "capabilities": {
            "bounding": [ "CAP_NET_BIND_SERVICE" ],
            "effective": [ "CAP_NET_BIND_SERVICE" ],
            "inheritable": [ "CAP_NET_BIND_SERVICE" ],
            "permitted": [ "CAP_NET_BIND_SERVICE" ]
        }
    },
    "root": { "path": "rootfs" },
    "mounts": [
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
          "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
        { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
          "options": [ "nosuid", "noexec", "nodev", "relatime", "ro" ] }
    ],
    "linux": {
        "resources": {},
        "namespaces": [ { "type": "pid" }, { "type": "mount" }, { "type": "cgroup" } ]
    }
}"#;

const GREETER_RUNTIME: &str = r#"{
    "cgroups": [],
    "mounts": [
        { "destination": "/containers/services/greeter/tmp", "type": "tmpfs", "source": "tmpfs" },
        { "destination": "/containers/services/greeter/tmp", "options": [ "remount", "private" ] },
        { "destination": "/containers/services/greeter/rootfs", "type": "overlay", "source": "overlay",
          "options": [ "lowerdir=/containers/services/greeter/lower",
                       "upperdir=/containers/services/greeter/tmp/upper",
                       "workdir=/containers/services/greeter/tmp/work" ] }
    ],
    "mkdir": [],
    "interfaces": [],
    "bindNS": { "cgroup": "", "ipc": "", "mnt": "", "net": "", "pid": "", "user": "", "uts": "" },
    "namespace": ""
}"#;

const BUNDLE: &str = "/containers/services/greeter";

fn greeter() -> BundlePlan {
    plan(Path::new(BUNDLE), GREETER_CONFIG.as_bytes(), Some(GREETER_RUNTIME.as_bytes())).unwrap()
}

/// GREETER_CONFIG with `edit` applied.
fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<BundlePlan, PlanError> {
    let mut v: serde_json::Value = serde_json::from_str(GREETER_CONFIG).unwrap();
    edit(&mut v);
    plan(Path::new(BUNDLE), &serde_json::to_vec(&v).unwrap(), None)
}

fn err(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    edited(edit).unwrap_err().to_string()
}

#[test]
fn plans_the_bundle_assemble_writes() {
    let p = greeter();
    assert_eq!(p.id(), "greeter");
    assert_eq!(p.rootfs, Path::new("/containers/services/greeter/rootfs"));
    assert!(!p.readonly_root);
    assert_eq!(
        p.namespaces,
        [
            NsOp::New(CloneFlags::CLONE_NEWPID),
            NsOp::New(CloneFlags::CLONE_NEWNS),
            NsOp::New(CloneFlags::CLONE_NEWCGROUP)
        ]
    );
    assert!(p.new_pid_ns());
    assert_eq!(p.process.args, ["/bin/hello"]);
    assert_eq!(p.process.cwd, Path::new("/"));
    assert_eq!(p.process.caps.bounding, [Capability::CAP_NET_BIND_SERVICE]);
    assert!(p.process.caps.ambient.is_empty());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    // runtime.json: tmpfs, remount private, overlay.
    assert_eq!(p.prepare.len(), 3);
    assert_eq!(p.prepare[0].fstype, "tmpfs");
    assert!(p.prepare[0].needs_mount());
    assert_eq!(p.prepare[1].flags, MsFlags::MS_REMOUNT);
    assert_eq!(p.prepare[1].propagation, [MsFlags::MS_PRIVATE]);
    assert_eq!(p.prepare[2].fstype, "overlay");
    assert!(p.prepare[2].data.starts_with("lowerdir=/containers/services/greeter/lower,upperdir="));

    // config.json mounts: flags and data split as runc does.
    let dev = &p.mounts[0];
    assert_eq!(dev.target, Path::new("/dev"));
    assert_eq!(dev.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
    assert_eq!(dev.data, "mode=755,size=65536k");
    let cg = &p.mounts[1];
    assert!(cg.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_RELATIME));
}

#[test]
fn no_runtime_json_means_nothing_to_prepare_and_mount_ns_is_always_new() {
    let p = edited(|v| v["linux"]["namespaces"] = serde_json::json!([])).unwrap();
    assert!(p.prepare.is_empty());
    assert_eq!(p.namespaces, [NsOp::New(CloneFlags::CLONE_NEWNS)]);
    assert!(!p.new_pid_ns());
}

#[test]
fn bind_options_and_propagation() {
    let p = edited(|v| {
        v["mounts"] = serde_json::json!([
            {"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf",
             "options": ["rbind", "ro", "rshared", "nosuid"]},
            {"destination": "/var", "source": "/var", "options": ["bind", "rw", "private"]}
        ])
    })
    .unwrap();
    let m = &p.mounts[0];
    assert!(m.is_bind() && m.fstype.is_empty());
    assert_eq!(m.propagation, [MsFlags::MS_SHARED | MsFlags::MS_REC]);
    assert_eq!(
        m.bind_remount_flags(),
        Some(MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID)
    );
    assert_eq!(p.mounts[1].bind_remount_flags(), None);
    assert_eq!(p.mounts[1].propagation, [MsFlags::MS_PRIVATE]);
}

#[test]
fn joins_namespaces_by_path_and_sets_hostname_with_uts() {
    let p = edited(|v| {
        v["hostname"] = "box".into();
        v["linux"]["namespaces"] = serde_json::json!([
            {"type": "uts"}, {"type": "network", "path": "/run/netns/x"}, {"type": "ipc"}
        ]);
    })
    .unwrap();
    assert_eq!(p.hostname.as_deref(), Some("box"));
    assert!(p.namespaces.contains(&NsOp::Join(CloneFlags::CLONE_NEWNET, "/run/netns/x".into())));
    assert!(p.namespaces.contains(&NsOp::New(CloneFlags::CLONE_NEWIPC)));
}

#[test]
fn parses_rlimits_user_and_env() {
    let p = edited(|v| {
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}]);
        v["process"]["user"] = serde_json::json!({"uid": 100, "gid": 101, "additionalGids": [5]});
        v["process"]["env"] = serde_json::json!(["A=1", "PATH=/bin"]);
        v["process"]["noNewPrivileges"] = true.into();
        v["root"]["readonly"] = true.into();
    })
    .unwrap();
    assert_eq!(
        p.process.rlimits,
        [RlimitOp { resource: Resource::RLIMIT_NOFILE, soft: 512, hard: 1024 }]
    );
    assert_eq!(
        (p.process.uid, p.process.gid, p.process.additional_gids.as_slice()),
        (100, 101, &[5][..])
    );
    assert!(p.process.no_new_privileges && p.readonly_root);
}

#[test]
fn bad_json_names_the_bundle_and_file() {
    let e = plan(Path::new(BUNDLE), b"{ nope", None).unwrap_err().to_string();
    assert!(e.contains(BUNDLE) && e.contains("config.json is not valid"), "{e}");
    let e =
        plan(Path::new(BUNDLE), GREETER_CONFIG.as_bytes(), Some(b"[1]")).unwrap_err().to_string();
    assert!(e.contains(BUNDLE) && e.contains("runtime.json is not valid"), "{e}");
}

type Edit = dyn FnOnce(&mut serde_json::Value);

#[test]
fn refuses_bad_or_unsupported_configs_with_a_clear_reason() {
    let cases: Vec<(Box<Edit>, &str)> = vec![
        (Box::new(|v| v["process"]["args"] = serde_json::json!([])), "process.args: no program"),
        (Box::new(|v| drop(v.as_object_mut().unwrap().remove("process"))), "process: missing"),
        (
            Box::new(|v| v["linux"]["namespaces"] = serde_json::json!([{"type": "time"}])),
            "unknown namespace type \"time\"",
        ),
        (
            Box::new(|v| v["linux"]["namespaces"] = serde_json::json!([{"type": "user"}])),
            "user namespaces is not supported",
        ),
        (
            Box::new(|v| {
                v["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"})
            }),
            "linux.seccomp is not supported",
        ),
        (
            Box::new(|v| v["hooks"] = serde_json::json!({"prestart": [{"path": "/x"}]})),
            "hooks is not supported",
        ),
        (Box::new(|v| v["process"]["apparmorProfile"] = "p".into()), "apparmorProfile"),
        (
            Box::new(|v| {
                v["process"]["capabilities"]["effective"] = serde_json::json!(["CAP_NOPE"])
            }),
            "unknown capability \"CAP_NOPE\"",
        ),
        (
            Box::new(|v| {
                v["process"]["capabilities"]["effective"] = serde_json::json!(["CAP_KILL"])
            }),
            "CAP_KILL is effective but not permitted",
        ),
        (Box::new(|v| v["hostname"] = "h".into()), "hostname: set without a new uts namespace"),
        (
            Box::new(|v| {
                v["mounts"] = serde_json::json!([{"destination": "/a/../../etc", "type": "tmpfs"}])
            }),
            "contains '..'",
        ),
        (
            Box::new(|v| {
                v["process"]["rlimits"] =
                    serde_json::json!([{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}])
            }),
            "unknown rlimit",
        ),
        (Box::new(|v| v["process"]["env"] = serde_json::json!(["NOEQUALS"])), "not NAME=VALUE"),
        (Box::new(|v| v["root"]["path"] = "".into()), "root.path: empty"),
    ];
    for (edit, needle) in cases {
        let e = err(edit);
        assert!(e.contains(needle), "{e:?} does not contain {needle:?}");
        assert!(e.starts_with(&format!("bundle {BUNDLE}: ")), "{e}");
    }
}

#[test]
fn ignored_runtime_features_are_warnings() {
    let rt = br#"{"cgroups": ["podruntime/x"], "interfaces": [{"name": "eth0"}],
                 "bindNS": {"net": "/run/netns/x"}}"#;
    let p = plan(Path::new(BUNDLE), GREETER_CONFIG.as_bytes(), Some(rt)).unwrap();
    assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
}

#[test]
fn capability_names_may_omit_the_prefix() {
    assert_eq!(parse_capability("net_admin").unwrap(), Capability::CAP_NET_ADMIN);
    assert_eq!(parse_capability("CAP_BPF").unwrap(), Capability::CAP_BPF);
}

#[test]
fn runtime_alone_is_planned_for_runc() {
    let rt = plan_runtime(Path::new(BUNDLE), Some(GREETER_RUNTIME.as_bytes())).unwrap();
    assert_eq!(rt.prepare.len(), 3);
    assert!(rt.mkdir.is_empty() && rt.warnings.is_empty());
    let e = plan_runtime(Path::new(BUNDLE), Some(br#"{"mounts": [{"destination": "rel"}]}"#))
        .unwrap_err();
    assert!(
        matches!(&e, PlanError::Field { field: "runtime.json mounts", source: FieldError::NotAbsolute(p), .. } if p == "rel"),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(e.contains("\"rel\" is not an absolute path"), "{e}");
}
