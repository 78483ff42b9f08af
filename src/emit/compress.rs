//! Deterministic compression streams (gzip and zstd).
//!
//! Every parameter that can change the compressed bytes is fixed here, so the output is a
//! function of the input alone:
//!
//! - gzip: flate2 (its pure-Rust miniz_oxide backend, pinned by `Cargo.lock`) at level 6.
//!   flate2's header has mtime 0, no file name, no comment and OS byte 255 ("unknown").
//! - zstd: level 3, window log 21 (level 3's own value for inputs of unknown size), a
//!   content checksum (as the `zstd` tool writes by default, so `zstd -t` and the kernel's
//!   decompressor can detect corruption), and always the multithreaded mode with exactly
//!   one worker. libzstd's multithreaded output does not depend on the worker count but does
//!   differ from the single-threaded mode, so pinning one worker keeps the bytes identical
//!   whatever the host's CPU count.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::EmitError;

/// gzip compression level.
const GZIP_LEVEL: u32 = 6;
/// zstd compression level.
const ZSTD_LEVEL: i32 = 3;
/// zstd window log (2 MiB).
const ZSTD_WINDOW_LOG: u32 = 21;
/// zstd worker threads: any value ≥ 1 gives the same bytes; 0 would not.
const ZSTD_WORKERS: u32 = 1;

/// A compression format for initrds and layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    #[default]
    Gzip,
    Zstd,
}

/// The codec's name, as the `kernel+initrd:CODEC` format and messages spell it.
impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        })
    }
}

impl FromStr for Codec {
    type Err = EmitError;
    fn from_str(s: &str) -> Result<Codec, EmitError> {
        match s {
            "gzip" | "gz" => Ok(Codec::Gzip),
            "zstd" | "zst" => Ok(Codec::Zstd),
            _ => Err(EmitError::UnknownCodec(s.to_string())),
        }
    }
}

/// A compressing writer. Call [`Encoder::finish`] to write the trailer and get the inner
/// writer back; dropping it without `finish` leaves a truncated stream.
pub enum Encoder<W: Write> {
    Gzip(GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// Starts a compressed stream of `codec` onto `out`. Errors are write errors of `out`
/// or a refused zstd parameter (which would be a bug in this module).
pub fn compress_to<W: Write>(codec: Codec, out: W) -> io::Result<Encoder<W>> {
    Ok(match codec {
        Codec::Gzip => Encoder::Gzip(GzEncoder::new(out, Compression::new(GZIP_LEVEL))),
        Codec::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            enc.multithread(ZSTD_WORKERS)?;
            enc.window_log(ZSTD_WINDOW_LOG)?;
            enc.include_checksum(true)?;
            enc.long_distance_matching(false)?;
            Encoder::Zstd(enc)
        }
    })
}

impl<W: Write> Encoder<W> {
    /// Ends the stream (trailer, checksum) and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Compressible but not trivial input, larger than one zstd job would need to be.
    fn sample() -> Vec<u8> {
        let mut v = Vec::with_capacity(3 << 20);
        let mut x: u32 = 1;
        while v.len() < 3 << 20 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.extend_from_slice(format!("line {} {}\n", x >> 20, v.len() % 977).as_bytes());
        }
        v
    }

    fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
        let mut enc = compress_to(codec, Vec::new()).unwrap();
        // Odd-sized writes: chunking must not change the output.
        for chunk in data.chunks(7919) {
            enc.write_all(chunk).unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_header_has_no_time_or_host() {
        let gz = compress(Codec::Gzip, b"hello");
        assert_eq!(&gz[0..3], &[0x1f, 0x8b, 8], "magic and deflate");
        assert_eq!(gz[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime");
        assert_eq!(gz[9], 255, "OS byte");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello");
    }

    #[test]
    fn outputs_repeat_and_round_trip() {
        let data = sample();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let a = compress(codec, &data);
            let b = compress(codec, &data);
            assert!(a == b, "{codec} output differs between runs");
            let back = match codec {
                Codec::Gzip => {
                    let mut v = Vec::new();
                    flate2::read::GzDecoder::new(&a[..]).read_to_end(&mut v).unwrap();
                    v
                }
                Codec::Zstd => zstd::stream::decode_all(&a[..]).unwrap(),
            };
            assert!(back == data, "{codec} does not round-trip");
        }
    }

    #[test]
    fn zstd_output_does_not_depend_on_worker_count() {
        let data = sample();
        let pinned = compress(Codec::Zstd, &data);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
        enc.multithread(4).unwrap();
        enc.window_log(ZSTD_WINDOW_LOG).unwrap();
        enc.include_checksum(true).unwrap();
        enc.long_distance_matching(false).unwrap();
        enc.write_all(&data).unwrap();
        assert!(enc.finish().unwrap() == pinned);
        // The frame header's descriptor byte has the checksum flag (bit 2) set.
        assert_eq!(&pinned[0..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_ne!(pinned[4] & 0x04, 0);
    }

    #[test]
    fn codec_names_round_trip() {
        for c in [Codec::Gzip, Codec::Zstd] {
            assert_eq!(c.to_string().parse::<Codec>().unwrap(), c);
        }
        assert!(matches!("xz".parse::<Codec>(), Err(EmitError::UnknownCodec(_))));
    }
}
