use std::io::{Read, Write};

use proptest::prelude::*;

use super::*;
use crate::testkit::Tool;

/// Compressible but not trivial input, several gzip blocks and more than one zstd job.
fn sample(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x: u32 = 1;
    while v.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.extend_from_slice(format!("line {} {}\n", x >> 20, v.len() % 977).as_bytes());
    }
    v.truncate(len);
    v
}

/// Bytes with a flat histogram, as compressed data has.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[test]
fn noise_is_stored_and_text_is_deflated() {
    let data = noise(4 * gzip::BLOCK);
    let gz = compress(Codec::Gzip, 2, &data, 4096);
    // Stored blocks: a few bytes of framing per 32 KiB, never a Huffman-coded expansion.
    assert!(gz.len() <= data.len() + 128, "{} bytes for {} of noise", gz.len(), data.len());
    assert!(decompress(Codec::Gzip, &gz) == data);
    let text = sample(4 * gzip::BLOCK);
    assert!(compress(Codec::Gzip, 2, &text, 4096).len() < text.len() / 2);
}

fn compress(codec: Codec, threads: usize, data: &[u8], chunk: usize) -> Vec<u8> {
    let mut enc = compress_with_threads(codec, threads, Vec::new()).unwrap();
    for c in data.chunks(chunk.max(1)) {
        enc.write_all(c).unwrap();
    }
    enc.finish().unwrap()
}

fn decompress(codec: Codec, bytes: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Gzip => {
            let mut v = Vec::new();
            flate2::read::GzDecoder::new(bytes).read_to_end(&mut v).unwrap();
            v
        }
        Codec::Zstd => zstd::stream::decode_all(bytes).unwrap(),
    }
}

/// Runs the system `gzip` on `input` with `args`; None when gzip is missing (outside CI).
fn system_gzip(args: &[&str], input: &[u8]) -> Option<std::process::Output> {
    let gzip = Tool { name: "gzip", install: "apt-get install gzip", switch: None };
    if !gzip.found("compress::tests (system gzip)") {
        return None;
    }
    Some(crate::testkit::pipe_through("gzip", args, input))
}

#[test]
fn gzip_header_has_no_time_or_host() {
    let gz = compress(Codec::Gzip, 1, b"hello", 5);
    assert_eq!(&gz[0..3], &[0x1f, 0x8b, 8], "magic and deflate");
    assert_eq!(gz[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime");
    assert_eq!(gz[9], 255, "OS byte");
    assert_eq!(decompress(Codec::Gzip, &gz), b"hello");
}

#[test]
fn gzip_is_one_member_with_the_length_and_crc_of_the_whole_input() {
    let mut data = sample(5 * gzip::BLOCK + 17);
    data.extend(noise(3 * gzip::BLOCK));
    let gz = compress(Codec::Gzip, 3, &data, 65536);
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    let n = gz.len();
    assert_eq!(gz[n - 8..n - 4], crc.sum().to_le_bytes(), "CRC-32 of the whole input");
    assert_eq!(gz[n - 4..], (data.len() as u32).to_le_bytes(), "ISIZE");
    // A multi-member reader would accept concatenated members; the single-member one
    // must reach the end of the input with exactly one.
    let mut d = flate2::read::GzDecoder::new(&gz[..]);
    let mut back = Vec::new();
    d.read_to_end(&mut back).unwrap();
    assert!(back == data);
    assert!(d.into_inner().is_empty(), "bytes after the first member");
}

#[test]
fn gzip_ratio_stays_close_to_one_stream() {
    // Blocks primed with the previous block's tail lose almost nothing against one stream.
    let data = sample(2 << 20);
    let blocks = compress(Codec::Gzip, 2, &data, 1 << 20).len();
    let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::new(GZIP_LEVEL));
    one.write_all(&data).unwrap();
    let one = one.finish().unwrap().len();
    assert!(blocks * 100 <= one * 101, "{blocks} bytes in blocks vs {one} in one stream");
}

#[test]
fn outputs_repeat_and_round_trip() {
    let data = sample(3 << 20);
    for codec in [Codec::Gzip, Codec::Zstd] {
        let a = compress(codec, 2, &data, 7919);
        let b = compress(codec, 2, &data, 7919);
        assert!(a == b, "{codec} output differs between runs");
        assert!(decompress(codec, &a) == data, "{codec} does not round-trip");
    }
}

#[test]
fn zstd_output_does_not_depend_on_worker_count() {
    // More than two jobs, so several workers really share the input.
    let data = sample(12 << 20);
    let one = compress(Codec::Zstd, 1, &data, 1 << 20);
    for threads in [2, 3, 4] {
        assert!(compress(Codec::Zstd, threads, &data, 1 << 20) == one, "{threads} workers");
    }
    // The frame header's descriptor byte has the checksum flag (bit 2) set.
    assert_eq!(&one[0..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_ne!(one[4] & 0x04, 0);
}

#[test]
fn system_gzip_reads_a_multi_block_stream() {
    let data = sample(3 * gzip::BLOCK + 1);
    let gz = compress(Codec::Gzip, 4, &data, 4096);
    let Some(test) = system_gzip(&["-t"], &gz) else { return };
    assert!(test.status.success(), "gzip -t: {}", String::from_utf8_lossy(&test.stderr));
    let Some(back) = system_gzip(&["-dc"], &gz) else { return };
    assert!(back.status.success() && back.stdout == data, "gzip -dc gives other bytes");
}

/// Input for the property test: a mix of runs, text and noise, so blocks compress
/// differently and matches cross block boundaries.
fn any_input() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        (any::<u8>(), 1usize..70_000).prop_map(|(b, n)| vec![b; n]),
        proptest::collection::vec(any::<u8>(), 0..3000),
        (0usize..200_000).prop_map(sample),
        // Long enough to fill a block with noise: the stored path.
        proptest::collection::vec(any::<u8>(), 20_000..70_000),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gzip_bytes_do_not_depend_on_thread_count_or_write_sizes(
        data in any_input(),
        threads in 1usize..=8,
        chunk in 1usize..300_000,
    ) {
        let reference = compress(Codec::Gzip, 1, &data, data.len());
        let gz = compress(Codec::Gzip, threads, &data, chunk);
        prop_assert!(gz == reference, "{} threads, {}-byte writes", threads, chunk);
        prop_assert!(decompress(Codec::Gzip, &gz) == data);
        if let Some(back) = system_gzip(&["-dc"], &gz) {
            prop_assert!(back.status.success(), "{}", String::from_utf8_lossy(&back.stderr));
            prop_assert!(back.stdout == data, "gzip -dc gives other bytes");
        }
    }
}

#[test]
fn codec_names_round_trip() {
    for c in [Codec::Gzip, Codec::Zstd] {
        assert_eq!(c.to_string().parse::<Codec>().unwrap(), c);
    }
    assert!(matches!("xz".parse::<Codec>(), Err(EmitError::UnknownCodec(_))));
}
