//! `cairn import` of a file into a fresh store: compression sniffing and decoding (gzip,
//! zstd, xz), tar classification, OCI archives, `docker save` archives, root filesystem tars
//! and `.deb` packages (`store::import::import`).
#![no_main]

use cairn::reference::ImageRef;
use cairn::source_date::SourceDate;
use cairn::store::Store;
use cairn::store::import::{ImportOptions, import};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = cairn_fuzz::selector(data) else { return };
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("input");
    std::fs::write(&input, body).expect("write the input");
    let store = Store::open(&dir.path().join("store")).expect("open a fresh store");
    let mut opts = ImportOptions::new(SourceDate::ZERO);
    opts.max_blob_size = 16 << 20;
    let name = ImageRef::parse("fuzz.example/input:1").expect("a valid name");
    let _ = import(&store, &input, (sel & 1 == 1).then_some(&name), &opts);
});
