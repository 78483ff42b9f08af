//! UEFI Secure Boot in QEMU + OVMF of a UKI cairn assembled and signed, on a GPT disk
//! cairn wrote: the firmware boots the signed UKI with Secure Boot enforcing and refuses an
//! unsigned one and a signed one with a changed byte.
//!
//! The pieces are the library's (`emit::uki`, `sign::authenticode`, `emit::esp`,
//! `emit::disk`); the kernel and busybox are the pinned Debian packages of the other boot
//! tests, the stub is Debian's `systemd-boot-efi`. Our own PK, KEK and db are enrolled in a
//! copy of OVMF's variable store with `virt-fw-vars` (python3-virt-firmware).

use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn::emit::{disk, esp, uki};
use cairn::sign::authenticode::{SecureBootKey, sign_image};
use cairn::source_date::SourceDate;

use crate::qemu::{find_debs, have_qemu};
use crate::util::{self, TestDir};

const MARKER: &str = "CAIRN-UKI-BOOTED";
const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

const OVMF: util::Tool = util::Tool {
    name: OVMF_CODE,
    install: "apt-get install ovmf systemd-boot-efi python3-virt-firmware (bash .ci/qemu-setup)",
    switch: Some("CAIRN_REQUIRE_QEMU"),
};
const VIRT_FW_VARS: util::Tool = util::Tool {
    name: "virt-fw-vars",
    install: "apt-get install python3-virt-firmware (bookworm-backports; bash .ci/qemu-setup)",
    switch: Some("CAIRN_REQUIRE_QEMU"),
};
const EFI_STUB: util::Tool = util::Tool {
    name: STUB,
    install: "apt-get install systemd-boot-efi",
    switch: Some("CAIRN_REQUIRE_QEMU"),
};

/// Extracts `member` (a path in the package's data tar, e.g. `./bin/busybox`) of a .deb.
fn deb_member(deb: &Path, member: &str, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' '{member}'",
            deb.display(),
            into.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "extracting {member} from {}", deb.display());
    into.join(member)
}

/// A gzip newc initramfs whose /init prints the marker and the command line, then powers
/// off.
fn initramfs(busybox: &Path, dir: &Path) -> Vec<u8> {
    let root = dir.join("initramfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let init = "#!/bin/busybox sh\n\
        /bin/busybox mount -t proc proc /proc\n\
        /bin/busybox echo \"CAIRN-UKI-BOOTED $(/bin/busybox cat /proc/cmdline)\"\n\
        /bin/busybox poweroff -f\n";
    std::fs::write(root.join("init"), init).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg("chmod 755 init bin/busybox && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n > ../initramfs.gz")
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "cpio");
    std::fs::read(dir.join("initramfs.gz")).unwrap()
}

fn build_uki(kernel: &[u8], initrd: &[u8], cmdline: &[u8]) -> Vec<u8> {
    let stub = std::fs::read(STUB).unwrap();
    let osrel = b"ID=cairn\nNAME=cairn\n";
    let (mut k, mut i, mut c, mut o) = (kernel, initrd, cmdline, &osrel[..]);
    let mut sections = [
        uki::UkiSection { name: ".osrel", len: osrel.len() as u64, content: &mut o },
        uki::UkiSection { name: ".cmdline", len: cmdline.len() as u64, content: &mut c },
        uki::UkiSection { name: ".initrd", len: initrd.len() as u64, content: &mut i },
        uki::UkiSection { name: ".linux", len: kernel.len() as u64, content: &mut k },
    ];
    let mut out = Cursor::new(Vec::new());
    uki::write_uki(&stub, &mut sections, &mut out).unwrap();
    out.into_inner()
}

/// A GPT disk with one EFI system partition holding `efi` as the removable-media loader.
fn write_disk(efi: &[u8], path: &Path) {
    let date = SourceDate::new(1_700_000_000).unwrap();
    let mut image = Cursor::new(vec![0u8; esp::esp_size(&[efi.len() as u64]) as usize]);
    let mut content = efi;
    let mut files = [esp::EspFile {
        path: "EFI/BOOT/BOOTX64.EFI",
        len: efi.len() as u64,
        content: &mut content,
    }];
    esp::write_esp(&mut image, 0xCA1B_0001, date, &mut files).unwrap();
    let image = image.into_inner();
    let mut e = &image[..];
    let mut parts = [disk::Partition {
        name: "esp",
        type_guid: disk::types::ESP,
        guid: disk::Guid::derived("esp", &[&image]),
        attributes: 0,
        len: image.len() as u64,
        content: &mut e,
    }];
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    disk::write_disk(&mut f, disk::Guid::derived("disk", &[&image]), &mut parts).unwrap();
}

