//! Verification policies (YAML): `policy::parse`, then `PolicyDoc::resolve` against an empty
//! directory, which parses inline PEM keys and refuses keys named by relative path.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn empty_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory")).path()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(doc) = cairn::policy::parse("fuzz.yaml", text) {
        let _ = doc.resolve("fuzz.yaml", empty_dir());
    }
});
