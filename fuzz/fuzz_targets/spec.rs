//! Image specs (YAML) and the container config an image carries in its
//! `org.mobyproject.config` label (YAML too): `spec::parse`, `ContainerConfig::from_label`.
#![no_main]

use cairn::spec::{self, ContainerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = cairn_fuzz::selector(data) else { return };
    let Ok(text) = std::str::from_utf8(body) else { return };
    if sel & 1 == 0 {
        if let Ok(s) = spec::parse("fuzz.yml", text) {
            // What lock and build ask of a parsed spec first.
            let _ = s.image_refs();
            let _ = s.id_map();
        }
    } else {
        let _ = ContainerConfig::from_label(text);
    }
});