/// A db key and its certificate (PEM), made the way the authenticode unit test makes one.
fn db_key(dir: &Path) -> (SecureBootKey, PathBuf) {
    use aws_lc_rs::encoding::AsDer;
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = rsa.as_der().unwrap();
    let pair = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
    let params = rcgen::CertificateParams::new(vec!["cairn secure boot test".into()]).unwrap();
    let cert = params.self_signed(&pair).unwrap();
    let pem = dir.join("db.crt");
    std::fs::write(&pem, cert.pem()).unwrap();
    (SecureBootKey::from_der(pkcs8.as_ref(), cert.der()).unwrap(), pem)
}

/// OVMF's variable store with our certificate as PK, KEK and db, Secure Boot on.
fn enrolled_vars(cert: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("vars.fd");
    let owner = "5e7a0c4f-3d2b-4c1a-9f8e-7d6c5b4a3921";
    let status = Command::new("virt-fw-vars")
        .args(["--input", OVMF_VARS, "--output"])
        .arg(&out)
        .arg("--set-pk")
        .arg(owner)
        .arg(cert)
        .arg("--add-kek")
        .arg(owner)
        .arg(cert)
        .arg("--add-db")
        .arg(owner)
        .arg(cert)
        .arg("--secure-boot")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "virt-fw-vars");
    out
}

enum Boot {
    /// The initramfs ran and printed the kernel command line it got.
    Booted(String),
    /// The firmware refused the loader (`Access Denied`).
    Refused,
}

/// Boots `disk` under OVMF with Secure Boot enforcing; stops QEMU at the marker or at the
/// firmware's refusal (after which OVMF would wait in its boot menu).
fn boot(disk: &Path, vars: &Path, dir: &Path) -> Boot {
    let vars_copy = dir.join(format!("vars-{}.fd", disk.file_stem().unwrap().to_string_lossy()));
    std::fs::copy(vars, &vars_copy).unwrap();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-machine", "q35,smm=on", "-m", "512", "-nographic", "-no-reboot", "-nic", "none"])
        .args(["-global", "driver=cfi.pflash01,property=secure,value=on"])
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,unit=1,file={}", vars_copy.display()))
        .arg("-drive")
        .arg(format!("if=virtio,format=raw,readonly=on,file={}", disk.display()))
        .args(["-serial", "stdio", "-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            if tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let deadline = Duration::from_secs(300);
    let mut log = String::new();
    let verdict = loop {
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if let Some(at) = line.find(MARKER) {
                    break Some(Boot::Booted(line[at + MARKER.len()..].trim().to_string()));
                }
                if line.contains("Access Denied") || line.contains("Security Violation") {
                    break Some(Boot::Refused);
                }
            }
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("{}: {:.1} s", disk.display(), started.elapsed().as_secs_f64());
    verdict.unwrap_or_else(|| panic!("QEMU gave no verdict in {deadline:?}:\n{log}"))
}

#[test]
fn secure_boot_runs_only_the_signed_uki() {
    let test = "secure_boot::secure_boot_runs_only_the_signed_uki";
    if !have_qemu(test) || !OVMF.found(test) || !VIRT_FW_VARS.found(test) || !EFI_STUB.found(test) {
        return;
    }
    let Some(debs) = find_debs(test) else { return };
    let dir = TestDir::new("secure-boot");
    let kernel_path = deb_member(
        &debs.kernel,
        &format!("./boot/vmlinuz-{}", debs.kernel_release),
        &dir.join("kernel"),
    );
    let busybox = deb_member(&debs.busybox, "./bin/busybox", &dir.join("busybox"));
    let kernel = std::fs::read(kernel_path).unwrap();
    let initrd = initramfs(&busybox, dir.path());
    let cmdline = b"console=ttyS0 panic=-1 cairn.uki=signed";
    let unsigned = build_uki(&kernel, &initrd, cmdline);
    assert!(unsigned == build_uki(&kernel, &initrd, cmdline), "UKI assembly is reproducible");

    let (key, cert) = db_key(dir.path());
    let signed = sign_image(&unsigned, &key).unwrap();
    let vars = enrolled_vars(&cert, dir.path());

    let good = dir.join("signed.img");
    write_disk(&signed, &good);
    match boot(&good, &vars, dir.path()) {
        Boot::Booted(seen) => assert!(seen.contains("cairn.uki=signed"), "command line: {seen}"),
        Boot::Refused => panic!("the firmware refused the signed UKI"),
    }

    let bare = dir.join("unsigned.img");
    write_disk(&unsigned, &bare);
    assert!(matches!(boot(&bare, &vars, dir.path()), Boot::Refused), "unsigned UKI booted");

    // One byte of the signed command line changed after signing.
    let mut tampered = signed.clone();
    let at =
        tampered.windows(b"cairn.uki=signed".len()).position(|w| w == b"cairn.uki=signed").unwrap();
    tampered[at + b"cairn.uki=".len()] = b'S';
    let bad = dir.join("tampered.img");
    write_disk(&tampered, &bad);
    assert!(matches!(boot(&bad, &vars, dir.path()), Boot::Refused), "tampered UKI booted");
}
