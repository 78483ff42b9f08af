//! Tests of [`parse`](super::parse): a full LinuxKit example, and the position and hint of
//! every kind of error.

use super::*;

const PINNED: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn example() -> String {
    format!(
        r#"kernel:
  image: linuxkit/kernel:6.6.13
  cmdline: "console=tty0 console=ttyS0 console=ttyAMA0"
init:
  - linuxkit/init:8eea386739975a43af558eec757a7dcb3a3d2e7b@{PINNED}
  - linuxkit/runc:667e7ea2c426a2460ca21e3da065a57dbb3369c9
  - linuxkit/containerd:a988a1a8bcbacb2f0695e1c5ca3a3b0c1e4a17a7
  - linuxkit/ca-certificates:7b32a26ca9c275d3ef32b11fe2a83dbd2aee2fdb
onboot:
  - name: sysctl
    image: linuxkit/sysctl:5f56434b81004b50b47ed629b222619168c2bcdf
  - name: dhcpcd
    image: linuxkit/dhcpcd:157df9ef45a035f1542ec2270e374f18efef98a5@{PINNED}
    command: ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
onshutdown:
  - name: shutdown
    image: busybox:latest
    command: ["/bin/echo", "so long and thanks for all the fish"]
services:
  - name: getty
    image: linuxkit/getty:05eca453695984a69617f1f1f0bcdae7f7032967
    env:
     - INSECURE=true
    binds.add:
     - /etc/profile.d/local.sh:/etc/profile.d/local.sh
  - name: rngd
    image: linuxkit/rngd:1a18f2149e42a0a1cb9e7d37608a494342c26032
    capabilities:
     - CAP_SYS_ADMIN
    uid: 0
    gid: root
    rlimits:
     - nofile,1024,2048
    sysctl:
      net.ipv4.ip_forward: "1"
    resources:
      memory:
        limit: 104857600
    runtime:
      mkdir: ["/var/lib/rngd"]
      bindNS:
        net: /run/netns/rngd
  - name: nginx
    image: nginx:1.19.5-alpine
    capabilities:
     - CAP_NET_BIND_SERVICE
     - CAP_CHOWN
     - CAP_SETUID
     - CAP_SETGID
     - CAP_DAC_OVERRIDE
    binds:
     - /etc/resolv.conf:/etc/resolv.conf
files:
  - path: etc/linuxkit-config
    metadata: yaml
  - path: etc/profile.d/local.sh
    contents: |
      alias rm='rm -i'
      export PS1='${{HOSTNAME}}:$PWD# '
    mode: "0644"
  - path: var/lib/empty
    directory: true
  - path: etc/motd
    contents: ""
    mode: 0444
  - path: /usr/bin/vi
    symlink: busybox
  - path: root/.ssh/authorized_keys
    source: ~/.ssh/id_rsa.pub
    optional: true
    mode: "0600"
trust:
  org:
    - linuxkit
    - library
x-cairn:
  source-date-epoch: 1700000000
"#
    )
}

