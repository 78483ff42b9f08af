//! dm-verity hash trees, in the on-disk format `veritysetup format` writes.
//!
//! A verity hash device lets the kernel check every block of a read-only filesystem as it
//! is read: each data block's SHA-256 is stored in a tree of hash blocks whose single top
//! block hashes to the *root hash*. Whoever trusts the root hash (here: it is in the UKI's
//! signed kernel command line) trusts every block.
//!
//! The layout is the one cryptsetup uses with its defaults, so `veritysetup verify` checks
//! what we write and the kernel's `verity` target reads it:
//!
//! - a 512-byte superblock (format version 1, hash type 1, `sha256`, 4 KiB data and hash
//!   blocks), padded to one hash block;
//! - then the tree's levels, the top (smallest) level first and the leaves (hashes of data
//!   blocks) last, each level a whole number of hash blocks;
//! - each hash is `sha256(salt || block)` (hash type 1), 128 per 4 KiB hash block, the rest
//!   of a hash block zeros.
//!
//! The writer streams: it reads the data once and keeps one hash block per level in
//! memory, writing each full block at its level's offset, so memory does not grow with the
//! image. The salt and UUID are the caller's (cairn derives them from the build's inputs so
//! the bytes are reproducible; cryptsetup picks random ones).

use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

/// Data and hash block size: the page size, which is what the kernel's verity target
/// handles best and what `veritysetup` uses by default.
pub const BLOCK_SIZE: u64 = 4096;
/// SHA-256 digest length.
const DIGEST_LEN: usize = 32;
/// Hashes per hash block (digests are stored at their own size, 32 bytes, a power of 2).
const HASHES_PER_BLOCK: u64 = BLOCK_SIZE / DIGEST_LEN as u64;
/// Salt length (cryptsetup's default: one digest's length).
pub const SALT_LEN: usize = 32;
/// The superblock's size; the tree starts at the next hash block.
const SUPERBLOCK_LEN: usize = 512;

/// Why a hash tree could not be written.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    /// The data is not a whole, non-zero number of blocks.
    #[error("dm-verity data must be a non-zero multiple of {BLOCK_SIZE} bytes, got {0} bytes")]
    DataSize(u64),
    /// The data stream ended before (or ran past) the length it was declared to have.
    #[error("the dm-verity data stream was {actual} bytes, expected {expected}")]
    ShortData { expected: u64, actual: u64 },
    /// Environment: the data could not be read or the tree not written (`doing` says which).
    #[error("{doing}: {source}")]
    Io { doing: &'static str, source: io::Error },
}

/// What a verity hash device describes, and what a verifier needs to open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityInfo {
    /// The top hash block's salted SHA-256: the one value to trust.
    pub root_hash: [u8; DIGEST_LEN],
    pub salt: [u8; SALT_LEN],
    pub uuid: [u8; 16],
    /// Data blocks covered (the data's length / [`BLOCK_SIZE`]).
    pub data_blocks: u64,
    /// The hash device's length in bytes (superblock + tree).
    pub hash_len: u64,
}

impl VerityInfo {
    /// The root hash as lowercase hex (as `veritysetup` prints it and the kernel's table
    /// takes it).
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    /// The device-mapper `verity` table line for a data device and a hash device holding
    /// this tree (superblock included, so the tree starts at hash block 1): what the boot
    /// side loads to open the root.
    pub fn dm_table(&self, data_device: &str, hash_device: &str) -> String {
        let sectors = self.data_blocks * (BLOCK_SIZE / 512);
        format!(
            "0 {sectors} verity 1 {data_device} {hash_device} {BLOCK_SIZE} {BLOCK_SIZE} {} 1 sha256 {} {}",
            self.data_blocks,
            self.root_hash_hex(),
            hex::encode(self.salt)
        )
    }
}

