//! The cpio writer: the "newc" format (magic `070701`) that the Linux kernel unpacks as an
//! initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header (magic plus thirteen 8-digit hex fields), the
//! NUL-terminated name padded with zeros so that header and name end on a 4-byte boundary,
//! then the data padded the same way. Fields are set as follows:
//!
//! - ino: 1, 2, 3, … in the order entries are written (the tree's sorted order, filtered
//!   entries skipped), so numbering depends only on the tree and the filter;
//! - mode: file type bits (`S_IFDIR`, `S_IFREG`, `S_IFLNK`) plus the node's permission bits;
//! - uid/gid: numeric; nlink: 2 for directories, 1 otherwise (each file is its own copy, so
//!   the kernel never links two entries together); mtime: the node's;
//! - devmajor/devminor/rdevmajor/rdevminor and check: 0;
//! - names are tree paths without a leading `/` (`bin/sh`); symlink data is the target.
//!
//! The archive ends with the `TRAILER!!!` entry (ino 0, mode 0, nlink 1), padded only to 4
//! bytes, not to 512 as GNU cpio does: the kernel needs no more and it keeps outputs small.
//!
//! newc fields are 32 bits wide: a file of 4 GiB or more, or an mtime past 2106, is an
//! error rather than a silently wrong archive.

use std::io::Write;

use super::{EmitError, copy_content};
use crate::tree::{NodeKind, Tree, TreePath};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: u64 = 110;

/// Writes the entries of `tree` for which `include` is true as a newc archive to `out`, and
/// returns `out`.
pub fn write_newc<W: Write>(
    tree: &Tree,
    include: impl Fn(&TreePath) -> bool,
    mut out: W,
) -> Result<W, EmitError> {
    let mut ino: u32 = 0;
    for (path, node) in tree.iter() {
        if path.is_root() || !include(path) {
            continue;
        }
        ino = ino.checked_add(1).ok_or_else(|| EmitError::TooLarge {
            path: path.to_string(),
            what: "entry count",
            value: u64::from(u32::MAX) + 1,
            max: u64::from(u32::MAX),
            format: "cpio newc",
        })?;
        let fits = |what: &'static str, value: u64| {
            u32::try_from(value).map_err(|_| EmitError::TooLarge {
                path: path.to_string(),
                what,
                value,
                max: u64::from(u32::MAX),
                format: "cpio newc",
            })
        };
        let (type_bits, nlink, size) = match &node.kind {
            NodeKind::Dir => (S_IFDIR, 2, 0),
            NodeKind::File(c) => (S_IFREG, 1, fits("file size", c.len())?),
            NodeKind::Symlink(t) => (S_IFLNK, 1, fits("symlink target length", t.len() as u64)?),
        };
        let head = Head {
            ino,
            mode: type_bits | (node.mode & 0o7777),
            uid: node.uid,
            gid: node.gid,
            nlink,
            mtime: fits("mtime", node.mtime)?,
            size,
        };
        head.write(path.as_str(), &mut out)?;
        match &node.kind {
            NodeKind::Dir => {}
            NodeKind::File(c) => copy_content(tree, path.as_str(), c, &mut out)?,
            NodeKind::Symlink(t) => out.write_all(t.as_bytes()).map_err(EmitError::Write)?,
        }
        pad4(u64::from(size), &mut out)?;
    }
    let trailer = Head { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0 };
    trailer.write(TRAILER, &mut out)?;
    Ok(out)
}

/// The variable fields of a newc header.
struct Head {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
}