fn err(yaml: &str) -> String {
    match parse("examples/x.yml", yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// The spec is refused with a message that begins with `start` (file, line, column, path);
/// returns the whole message.
fn refused_at(yaml: &str, start: &str) -> String {
    let e = err(yaml);
    assert!(e.starts_with(start), "{e}");
    e
}

/// The spec is refused with a message that contains `needle`; returns the whole message.
fn refused_with(yaml: &str, needle: &str) -> String {
    let e = err(yaml);
    assert!(e.contains(needle), "{e}");
    e
}

#[test]
fn parses_a_linuxkit_example() {
    let spec = parse("examples/x.yml", &example()).unwrap();
    let k = spec.kernel.as_ref().unwrap();
    assert_eq!(k.binary, "kernel");
    assert_eq!(k.tar.as_deref(), Some("kernel.tar"));
    assert_eq!(k.ucode, None);
    assert_eq!(spec.init.len(), 4);
    assert_eq!(spec.onboot.len(), 2);
    assert_eq!(
        spec.services[0].binds_add.as_deref().unwrap(),
        ["/etc/profile.d/local.sh:/etc/profile.d/local.sh"]
    );
    assert_eq!(spec.services[1].uid, Some(Id::Num(0)));
    assert_eq!(spec.services[1].gid, Some(Id::Name("root".into())));
    assert_eq!(
        spec.services[1].runtime.as_ref().unwrap().bind_ns.net.as_deref(),
        Some("/run/netns/rngd")
    );
    assert_eq!(spec.x_cairn.source_date_epoch.map(|s| s.secs()), Some(1_700_000_000));

    let refs = spec.image_refs();
    let roles: Vec<(Role, usize, &str)> =
        refs.iter().map(|u| (u.role, u.index, u.name.as_str())).collect();
    assert_eq!(
        roles,
        [
            (Role::Kernel, 0, "kernel"),
            (Role::Init, 0, "init[0]"),
            (Role::Init, 1, "init[1]"),
            (Role::Init, 2, "init[2]"),
            (Role::Init, 3, "init[3]"),
            (Role::Onboot, 0, "sysctl"),
            (Role::Onboot, 1, "dhcpcd"),
            (Role::Onshutdown, 0, "shutdown"),
            (Role::Service, 0, "getty"),
            (Role::Service, 1, "rngd"),
            (Role::Service, 2, "nginx"),
        ]
    );
    assert_eq!(refs[1].image.digest().map(|d| d.to_string()).as_deref(), Some(PINNED));
    assert_eq!(refs[7].image.name(), "docker.io/library/busybox");

    let files = &spec.files;
    assert_eq!(files[0].kind, FileKind::Metadata(MetadataFormat::Yaml));
    assert_eq!(files[1].mode, 0o644);
    assert_eq!(files[2].kind, FileKind::Directory);
    assert_eq!(files[2].mode, 0o700);
    assert_eq!(files[3].kind, FileKind::Contents(String::new()));
    assert_eq!(files[3].mode, 0o444, "unquoted 0444 is octal");
    assert_eq!(files[4].path.as_str(), "usr/bin/vi");
    assert_eq!(files[4].mode, 0o600);
    assert!(matches!(&files[5].kind, FileKind::Source { optional: true, .. }));

    let ids = spec.id_map();
    assert_eq!(ids["sysctl"], 100);
    assert_eq!(ids["shutdown"], 102);
    assert_eq!(ids["nginx"], 105);
}

#[test]
fn kernel_tar_none_and_ucode() {
    let spec = parse("k.yml", "kernel:\n  image: linuxkit/kernel:6.6\n  tar: none\n  ucode: intel-ucode.cpio\n  binary: bzImage\n").unwrap();
    let k = spec.kernel.unwrap();
    assert_eq!(k.tar, None);
    assert_eq!(k.ucode.as_deref(), Some("intel-ucode.cpio"));
    assert_eq!(k.binary, "bzImage");
}

#[test]
fn empty_spec_is_empty() {
    let spec = parse("e.yml", "{}\n").unwrap();
    assert!(spec.image_refs().is_empty());
}

#[test]
fn unknown_top_level_field() {
    let e =
        err("kernel:\n  image: linuxkit/kernel:6.6\nservice:\n  - name: a\n    image: alpine\n");
    assert!(e.starts_with("examples/x.yml:3:1: unknown field `service`"), "{e}");
    assert!(e.contains("did you mean `services`?"), "{e}");
}

#[test]
fn unknown_container_field_with_hint() {
    let e = refused_at(
        "services:\n  - name: a\n    image: alpine\n    comand: [\"sh\"]\n",
        "examples/x.yml:4:5: services[0]: unknown field `comand`",
    );
    assert!(e.contains("\n\nhint: did you mean `command`?"), "{e}");
}

#[test]
fn unknown_field_in_x_cairn() {
    let e = refused_with("x-cairn:\n  source-date: 1\n", "examples/x.yml:2:3:");
    assert!(e.contains("did you mean `source-date-epoch`?"), "{e}");
}

#[test]
fn wrong_type() {
    refused_at(
        "services:\n  - name: a\n    image: alpine\n    readonly: maybe\n",
        "examples/x.yml:4:15: services[0].readonly: invalid type",
    );
    refused_at(
        "onboot: {name: a}\n",
        "examples/x.yml:1:9: onboot: invalid type: map, expected a list of containers",
    );
}

#[test]
fn bad_mode() {
    refused_at(
        "files:\n  - path: etc/x\n    contents: hi\n    mode: \"0985\"\n",
        "examples/x.yml:4:11: files[0].mode: mode \"0985\" is not an octal number",
    );
    refused_with(
        "files:\n  - path: etc/x\n    contents: hi\n    mode: 077777\n",
        "mode \"077777\" is not an octal number",
    );
}

#[test]
fn duplicate_names() {
    refused_with(
        "onboot:\n  - name: a\n    image: alpine\n  - name: b\n    image: alpine\n  - name: a\n    image: busybox\n",
        "examples/x.yml:2:3: onboot: duplicate container name \"a\" at index 2 (first used at index 0)",
    );
}

#[test]
fn bad_container_names() {
    refused_with(
        "services:\n  - name: \"\"\n    image: alpine\n",
        "examples/x.yml:2:5: services[0]: container name is empty",
    );
    refused_with(
        "services:\n  - name: ../../etc\n    image: alpine\n",
        "cannot be used as a directory name",
    );
    refused_with("services:\n  - image: alpine\n", "missing field `name`");
}

#[test]
fn bad_image_ref() {
    refused_at(
        "onboot:\n  - name: ok\n    image: alpine\n  - name: dhcpcd\n    image: Linuxkit/DHCPCD:v1\n",
        "examples/x.yml:5:12: onboot[1].image: image reference \"Linuxkit/DHCPCD:v1\"",
    );
    refused_at(
        &format!("init:\n  - linuxkit/init@{}\n", "sha256:abc"),
        "examples/x.yml:2:5: init[0]: image reference",
    );
}

#[test]
fn dotdot_in_file_path() {
    refused_at(
        "files:\n  - path: etc/../../root/x\n    contents: hi\n",
        "examples/x.yml:2:5: files[0]: path \"etc/../../root/x\" climbs out",
    );
}

#[test]
fn file_kind_rules() {
    for (entry, needle) in [
        ("contents: hi\n    source: /etc/passwd", "sets contents and source: choose exactly one"),
        ("directory: true\n    contents: hi", "sets directory and contents"),
        ("mode: \"0644\"", "needs exactly one of"),
        ("contents: a\n    optional: true", "optional applies only to source"),
        ("metadata: toml", "metadata format \"toml\""),
    ] {
        let e = err(&format!("files:\n  - path: etc/x\n    {entry}\n"));
        assert!(e.contains(needle), "{e}");
    }
}

#[test]
fn source_date_out_of_range() {
    refused_at(
        "x-cairn:\n  source-date-epoch: 99999999999999\n",
        "examples/x.yml:2:22: x-cairn.source-date-epoch: source-date-epoch",
    );
}

#[test]
fn malformed_yaml_has_location() {
    let e = err("services:\n  - name: a\n   image: [\n");
    assert!(e.starts_with("examples/x.yml:"), "{e}");
    assert!(e.split(':').nth(1).is_some_and(|l| l.parse::<usize>().is_ok()), "{e}");
}

#[test]
fn too_large() {
    let big = " ".repeat(MAX_SPEC_LEN + 1);
    assert!(matches!(parse("big.yml", &big), Err(SpecError::TooLarge { .. })));
}

#[test]
fn content_digest_is_sha256_of_bytes() {
    assert_eq!(
        content_digest("").to_string(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn edit_distance_works() {
    assert_eq!(edit_distance("comand", "command"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

mod prop {
    use super::super::*;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct OutContainer {
        name: String,
        image: String,
        command: Vec<String>,
    }

    #[derive(Serialize)]
    struct OutSpec {
        services: Vec<OutContainer>,
    }

    proptest! {
        #[test]
        fn containers_round_trip(
            entries in proptest::collection::btree_map(
                "[a-z0-9][a-z0-9_.-]{0,20}",
                proptest::collection::vec(any::<String>(), 0..5),
                0..6,
            )
        ) {
            let out = OutSpec {
                services: entries
                    .iter()
                    .map(|(n, cmd)| OutContainer { name: n.clone(), image: "alpine:3.19".into(), command: cmd.clone() })
                    .collect(),
            };
            let yaml = serde_norway::to_string(&out).unwrap();
            let spec = parse("prop.yml", &yaml).unwrap();
            prop_assert_eq!(spec.services.len(), entries.len());
            for (c, (n, cmd)) in spec.services.iter().zip(entries.iter()) {
                prop_assert_eq!(&c.name, n);
                prop_assert_eq!(c.command.as_ref(), Some(cmd));
                prop_assert_eq!(c.image.reference.name(), "docker.io/library/alpine");
            }
        }
    }
}
