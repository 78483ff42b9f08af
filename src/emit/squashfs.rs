//! Read-only root filesystem images (SquashFS 4.0), written deterministically.
//!
//! A verified root must be a filesystem the kernel mounts read-only and reads block by
//! block through dm-verity; SquashFS is one every distribution kernel has. The image is
//! written by the `backhand` crate from the [`Tree`] (entries in the tree's sorted order,
//! contents streamed from its spool at write time) with every input to the bytes fixed:
//!
//! - the superblock's time is the source date, each inode's time its (clamped) mtime;
//! - owners are numeric, permissions are the tree's, no xattrs;
//! - zstd at a fixed level, 128 KiB blocks, compressed on one thread (backhand's parallel
//!   feature is off), identical files stored once;
//! - the image is padded to a 4 KiB multiple so dm-verity can cover all of it.
//!
//! Hard links in the tree become separate inodes whose data is stored once.

use std::io::{Seek, Write};

use backhand::compression::{CompressionOptions, Compressor, Zstd};
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};

use crate::source_date::SourceDate;
use crate::tree::{NodeKind, Tree, TreePath};

/// Data block size (SquashFS's default).
const BLOCK_SIZE: u32 = 128 * 1024;
/// zstd level: mksquashfs's default for zstd.
const ZSTD_LEVEL: u32 = 15;
/// The image's length is padded to a multiple of this (the dm-verity block size).
pub const PAD: u64 = 4096;

/// Why a root filesystem image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SquashfsError {
    #[error("{path}: SquashFS {what} {value} does not fit (at most {max})")]
    TooLarge { path: String, what: &'static str, value: u64, max: u64 },
    #[error("writing the SquashFS root image: {0}")]
    Write(#[from] backhand::BackhandError),
    #[error("padding the SquashFS root image: {0}")]
    Pad(#[source] std::io::Error),
}

fn header(
    path: &TreePath,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
) -> Result<NodeHeader, SquashfsError> {
    let mtime = u32::try_from(mtime).map_err(|_| SquashfsError::TooLarge {
        path: path.to_string(),
        what: "mtime",
        value: mtime,
        max: u32::MAX.into(),
    })?;
    // `mode & 0o7777` always fits 16 bits.
    Ok(NodeHeader::new((mode & 0o7777) as u16, uid, gid, mtime))
}

/// Writes the whole tree as a SquashFS image to `out` (at its offset 0) and returns the
/// image's length, a multiple of [`PAD`].
pub fn write_squashfs<W: Write + Seek>(
    tree: &Tree,
    date: SourceDate,
    mut out: W,
) -> Result<u64, SquashfsError> {
    let mut fs = FilesystemWriter::default();
    fs.set_block_size(BLOCK_SIZE);
    fs.set_time(u32::try_from(date.secs()).map_err(|_| SquashfsError::TooLarge {
        path: "/".into(),
        what: "source date",
        value: date.secs(),
        max: u32::MAX.into(),
    })?);
    let zstd = CompressionOptions::Zstd(Zstd { compression_level: ZSTD_LEVEL });
    fs.set_compressor(FilesystemCompressor::new(Compressor::Zstd, Some(zstd))?);
    // backhand pads to 4 KiB itself; the verity tree needs exactly that.
    fs.set_kib_padding(4);

    // The root directory: the tree's own entry if it has one, else 0755 root:root (its
    // time stays 0: backhand has no setter for it, which is as deterministic).
    fs.set_root_mode(0o755);
    for (path, node) in tree.iter() {
        let h = header(path, node.mode, node.uid, node.gid, node.mtime)?;
        if path.is_root() {
            fs.set_root_mode(h.permissions);
            fs.set_root_uid(h.uid);
            fs.set_root_gid(h.gid);
            continue;
        }
        match &node.kind {
            NodeKind::Dir => fs.push_dir(path.as_str(), h)?,
            NodeKind::File(content) => fs.push_file(tree.open(content), path.as_str(), h)?,
            NodeKind::Symlink(target) => fs.push_symlink(target.as_str(), path.as_str(), h)?,
        }
    }
    let (_, len) = fs.write(&mut out)?;
    if !len.is_multiple_of(PAD) {
        let zeros = vec![0u8; (PAD - len % PAD) as usize];
        out.write_all(&zeros).map_err(SquashfsError::Pad)?;
        return Ok(len + zeros.len() as u64);
    }
    out.flush().map_err(SquashfsError::Pad)?;
    Ok(len)
}

/// For tests: read a file back out of an image written here.
#[cfg(test)]
fn read_back(image: &[u8], path: &str) -> Option<Vec<u8>> {
    use backhand::{FilesystemReader, InnerNode};
    use std::io::Read;
    let fs = FilesystemReader::from_reader(std::io::Cursor::new(image.to_vec())).ok()?;
    for node in fs.files() {
        if node.fullpath.to_str() == Some(path)
            && let InnerNode::File(file) = &node.inner
        {
            let mut out = Vec::new();
            fs.file(file).reader().read_to_end(&mut out).ok()?;
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Tool;
    use crate::tree::{Content, Node};
    use std::io::Cursor;
    use std::process::Command;

    fn sample() -> Tree {
        let mut t = Tree::new().expect("tree");
        let dir = Node::dir(0o755, 100);
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let spooled = t.spool(&big[..], u64::MAX).expect("spool");
        let nodes = [
            ("etc/hostname", Node::file(Content::inline(b"node\n".to_vec()), 0o644, 100)),
            ("bin/tool", Node::file(spooled, 0o4755, 100).with_owner(0, 50)),
            ("bin/sh", Node::symlink("tool", 100)),
        ];
        for (path, node) in nodes {
            t.insert(TreePath::parse(path).expect("path"), node, &dir).expect("insert");
        }
        t
    }

    fn image(tree: &Tree) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let len = write_squashfs(tree, SourceDate::new(1_700_000_000).expect("date"), &mut out)
            .expect("squashfs");
        let bytes = out.into_inner();
        assert_eq!(bytes.len() as u64, len);
        bytes
    }

    #[test]
    fn deterministic_padded_and_readable() {
        let tree = sample();
        let a = image(&tree);
        let b = image(&sample());
        assert!(a == b, "same tree, same bytes");
        assert!((a.len() as u64).is_multiple_of(PAD));
        assert_eq!(&a[..4], b"hsqs");
        assert_eq!(read_back(&a, "/etc/hostname").as_deref(), Some(&b"node\n"[..]));
        let tool = read_back(&a, "/bin/tool").expect("bin/tool");
        assert_eq!(tool.len(), 300_000);
    }

    /// `unsquashfs` (squashfs-tools) lists what we wrote with its modes and owners.
    #[test]
    fn unsquashfs_reads_it() {
        let unsquashfs = Tool::external("unsquashfs", "apt-get install squashfs-tools");
        let Some(dir) = unsquashfs.scratch("emit::squashfs::unsquashfs_reads_it") else { return };
        let path = dir.path().join("root.img");
        std::fs::write(&path, image(&sample())).expect("write");
        let out = Command::new("unsquashfs")
            .args(["-lln", "-no-progress"])
            .arg(&path)
            .output()
            .expect("unsquashfs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("-rwsr-xr-x 0/50"), "{listing}");
        assert!(listing.contains("squashfs-root/bin/sh -> tool"), "{listing}");
        assert!(listing.contains("1970-01-01 00:01 squashfs-root/etc/hostname"), "{listing}");
        assert!(listing.contains("drwxr-xr-x 0/0"), "{listing}");
    }
}
