//! Tests of bundle generation: spec and label fields reaching `config.json`, error
//! messages, byte-identical output, and `runtime.json`.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;

use super::*;
use crate::spec::{self, Container};
use crate::tree::TreePath;
use serde_json::{Value, json};

fn image(
    entrypoint: &[&str],
    cmd: &[&str],
    env: &[&str],
    label: Option<&str>,
) -> ImageConfiguration {
    let mut cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Env": env,
            "WorkingDir": "/srv",
        }
    });
    if let Some(l) = label {
        cfg["config"]["Labels"] = json!({ LABEL: l });
    }
    serde_json::from_value(cfg).unwrap()
}

fn container(yaml: &str) -> Container {
    let spec = spec::parse("t.yml", yaml).unwrap();
    spec.services[0].clone()
}

fn value(cfg: &OciConfig) -> Value {
    serde_json::from_slice(&render_config_json(cfg)).unwrap()
}

#[test]
fn spec_fields_reach_the_config() {
    let img = image(&["/bin/entry"], &["--flag"], &["PATH=/usr/bin", "A=1"], None);
    let c = container(
        "services:\n  - name: web\n    image: nginx\n    command: [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]\n    env: [\"A=2\", \"B=3\"]\n    binds: [\"/var/log:/var/log\", \"/etc/ssl:/etc/ssl:ro\"]\n    capabilities: [CAP_NET_BIND_SERVICE, CAP_CHOWN]\n    net: host\n    hostname: web1\n    readonly: true\n    sysctl: {net.core.somaxconn: \"1024\"}\n    rlimits: [\"nofile,1024,unlimited\"]\n    annotations: {b: \"2\", a: \"1\"}\n    oomScoreAdj: -100\n    noNewPrivileges: true\n",
    );
    let b = runtime_config(&img, &c, &BTreeMap::new()).unwrap();
    let v = value(&b.oci);
    assert_eq!(v["ociVersion"], "1.0.2");
    assert_eq!(v["process"]["args"], json!(["/usr/sbin/nginx", "-g", "daemon off;"]));
    assert_eq!(
        v["process"]["env"],
        json!(["A=2", "B=3"]),
        "spec env replaces the image's, as in LinuxKit"
    );
    assert_eq!(v["process"]["cwd"], "/srv");
    assert_eq!(v["process"]["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(
        v["process"]["capabilities"]["effective"],
        json!(["CAP_NET_BIND_SERVICE", "CAP_CHOWN"])
    );
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        json!(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"])
    );
    assert_eq!(
        v["process"]["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "hard": u64::MAX, "soft": 1024}])
    );
    assert_eq!(v["process"]["oomScoreAdj"], -100);
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(v["hostname"], "web1");
    assert_eq!(v["annotations"], json!({"a": "1", "b": "2"}));
    assert_eq!(v["linux"]["sysctl"], json!({"net.core.somaxconn": "1024"}));
    let kinds: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pid", "mount", "cgroup"], "net: host shares the host network namespace");
    let mounts = v["mounts"].as_array().unwrap();
    let dests: Vec<&str> = mounts.iter().map(|m| m["destination"].as_str().unwrap()).collect();
    assert_eq!(
        dests,
        ["/dev", "/dev/pts", "/etc/ssl", "/proc", "/sys", "/sys/fs/cgroup", "/var/log"]
    );
    let ssl = &mounts[2];
    assert_eq!(
        ssl,
        &json!({"destination": "/etc/ssl", "type": "bind", "source": "/etc/ssl", "options": ["ro", "rbind"]})
    );
    assert_eq!(mounts[6]["options"], json!(["rw", "rbind", "rshared"]));
    assert_eq!(
        mounts[0]["options"],
        json!(["nosuid", "strictatime", "mode=755", "size=65536k", "ro"])
    );
    // The output is a valid OCI runtime config.
    let parsed: oci_spec::runtime::Spec =
        serde_json::from_slice(&render_config_json(&b.oci)).unwrap();
    assert_eq!(parsed.hostname().as_deref(), Some("web1"));
}

#[test]
fn image_defaults_and_label() {
    let label =
        r#"{"binds":["/dev:/dev"],"capabilities":["CAP_SYS_ADMIN"],"net":"new","pid":"host"}"#;
    let img = image(&["/sbin/getty"], &["-l"], &["PATH=/bin", "TERM=linux"], Some(label));
    let c = container(
        "services:\n  - name: getty\n    image: linuxkit/getty:v1\n    binds.add: [\"/etc/profile:/etc/profile\"]\n    capabilities.add: [CAP_SYS_TTY_CONFIG]\n    env: [\"INSECURE=true\"]\n",
    );
    let b = runtime_config(&img, &c, &BTreeMap::new()).unwrap();
    let o = &b.oci;
    assert_eq!(o.process.args, ["/sbin/getty", "-l"]);
    assert_eq!(o.process.env, ["INSECURE=true"]);
    assert_eq!(o.process.capabilities.effective, ["CAP_SYS_ADMIN", "CAP_SYS_TTY_CONFIG"]);
    let binds: Vec<&str> =
        o.mounts.iter().filter(|m| m.kind == "bind").map(|m| m.destination.as_str()).collect();
    assert_eq!(binds, ["/dev", "/etc/profile"]);
    let kinds: Vec<&str> = o.linux.namespaces.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, ["network", "mount", "cgroup"]);
    assert!(!o.root.readonly);
}

#[test]
fn no_command_anywhere_uses_entrypoint_and_cmd() {
    let img = image(&["/a"], &["b", "c"], &[], None);
    let c = container(
        "services:\n  - name: x\n    image: alpine\n    capabilities: [all]\n    uid: x\n    gid: 7\n",
    );
    let mut ids = BTreeMap::new();
    ids.insert("x".to_string(), 100);
    let b = runtime_config(&img, &c, &ids).unwrap();
    assert_eq!(b.oci.process.args, ["/a", "b", "c"]);
    assert_eq!(b.oci.process.user.uid, 100);
    assert_eq!(b.oci.process.user.gid, 7);
    assert_eq!(b.oci.process.capabilities.effective.len(), ALL_CAPABILITIES.len());
}

#[test]
fn output_is_byte_identical() {
    let img = image(&["/e"], &[], &["Z=1", "A=2", "M=3"], None);
    let c = container(
        "services:\n  - name: x\n    image: alpine\n    annotations: {z: \"1\", a: \"2\"}\n    sysctl: {b: \"1\", a: \"2\"}\n    tmpfs: [\"/run:size=1m\", \"/tmp\"]\n",
    );
    let a = render_config_json(&runtime_config(&img, &c, &BTreeMap::new()).unwrap().oci);
    let b = render_config_json(&runtime_config(&img, &c, &BTreeMap::new()).unwrap().oci);
    assert_eq!(a, b);
    assert!(a.ends_with(b"}\n"));
    let text = String::from_utf8(a).unwrap();
    assert!(
        text.contains(
            "\"env\": [\n            \"Z=1\",\n            \"A=2\",\n            \"M=3\"\n        ]"
        ),
        "{text}"
    );
    assert!(text.find("\"a\": \"2\"").unwrap() < text.find("\"z\": \"1\"").unwrap());
}

#[test]
fn bad_rlimit_names_the_container() {
    let img = image(&[], &[], &[], None);
    for bad in ["nofile,1024", "nofiles,1,1", "nofile,lots,1"] {
        let c = container(&format!(
            "services:\n  - name: sshd\n    image: alpine\n    rlimits: [\"{bad}\"]\n"
        ));
        let e = runtime_config(&img, &c, &BTreeMap::new()).unwrap_err();
        let BundleError::Invalid { field: "rlimits", source, .. } = &e else { panic!("{e:?}") };
        assert!(matches!(source, FieldError::Unparsable { .. } | FieldError::Rlimit { .. }));
        assert!(e.to_string().starts_with("container \"sshd\": rlimits: "), "{e}");
    }
}

#[test]
fn other_bad_fields() {
    let img = image(&[], &[], &[], None);
    let cases = [
        ("capabilities: [CAP_FLY]", "unknown capability"),
        ("binds: [\"/a\"]", "missing ':'"),
        ("binds: [\"/a:/b:ro:x\"]", "too many ':'"),
        ("uid: nobody", "cannot find id"),
        (
            "devices: [{path: /dev/x, type: c, major: 1, minor: 3, mode: \"9\"}]",
            "not an octal value",
        ),
        ("mounts: [{destination: /x}]", "missing type"),
    ];
    for (field, want) in cases {
        let c = container(&format!("services:\n  - name: s\n    image: alpine\n    {field}\n"));
        let e = runtime_config(&img, &c, &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains(want), "{field}: {e}");
    }
    let img = image(&[], &[], &[], Some("{\"name\": \"x\"}"));
    let c = container("services:\n  - name: s\n    image: alpine\n");
    let e = runtime_config(&img, &c, &BTreeMap::new()).unwrap_err();
    let BundleError::Label { source, .. } = &e else { panic!("{e:?}") };
    assert!(matches!(**source, spec::SpecError::Label { .. }), "{e:?}");
    assert!(e.to_string().contains("org.mobyproject.config is invalid"), "{e}");
}

#[test]
fn devices_become_nodes_and_cgroup_rules() {
    let img = image(&[], &[], &[], None);
    let c = container(
        "services:\n  - name: s\n    image: alpine\n    devices:\n      - {path: /dev/null, type: c, major: 1, minor: 3, mode: \"0666\"}\n      - {path: all, type: b}\n",
    );
    let o = runtime_config(&img, &c, &BTreeMap::new()).unwrap().oci;
    assert_eq!(
        o.linux.devices,
        [LinuxDevice {
            path: "/dev/null".into(),
            kind: "c".into(),
            major: 1,
            minor: 3,
            file_mode: 0o666
        }]
    );
    assert_eq!(o.linux.resources.devices.len(), 2);
}

#[test]
fn runtime_json() {
    let img = image(&[], &[], &[], None);
    let c = container(
        "services:\n  - name: s\n    image: alpine\n    runtime:\n      mkdir: [/var/lib/s]\n      bindNS: {net: /run/netns/s}\n      mounts: [{type: bind, source: /a, destination: /b}]\n",
    );
    let b = runtime_config(&img, &c, &BTreeMap::new()).unwrap();
    let dir = bundle_dir(Role::Service, 0, "s").unwrap();
    assert_eq!(dir, "containers/services/s");
    assert_eq!(bundle_dir(Role::Onboot, 3, "x").unwrap(), "containers/onboot/003-x");
    let own = |sub: &str| TreePath::parse(&format!("{dir}/{sub}")).unwrap();
    let v: Value =
        serde_json::from_slice(&render_runtime_json(&b.runtime, &dir, false, &own("lower")))
            .unwrap();
    assert_eq!(v["mkdir"], json!(["/var/lib/s"]));
    assert_eq!(v["bindNS"]["net"], "/run/netns/s");
    assert_eq!(v["bindNS"]["pid"], "");
    let mounts = v["mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 4);
    assert_eq!(mounts[2]["options"][0], "lowerdir=/containers/services/s/lower");
    assert_eq!(mounts[3]["destination"], "/b");
    let ro: Value =
        serde_json::from_slice(&render_runtime_json(&b.runtime, &dir, true, &own("rootfs")))
            .unwrap();
    assert_eq!(
        ro["mounts"][0],
        json!({"destination": "/containers/services/s/rootfs", "source": "/containers/services/s/rootfs", "options": ["bind"]})
    );
}

/// A container whose image another container holds mounts that copy, as LinuxKit's
/// `ImageBundle` with its `dupMap`: an overlay on it when writable (the upper layer is its
/// own tmpfs), a bind mount of it when read-only; its bundle has no copy of its own.
#[test]
fn runtime_json_of_a_container_sharing_another_ones_image() {
    let img = image(&[], &[], &[], None);
    let c = container("services:\n  - name: s\n    image: alpine\n");
    let b = runtime_config(&img, &c, &BTreeMap::new()).unwrap();
    let first = TreePath::parse("containers/onboot/000-a/lower").unwrap();
    let dir = "containers/services/s";
    let rw: Value =
        serde_json::from_slice(&render_runtime_json(&b.runtime, dir, false, &first)).unwrap();
    assert_eq!(
        rw["mounts"][2]["options"],
        json!([
            "lowerdir=/containers/onboot/000-a/lower",
            "upperdir=/containers/services/s/tmp/upper",
            "workdir=/containers/services/s/tmp/work"
        ])
    );
    assert_eq!(rw["mounts"][2]["destination"], "/containers/services/s/rootfs");
    let ro: Value =
        serde_json::from_slice(&render_runtime_json(&b.runtime, dir, true, &first)).unwrap();
    assert_eq!(
        ro["mounts"],
        json!([{"destination": "/containers/services/s/rootfs",
                "source": "/containers/onboot/000-a/lower", "options": ["bind"]}])
    );
    assert_eq!(bundle_subdirs(false, true), ["lower", "rootfs", "tmp"]);
    assert_eq!(bundle_subdirs(false, false), ["rootfs", "tmp"]);
    assert_eq!(bundle_subdirs(true, true), ["rootfs"]);
    assert_eq!(bundle_subdirs(true, false), ["rootfs"]);
}