/// The number of hash blocks in each level, leaves first, for `data_blocks` data blocks.
/// The last level has exactly one block. A single data block needs no level at all: its
/// own hash is the root (as cryptsetup computes it).
fn level_sizes(data_blocks: u64) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut blocks = data_blocks;
    while blocks > 1 {
        blocks = blocks.div_ceil(HASHES_PER_BLOCK);
        sizes.push(blocks);
    }
    sizes
}

/// `sha256(salt || block)`: hash type 1's block hash.
fn salted_hash(salt: &[u8; SALT_LEN], block: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// The 512-byte superblock cryptsetup reads (`struct verity_sb`, little-endian).
fn superblock(salt: &[u8; SALT_LEN], uuid: &[u8; 16], data_blocks: u64) -> [u8; SUPERBLOCK_LEN] {
    let mut sb = [0u8; SUPERBLOCK_LEN];
    sb[0..8].copy_from_slice(b"verity\0\0");
    sb[8..12].copy_from_slice(&1u32.to_le_bytes()); // superblock version
    sb[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash type 1: salt first
    sb[16..32].copy_from_slice(uuid);
    sb[32..38].copy_from_slice(b"sha256"); // algorithm, NUL-padded to 32 bytes
    sb[64..68].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
    sb[68..72].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
    sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&(SALT_LEN as u16).to_le_bytes());
    // 6 bytes of padding, then the salt in a 256-byte field, then 168 bytes of padding.
    sb[88..88 + SALT_LEN].copy_from_slice(salt);
    sb
}

fn read_err(source: io::Error) -> VerityError {
    VerityError::Io { doing: "reading the dm-verity data", source }
}

fn write_err(source: io::Error) -> VerityError {
    VerityError::Io { doing: "writing the dm-verity hash tree", source }
}

/// One level of the tree being filled: the hash block in progress and where the next full
/// block goes.
struct Level {
    block: Vec<u8>,
    next_offset: u64,
}

/// Reads `data_len` bytes of `data` and writes the hash device (superblock and tree) to
/// `out`, starting at `out`'s offset 0. `data_len` must be a non-zero multiple of
/// [`BLOCK_SIZE`]; pad the filesystem image first.
pub fn write_hash_tree<R: Read, W: Write + Seek>(
    mut data: R,
    data_len: u64,
    salt: [u8; SALT_LEN],
    uuid: [u8; 16],
    mut out: W,
) -> Result<VerityInfo, VerityError> {
    if data_len == 0 || !data_len.is_multiple_of(BLOCK_SIZE) {
        return Err(VerityError::DataSize(data_len));
    }
    let data_blocks = data_len / BLOCK_SIZE;
    let sizes = level_sizes(data_blocks);
    // Levels are stored top first: level i starts after all the levels above it.
    let tree_start = BLOCK_SIZE; // the superblock, padded to one hash block
    let mut levels: Vec<Level> = Vec::with_capacity(sizes.len());
    for i in 0..sizes.len() {
        let above: u64 = sizes[i + 1..].iter().sum();
        levels.push(Level {
            block: Vec::with_capacity(BLOCK_SIZE as usize),
            next_offset: tree_start + above * BLOCK_SIZE,
        });
    }
    let hash_len = tree_start + sizes.iter().sum::<u64>() * BLOCK_SIZE;

    let mut sb_block = vec![0u8; BLOCK_SIZE as usize];
    sb_block[..SUPERBLOCK_LEN].copy_from_slice(&superblock(&salt, &uuid, data_blocks));
    out.seek(SeekFrom::Start(0)).map_err(write_err)?;
    out.write_all(&sb_block).map_err(write_err)?;

    let mut root_hash = [0u8; DIGEST_LEN];
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for read in 0..data_blocks {
        if let Err(e) = data.read_exact(&mut buf) {
            return Err(match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    VerityError::ShortData { expected: data_len, actual: read * BLOCK_SIZE }
                }
                _ => read_err(e),
            });
        }
        let leaf = salted_hash(&salt, &buf);
        if levels.is_empty() {
            // One data block: no tree, its hash is the root.
            root_hash = leaf;
        } else {
            push_hash(&mut levels, 0, &leaf, &salt, &mut out)?;
        }
    }
    let mut extra = [0u8; 1];
    if data.read(&mut extra).map_err(read_err)? != 0 {
        return Err(VerityError::ShortData { expected: data_len, actual: data_len + 1 });
    }

    // Flush the partly filled blocks bottom-up; each flush feeds the level above, and the
    // top level's single block gives the root hash.
    for i in 0..levels.len() {
        if levels[i].block.is_empty() {
            continue;
        }
        let block = finish_block(&mut levels[i], &mut out)?;
        let hash = salted_hash(&salt, &block);
        if i + 1 < levels.len() {
            push_hash(&mut levels, i + 1, &hash, &salt, &mut out)?;
        } else {
            root_hash = hash;
        }
    }
    out.flush().map_err(write_err)?;
    Ok(VerityInfo { root_hash, salt, uuid, data_blocks, hash_len })
}

