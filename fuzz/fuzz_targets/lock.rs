//! Lock files (`SPEC.lock`, JSON): `Lockfile::parse`. A lock that parses renders to bytes
//! that parse back to the same lock.
#![no_main]

use cairn::lock::Lockfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(lock) = Lockfile::parse("fuzz.lock", data) {
        let again = Lockfile::parse("rendered", &lock.render()).expect("a rendered lock parses");
        assert_eq!(again, lock, "render and parse disagree");
    }
});
