//! The package databases and os-release file read from an image for its SBOM: dpkg
//! `status`, dpkg `status.d/*` (distroless), apk `installed`, `os-release`.
#![no_main]

use cairn::attest::{os_release, packages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = cairn_fuzz::selector(data) else { return };
    match sel % 4 {
        0 => drop(packages::from_dpkg_status(body)),
        1 => drop(packages::from_dpkg_status_d(body)),
        2 => drop(packages::from_apk_installed(body)),
        _ => drop(os_release::parse(body)),
    }
});