/// Appends a hash to level `i`; a block that fills up is written and its own hash pushed
/// to the level above. The top level never fills (it has one block of room for all of
/// the level below), so its block is finished by the caller's final flush.
fn push_hash<W: Write + Seek>(
    levels: &mut [Level],
    i: usize,
    hash: &[u8; DIGEST_LEN],
    salt: &[u8; SALT_LEN],
    out: &mut W,
) -> Result<(), VerityError> {
    levels[i].block.extend_from_slice(hash);
    if levels[i].block.len() == BLOCK_SIZE as usize && i + 1 < levels.len() {
        let block = finish_block(&mut levels[i], out)?;
        let up = salted_hash(salt, &block);
        push_hash(levels, i + 1, &up, salt, out)?;
    }
    Ok(())
}

/// Zero-pads a level's block, writes it at the level's next offset, and returns it.
fn finish_block<W: Write + Seek>(level: &mut Level, out: &mut W) -> Result<Vec<u8>, VerityError> {
    let mut block = std::mem::take(&mut level.block);
    block.resize(BLOCK_SIZE as usize, 0);
    out.seek(SeekFrom::Start(level.next_offset)).map_err(write_err)?;
    out.write_all(&block).map_err(write_err)?;
    level.next_offset += BLOCK_SIZE;
    level.block = Vec::with_capacity(BLOCK_SIZE as usize);
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Tool;
    use std::io::Cursor;
    use std::process::Command;

    /// Deterministic, non-repeating test data.
    fn data(blocks: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((blocks * BLOCK_SIZE) as usize);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while out.len() < (blocks * BLOCK_SIZE) as usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    fn tree(data: &[u8]) -> (VerityInfo, Vec<u8>) {
        let mut out = Cursor::new(Vec::new());
        let info = write_hash_tree(data, data.len() as u64, [7; SALT_LEN], [1; 16], &mut out)
            .expect("hash tree");
        (info, out.into_inner())
    }

    #[test]
    fn level_sizes_follow_the_fan_out() {
        assert_eq!(level_sizes(1), Vec::<u64>::new());
        assert_eq!(level_sizes(2), vec![1]);
        assert_eq!(level_sizes(128), vec![1]);
        assert_eq!(level_sizes(129), vec![2, 1]);
        assert_eq!(level_sizes(128 * 128), vec![128, 1]);
        assert_eq!(level_sizes(128 * 128 + 1), vec![129, 2, 1]);
    }

    #[test]
    fn one_data_block_is_its_own_root() {
        let d = data(1);
        let (info, hash) = tree(&d);
        assert_eq!(hash.len() as u64, BLOCK_SIZE);
        assert_eq!(info.root_hash, salted_hash(&[7; SALT_LEN], &d));
    }

    #[test]
    fn two_block_tree_by_hand() {
        let d = data(2);
        let (info, hash) = tree(&d);
        assert_eq!(hash.len() as u64, 2 * BLOCK_SIZE);
        assert_eq!(info.hash_len, 2 * BLOCK_SIZE);
        let b = BLOCK_SIZE as usize;
        assert_eq!(&hash[b..b + 32], &salted_hash(&[7; SALT_LEN], &d[..b]));
        assert_eq!(&hash[b + 32..b + 64], &salted_hash(&[7; SALT_LEN], &d[b..]));
        assert!(hash[b + 64..].iter().all(|&b| b == 0));
        let top = &hash[BLOCK_SIZE as usize..];
        assert_eq!(info.root_hash, salted_hash(&[7; SALT_LEN], top));
        assert_eq!(&hash[..8], b"verity\0\0");
    }

    #[test]
    fn bad_sizes_are_refused() {
        let mut out = Cursor::new(Vec::new());
        assert!(matches!(
            write_hash_tree(&[][..], 0, [0; SALT_LEN], [0; 16], &mut out),
            Err(VerityError::DataSize(0))
        ));
        assert!(matches!(
            write_hash_tree(&[0u8; 100][..], 100, [0; SALT_LEN], [0; 16], &mut out),
            Err(VerityError::DataSize(100))
        ));
        let short = data(1);
        assert!(matches!(
            write_hash_tree(&short[..], 2 * BLOCK_SIZE, [0; SALT_LEN], [0; 16], &mut out),
            Err(VerityError::ShortData { .. })
        ));
        let long = data(3);
        assert!(matches!(
            write_hash_tree(&long[..], 2 * BLOCK_SIZE, [0; SALT_LEN], [0; 16], &mut out),
            Err(VerityError::ShortData { .. })
        ));
    }

    #[test]
    fn a_flipped_data_bit_changes_the_root() {
        let mut d = data(300);
        let (a, _) = tree(&d);
        d[200 * BLOCK_SIZE as usize + 5] ^= 1;
        let (b, _) = tree(&d);
        assert_ne!(a.root_hash, b.root_hash);
    }

    /// The same bytes `veritysetup format` writes for the same salt and UUID, and
    /// `veritysetup verify` accepts the root hash (1, 2, 128, 129 and 16,385 blocks: no
    /// tree, one level, a full level, two levels, three levels).
    #[test]
    fn matches_veritysetup() {
        let veritysetup = Tool::external("veritysetup", "apt-get install cryptsetup-bin");
        let Some(dir) = veritysetup.scratch("emit::verity::matches_veritysetup") else { return };
        for blocks in [1u64, 2, 128, 129, 128 * 128 + 1] {
            let d = data(blocks);
            let (info, ours) = tree(&d);
            let data_path = dir.path().join("data");
            let hash_path = dir.path().join("hash");
            std::fs::write(&data_path, &d).expect("write data");
            let _ = std::fs::remove_file(&hash_path);
            let out = Command::new("veritysetup")
                .arg("format")
                .arg(format!("--salt={}", hex::encode(info.salt)))
                .arg("--uuid=01010101-0101-0101-0101-010101010101")
                .args([&data_path, &hash_path])
                .output()
                .expect("run veritysetup");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains(&format!("Root hash:      \t{}", info.root_hash_hex())),
                "{blocks} blocks: veritysetup printed\n{stdout}"
            );
            let theirs = std::fs::read(&hash_path).expect("read hash");
            assert_eq!(ours.len(), theirs.len(), "{blocks} blocks: hash device length");
            assert!(ours == theirs, "{blocks} blocks: hash device bytes differ");

            std::fs::write(&hash_path, &ours).expect("write ours");
            let verify = Command::new("veritysetup")
                .arg("verify")
                .args([&data_path, &hash_path])
                .arg(info.root_hash_hex())
                .output()
                .expect("run veritysetup verify");
            assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
        }
    }
}