impl Head {
    /// Writes the header and the padded name.
    fn write<W: Write>(&self, name: &str, out: &mut W) -> Result<(), EmitError> {
        let namesize = name.len() as u64 + 1;
        let namesize32 = u32::try_from(namesize).map_err(|_| EmitError::TooLarge {
            path: name.to_string(),
            what: "name length",
            value: namesize,
            max: u64::from(u32::MAX),
            format: "cpio newc",
        })?;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.size,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            namesize32,
            0, // check
        );
        debug_assert_eq!(header.len() as u64, HEADER_LEN);
        out.write_all(header.as_bytes()).map_err(EmitError::Write)?;
        out.write_all(name.as_bytes()).map_err(EmitError::Write)?;
        out.write_all(&[0]).map_err(EmitError::Write)?;
        pad4(HEADER_LEN + namesize, out)
    }
}

fn pad4<W: Write>(len: u64, out: &mut W) -> Result<(), EmitError> {
    let n = ((4 - len % 4) % 4) as usize;
    out.write_all(&[0u8; 3][..n]).map_err(EmitError::Write)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::emit::testutil::*;
    use crate::tree::{Content, Node};

    pub(crate) use crate::testkit::parse_newc;

    #[test]
    fn round_trips_with_sequential_inodes() {
        let t = sample_tree();
        let bytes = write_newc(&t, |_| true, Vec::new()).unwrap();
        assert_eq!(write_newc(&t, |_| true, Vec::new()).unwrap(), bytes, "second run differs");
        let entries = parse_newc(&bytes);
        assert_eq!(entries.len(), t.len());
        for (i, (e, (path, node))) in entries.iter().zip(t.iter()).enumerate() {
            assert_eq!(e.name, path.as_str());
            assert_eq!(e.ino as usize, i + 1);
            assert_eq!(e.mode & 0o7777, node.mode);
            assert_eq!((e.uid, e.gid, u64::from(e.mtime)), (node.uid, node.gid, node.mtime));
            match &node.kind {
                NodeKind::Dir => assert_eq!((e.mode & 0o170000, e.nlink), (S_IFDIR, 2)),
                NodeKind::File(c) => {
                    assert_eq!((e.mode & 0o170000, e.nlink), (S_IFREG, 1));
                    assert_eq!(e.data, t.read_to_vec(c).unwrap());
                }
                NodeKind::Symlink(s) => {
                    assert_eq!((e.mode & 0o170000, e.nlink), (S_IFLNK, 1));
                    assert_eq!(e.data, s.as_bytes());
                }
            }
        }
        let su = entries.iter().find(|e| e.name == "bin/su").unwrap();
        assert_eq!(su.mode, 0o104755);
    }

    #[test]
    fn filter_renumbers_and_empty_archive_is_a_trailer() {
        let t = sample_tree();
        let bytes = write_newc(&t, |p| p.as_str() != "bin", Vec::new()).unwrap();
        let entries = parse_newc(&bytes);
        assert_eq!(entries[0].name, "bin/sh");
        assert_eq!(entries[0].ino, 1);
        let empty = write_newc(&t, |_| false, Vec::new()).unwrap();
        assert_eq!(empty.len(), 124); // 110 + "TRAILER!!!\0" (11) padded to 4
        assert!(parse_newc(&empty).is_empty());
    }

    #[test]
    fn mtime_beyond_32_bits_is_an_error() {
        let mut t = Tree::new().unwrap();
        let node = Node::file(Content::inline("x"), 0o644, u64::from(u32::MAX) + 1);
        t.insert(p("f"), node, &dir_template()).unwrap();
        let err = write_newc(&t, |_| true, Vec::new()).unwrap_err();
        assert!(matches!(err, EmitError::TooLarge { what: "mtime", .. }), "{err}");
    }

    #[test]
    fn gnu_cpio_lists_the_archive() {
        let bin = std::path::Path::new("/usr/bin/cpio");
        if !bin.exists() {
            eprintln!("skipping: /usr/bin/cpio is not installed");
            return;
        }
        let t = sample_tree();
        let bytes = write_newc(&t, |_| true, Vec::new()).unwrap();
        let out = crate::testkit::pipe_through(bin, &["-t", "--quiet"], &bytes);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listed: Vec<String> =
            String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
        let expected: Vec<String> = t.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(listed, expected);
    }
}
