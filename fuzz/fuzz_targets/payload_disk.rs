//! The verified-boot payload disk (a ustar archive on /dev/vda) as the verifier in the
//! trusted initramfs reads it: `init::verifier::read_payload`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let disk = dir.path().join("disk");
    std::fs::write(&disk, data).expect("write the disk image");
    let out = dir.path().join("payload");
    std::fs::create_dir(&out).expect("payload directory");
    let _ = cairn::init::verifier::read_payload(&disk, &out);
});
