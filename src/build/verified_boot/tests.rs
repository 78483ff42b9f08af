//! The verified-boot build path without QEMU: what lands in the payload disk and in the
//! verifier initramfs.

use std::collections::BTreeMap;
use std::io::Read;

use super::*;
use crate::emit::cpio;
use crate::sign::keys::Algorithm;
use crate::source_date::SourceDate;
use crate::tree::Content;

/// The smallest file [`is_static_elf`] accepts: an ELF64 LE header without program headers.
fn fake_static_elf() -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[0x36] = 56; // e_phentsize; e_phnum stays 0
    b
}

fn assembly(sd: SourceDate) -> Assembly {
    let t = sd.secs();
    let dir = Node::dir(0o755, t);
    let mut tree = Tree::new().unwrap();
    let file = |s: &str| Node::file(Content::inline(s.to_string()), 0o644, t);
    for (p, n) in [
        ("boot/kernel", file("KERNEL")),
        ("boot/cmdline", file("console=ttyS0")),
        ("etc/hostname", file("vb")),
    ] {
        tree.insert(TreePath::parse(p).unwrap(), n, &dir).unwrap();
    }
    let kernel_modules = MODULES
        .iter()
        .map(|m| (format!("lib/modules/6.1.0/kernel/{m}"), file(&format!("module {m}"))))
        .collect();
    Assembly { tree, source_date: sd, package_dbs: Vec::new(), skipped: Vec::new(), kernel_modules }
}

fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            (name, body)
        })
        .collect()
}

#[test]
fn payload_disk_and_verifier_initramfs_hold_what_the_guest_reads() {
    let sd = SourceDate::new(1_700_000_000).unwrap();
    let staging = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    let verifier = bin_dir.path().join("cairn-static");
    fs::write(&verifier, fake_static_elf()).unwrap();
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let ctx = BuildContext {
        name: "vb",
        spec_path: "vb.yml",
        spec_digest: Digest::of(b"spec"),
        formats: vec!["verified-boot".into()],
        builder_id: crate::attest::DEFAULT_BUILDER_ID,
    };
    let inputs = BuildInputs { images: Vec::new(), files: BTreeMap::new(), source_date: sd };
    let options = VerifiedBootOptions { verifier_binary: Some(verifier), ..Default::default() };
    let req = Request {
        ctx: &ctx,
        inputs: &inputs,
        key: &key,
        options: &options,
        staging: staging.path(),
    };
    let out = write_outputs(&req, &mut assembly(sd)).unwrap();

    let names: Vec<&str> = out.outputs.iter().map(|o| o.rel_path.as_str()).collect();
    assert_eq!(
        names,
        [
            "vb.spdx.json",
            "vb.cdx.json",
            "vb.provenance.json",
            "vb.intoto.jsonl",
            "vb.sigstore.json",
            "vb-kernel",
            "vb-cmdline",
            "vb-initrd.img",
            "vb-payload.img",
        ]
    );
    for o in &out.outputs {
        let bytes = fs::read(staging.path().join(&o.rel_path)).unwrap();
        assert_eq!((Digest::of(&bytes), bytes.len() as u64), (o.digest, o.size), "{}", o.rel_path);
    }
    assert_eq!(fs::read(staging.path().join("vb-kernel")).unwrap(), b"KERNEL");
    assert!(out.signed.is_some());

    // The payload: the root filesystem tar first, then its attestations, as the build wrote them.
    let disk = fs::read(staging.path().join("vb-payload.img")).unwrap();
    assert_eq!(disk.len() % 512, 0);
    let members = tar_members(&disk);
    let member_names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        member_names,
        [
            "vb.tar",
            "vb.spdx.json",
            "vb.cdx.json",
            "vb.provenance.json",
            "vb.intoto.jsonl",
            "vb.sigstore.json"
        ]
    );
    for (name, body) in &members[1..] {
        assert_eq!(body, &fs::read(staging.path().join(name)).unwrap(), "{name}");
    }
    // The provenance's one subject is the payload's tar.
    assert_eq!(out.facts.as_ref().unwrap().subjects.len(), 1);
    assert_eq!(out.facts.as_ref().unwrap().subjects[0].digest, Digest::of(&members[0].1));
    let root: Vec<String> = tar_members(&members[0].1).into_iter().map(|(n, _)| n).collect();
    assert!(root.iter().any(|n| n == PAYLOAD_CAIRN), "{root:?}");
    assert!(root.iter().any(|n| n == "etc/hostname"), "{root:?}");
    assert!(!root.iter().any(|n| n.starts_with("boot/k")), "the kernel stays out: {root:?}");

    // The verifier initramfs: /init, the policy, the signing key, the modules in load order.
    let initrd = fs::read(staging.path().join("vb-initrd.img")).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&initrd[..]).read_to_end(&mut raw).unwrap();
    let entries = cpio::tests::parse_newc(&raw);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    for want in ["init", "etc/cairn/policy.yaml", "etc/cairn/keys/build-key.pub"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for m in MODULES {
        let want = format!("lib/modules/{}", module_file_name(m));
        assert!(names.contains(&want.as_str()), "{want} missing from {names:?}");
    }
    let policy = entries.iter().find(|e| e.name == "etc/cairn/policy.yaml").unwrap();
    assert_eq!(policy.data, DEFAULT_POLICY.as_bytes());
    let init = entries.iter().find(|e| e.name == "init").unwrap();
    assert_eq!(init.data, fake_static_elf());
}

#[test]
fn a_dynamic_verifier_is_refused() {
    let mut elf = fake_static_elf();
    // One PT_INTERP program header right after the ELF header.
    elf[0x20] = 64;
    elf[0x38] = 1;
    elf.extend_from_slice(&[3, 0, 0, 0]);
    elf.resize(64 + 56, 0);
    assert!(!is_static_elf(&elf).unwrap());
    assert!(is_static_elf(&fake_static_elf()).unwrap());
    assert!(is_static_elf(b"#!/bin/sh\n").is_err());
}
