//! Parallel gzip that writes the same bytes on one thread or on many.
//!
//! The input is cut into fixed blocks of [`BLOCK`] bytes (the last one may be shorter). Each
//! block is deflated on its own by a fresh raw-deflate stream whose preset dictionary is the
//! last [`DICT`] bytes of the block before it, as pigz does. Every block but the last ends
//! with a sync flush (an empty stored block), which ends it on a byte boundary with no final
//! bit set; the last block ends the deflate stream. Joined in input order, with one gzip
//! header before them and the CRC-32 (the blocks' CRCs combined) and the length mod 2^32
//! after them, they form ONE gzip member, which any gzip reader, the kernel's initramfs
//! unpacker included, decompresses as usual.
//!
//! Why the bytes never depend on the thread count or the machine: a block's compressed bytes
//! are a function of (dictionary, block, is-last) alone. The block boundaries are fixed
//! offsets, and the blocks are written in input order whichever worker finishes first.
//! Each block gets a newly made compressor, never a reused one: zlib-rs zeroes its window
//! and hash tables when it makes a compressor, while a reset keeps the old window, whose
//! stale bytes past the input can steer which match is chosen (seen: a reused compressor
//! gave other bytes). The deflate implementation is zlib-rs (flate2's `zlib-rs` backend,
//! version pinned by `Cargo.lock`): its match finder uses one portable hash function; the
//! CPU-specific code it picks at run time (compare256, slide_hash, CRC-32) computes the
//! same values as the portable code, so it changes speed, not output.
//!
//! A block whose bytes are evenly spread (compressed or random data) is stored instead:
//! deflating it would cost time and gain nothing. The test looks at the block's bytes only.
//!
//! Memory stays bounded whatever the input size: at most `2 × threads` blocks are in flight
//! (queued, being compressed, or waiting to be written in order), each about
//! `BLOCK + DICT` bytes of input plus its compressed output, and each worker uses one
//! compressor at a time (about 300 KiB for window bits 15).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of input per independently compressed block. Measured at zlib-rs level 7 on a
/// Debian kernel's modules against miniz_oxide's level 6 as one stream: 32 KiB blocks
/// +1.5%, 128 KiB +2.0%, 16 KiB +2.4%.
pub const BLOCK: usize = 32 * 1024;
/// Blocks at least this long whose byte histogram is flat are stored, not deflated.
const FLAT_MIN: usize = 16 * 1024;
/// Bytes of the previous block given to the next one as its preset dictionary (deflate's
/// whole window).
const DICT: usize = 32 * 1024;
/// deflate window bits (a 32 KiB window, as gzip writes).
const WINDOW_BITS: u8 = 15;

/// gzip header: magic, deflate, no flags (no name, comment or extra field), mtime 0,
/// XFL 0, OS 255 ("unknown"): nothing about the host or the time.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// One block to compress.
struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Deflated>>,
}

/// One compressed block and the CRC-32 of its input.
struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
}

/// A writer that gzip-compresses onto `out` with `threads` threads (see the module doc).
/// Call [`ParGzEncoder::finish`] to end the stream.
pub struct ParGzEncoder<W: Write> {
    out: W,
    level: Compression,
    threads: usize,
    /// The block being filled (at most `BLOCK` bytes).
    block: Vec<u8>,
    /// The last `DICT` bytes of the previous block (empty before the first).
    dict: Vec<u8>,
    crc: Crc,
    len: u64,
    /// Compressed blocks in input order, as workers deliver them.
    in_flight: VecDeque<Receiver<io::Result<Deflated>>>,
    /// The workers, started at the first full block when `threads > 1`.
    pool: Option<Pool>,
}

