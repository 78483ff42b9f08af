//! Debian packages: the `ar` container, the compressed `control.tar` and `data.tar` members
//! (gzip, xz, zstd or none) and the `control` paragraph (`store::deb::extract`,
//! `store::deb::parse_control`).
#![no_main]

use cairn::store::deb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = std::io::sink();
    if let Ok(control) = deb::extract(data, &mut sink, 8 << 20) {
        let _ = deb::default_name(&control);
        let _ = deb::oci_platform(&control.architecture, "amd64");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = deb::parse_control(text);
    }
});
