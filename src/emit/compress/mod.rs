//! Deterministic compression streams (gzip and zstd).
//!
//! Every parameter that can change the compressed bytes is fixed here, so the output is a
//! function of the input alone:
//!
//! Both compress on all the host's cores ([`std::thread::available_parallelism`]), and
//! neither's bytes depend on how many threads there are:
//!
//! - gzip: zlib-rs level 7 (see [`GZIP_LEVEL`]), fixed 32 KiB blocks deflated in parallel by zlib-rs (flate2's
//!   `zlib-rs` backend, pinned by `Cargo.lock`) and joined into one gzip member; the header
//!   has mtime 0, no file name, no comment and OS byte 255 ("unknown"). See [`gzip`] for
//!   why the bytes are stable.
//! - zstd: level 3, window log 21 (level 3's own value for inputs of unknown size), a
//!   content checksum (as the `zstd` tool writes by default, so `zstd -t` and the kernel's
//!   decompressor can detect corruption), and always libzstd's multithreaded mode (at most
//!   [`ZSTD_MAX_WORKERS`] workers) with a fixed job size and overlap. That mode cuts the input into jobs by size alone, so its
//!   output is the same with 1 worker or 64 (it differs from the single-threaded mode,
//!   which is therefore never used).

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use flate2::Compression;

use super::EmitError;

pub mod gzip;

use gzip::ParGzEncoder;

/// gzip compression level of zlib-rs. Its levels 3 to 6 hash four bytes and miss the
/// three-byte matches zlib finds; level 7 searches like zlib's level 6 and, with 32 KiB
/// blocks, lands within 2% of the miniz_oxide level-6 output it replaced (1.5% larger on a
/// Debian kernel's modules, about 1.7 times faster).
const GZIP_LEVEL: u32 = 7;
/// zstd compression level.
const ZSTD_LEVEL: i32 = 3;
/// zstd window log (2 MiB).
const ZSTD_WINDOW_LOG: u32 = 21;
/// zstd job size: one window. Each worker holds about a job of input and one of output, so
/// this (with [`ZSTD_MAX_WORKERS`]) bounds memory; libzstd's default (four windows) took a
/// 2-worker build to 66 MiB.
const ZSTD_JOB_SIZE: u32 = 2 << 20;
/// At most this many zstd workers: memory grows with them, and level 3 is fast enough that
/// more add little.
const ZSTD_MAX_WORKERS: usize = 4;
/// zstd job overlap: 2^(6-9) = 1/8 of the window is reloaded from the previous job
/// (libzstd's default for level 3).
const ZSTD_OVERLAP_LOG: u32 = 6;

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
    Gzip(ParGzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// Starts a compressed stream of `codec` onto `out`, on all the host's cores. Errors are
/// write errors of `out` or a refused zstd parameter (which would be a bug in this module).
pub fn compress_to<W: Write>(codec: Codec, out: W) -> io::Result<Encoder<W>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    compress_with_threads(codec, threads, out)
}

/// [`compress_to`] with `threads` threads (at least one is used). The bytes are the same
/// for every thread count.
pub fn compress_with_threads<W: Write>(
    codec: Codec,
    threads: usize,
    out: W,
) -> io::Result<Encoder<W>> {
    let threads = threads.max(1);
    Ok(match codec {
        Codec::Gzip => {
            Encoder::Gzip(ParGzEncoder::new(out, Compression::new(GZIP_LEVEL), threads)?)
        }
        Codec::Zstd => {
            use zstd::stream::raw::CParameter;
            let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            // Never 0 workers: that is the single-threaded mode, whose bytes differ.
            let workers = threads.min(ZSTD_MAX_WORKERS);
            enc.multithread(u32::try_from(workers).unwrap_or(1))?;
            enc.set_parameter(CParameter::JobSize(ZSTD_JOB_SIZE))?;
            enc.set_parameter(CParameter::OverlapSizeLog(ZSTD_OVERLAP_LOG))?;
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
mod tests;