impl<W: Write> ParGzEncoder<W> {
    /// Writes the gzip header to `out` and returns the encoder. `threads` is clamped to ≥ 1.
    pub fn new(mut out: W, level: Compression, threads: usize) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        Ok(ParGzEncoder {
            out,
            level,
            threads: threads.max(1),
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: Crc::new(),
            len: 0,
            in_flight: VecDeque::new(),
            pool: None,
        })
    }

    /// Compresses the current block (the final one if `last`), writing out whatever is due.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let next_dict = data[data.len().saturating_sub(DICT)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        if self.threads == 1 {
            let done = deflate_block(self.level, &dict, &data, last)?;
            return self.emit(done);
        }
        let level = self.level;
        let threads = self.threads;
        let pool = self.pool.get_or_insert_with(|| Pool::start(threads, level));
        let (reply, rx) = mpsc::sync_channel(1);
        pool.send(Job { dict, data, last, reply })?;
        self.in_flight.push_back(rx);
        while self.in_flight.len() >= 2 * self.threads {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest block in flight and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.in_flight.pop_front() else { return Ok(()) };
        let done = rx.recv().map_err(|_| worker_gone())??;
        self.emit(done)
    }

    fn emit(&mut self, done: Deflated) -> io::Result<()> {
        self.crc.combine(&done.crc);
        self.out.write_all(&done.bytes)
    }

    /// Compresses the rest, writes the trailer (CRC-32 and length mod 2^32), stops the
    /// workers and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        if let Some(pool) = self.pool.take() {
            pool.stop()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the input length modulo 2^32 (RFC 1952): the truncation is the format.
        trailer[4..].copy_from_slice(&(self.len as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A full block is sent only once more input arrives, so that `finish` knows which
        // block is the last.
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    /// Flushes only the inner writer: cutting a block here would make the bytes depend on
    /// how the caller flushes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Whether `data`'s bytes are spread so evenly that deflate cannot gain (already compressed
/// or random data): its byte histogram's sum of squares is within 1/64 of a flat one's, so
/// its order-2 Rényi entropy, a lower bound of the Shannon entropy, is above 7.97 bits per
/// byte. Integer arithmetic, so every machine decides alike.
fn is_flat(data: &[u8]) -> bool {
    if data.len() < FLAT_MIN {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[usize::from(b)] += 1;
    }
    let squares: u64 = counts.iter().map(|c| c * c).sum();
    let n = data.len() as u64;
    256 * squares <= n * n + n * n / 64
}

/// Deflates `data` with a new compressor primed with `dict`: a sync-flushed non-final
/// piece, or the end of the stream if `last`. A flat block (see [`is_flat`]) is stored
/// (level 0): that costs nothing and is about as small as deflating it.
fn deflate_block(level: Compression, dict: &[u8], data: &[u8], last: bool) -> io::Result<Deflated> {
    let mut crc = Crc::new();
    crc.update(data);
    let level = if is_flat(data) { Compression::none() } else { level };
    let mut c = Compress::new_with_window_bits(level, false, WINDOW_BITS);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let start = c.total_in();
    let mut bytes = Vec::with_capacity(data.len() + data.len() / 16 + 64);
    loop {
        let used = usize::try_from(c.total_in() - start).map_err(io::Error::other)?;
        let rest = data.get(used..).unwrap_or_default();
        let status = c.compress_vec(rest, &mut bytes, flush).map_err(io::Error::other)?;
        let all_in = c.total_in() - start == data.len() as u64;
        // A flush is complete once the compressor returns with output space left over.
        let done = match (last, status) {
            (true, Status::StreamEnd) => true,
            (true, _) => false,
            (false, _) => all_in && bytes.len() < bytes.capacity(),
        };
        if done {
            return Ok(Deflated { bytes, crc });
        }
        bytes.reserve(16 * 1024);
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("a gzip compression thread stopped unexpectedly")
}

/// The worker threads and the queue of jobs they take blocks from.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(threads: usize, level: Compression) -> Pool {
        let (jobs, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                thread::spawn(move || {
                    loop {
                        // The lock is held only while taking a job, not while compressing.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let done = deflate_block(level, &job.dict, &job.data, job.last);
                        // The encoder may have gone (an error elsewhere): nothing to do then.
                        let _ = job.reply.send(done);
                    }
                })
            })
            .collect();
        Pool { jobs: Some(jobs), workers }
    }

    fn send(&self, job: Job) -> io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(worker_gone)?;
        jobs.send(job).map_err(|_| worker_gone())
    }

    /// Closes the queue and waits for the workers to exit.
    fn stop(mut self) -> io::Result<()> {
        self.jobs = None;
        let mut ok = true;
        for w in self.workers.drain(..) {
            ok &= w.join().is_ok();
        }
        if ok { Ok(()) } else { Err(worker_gone()) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the workers once their current block is done; an encoder
        // dropped without `finish` does not wait for them.
        self.jobs = None;
    }
}
