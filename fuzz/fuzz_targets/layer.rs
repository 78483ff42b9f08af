//! Image layers: an uncompressed, gzip or zstd tar stream applied to a tree
//! (`assemble::layer::apply_layer`, with the decoders assemble wraps around a layer blob).
//! A tree that a layer built must then emit as a newc initramfs that a strict reader accepts
//! (`emit::cpio::write_newc`, checked by `testkit::parse_newc`) and as a tar that applies
//! again to a tree emitting the same tar (`emit::tar::write_tar`).
#![no_main]

use std::io::Read;

use cairn::assemble::layer::apply_layer;
use cairn::emit::{cpio, tar};
use cairn::source_date::SourceDate;
use cairn::tree::{Tree, TreePath};
use libfuzzer_sys::fuzz_target;

/// Content bytes one input may unpack (the build's budget is far larger; this keeps the
/// fuzzer inside its memory limit).
const BUDGET: u64 = 8 << 20;

fn apply(reader: impl Read) -> Option<Tree> {
    let mut tree = Tree::new().expect("spool file");
    let mut budget = BUDGET;
    let sd = SourceDate::ZERO;
    apply_layer(&mut tree, &TreePath::root(), reader, "fuzz", sd, &mut budget).ok()?;
    Some(tree)
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = cairn_fuzz::selector(data) else { return };
    let tree = match sel % 3 {
        0 => apply(body),
        1 => apply(flate2::bufread::MultiGzDecoder::new(body)),
        _ => match zstd::stream::read::Decoder::with_buffer(body) {
            Ok(dec) => apply(dec),
            Err(_) => None,
        },
    };
    let Some(tree) = tree else { return };

    if let Ok(newc) = cpio::write_newc(&tree, |_| true, Vec::new()) {
        let entries = cairn::testkit::parse_newc(&newc);
        assert_eq!(entries.len(), tree.len(), "every tree entry is in the initramfs");
    }
    if let Ok(first) = tar::write_tar(&tree, Vec::new()) {
        let again = apply(&first[..]).expect("a tar cairn wrote applies");
        let second = tar::write_tar(&again, Vec::new()).expect("the same tree emits again");
        assert!(first == second, "emit → apply → emit changed the tar");
    }
});
