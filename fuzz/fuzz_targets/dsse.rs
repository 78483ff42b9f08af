//! Signed attestations: DSSE envelopes (`NAME.intoto.jsonl`, `dsse::parse_jsonl`) and cairn's
//! Sigstore bundle collections (`NAME.sigstore.json`, `bundle::parse_collection`), each then
//! verified against the seeds' keys.
#![no_main]

use cairn::sign::{bundle, dsse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = cairn_fuzz::trusted_keys();
    if let Ok(envelopes) = dsse::parse_jsonl(data) {
        for e in &envelopes {
            let _ = dsse::verify(e, &keys);
        }
    }
    if let Ok(bundles) = bundle::parse_collection(data) {
        for b in &bundles {
            let _ = b.verify(&keys);
        }
    }
    let _ = bundle::Bundle::from_json(data);
});
