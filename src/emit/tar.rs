//! The tar writer: GNU-format tar of a tree, every header field set here.
//!
//! Each entry is one 512-byte header in GNU format (magic `"ustar  \0"`), as GNU tar
//! writes with `--format=gnu` and as Go, Python, busybox, libarchive and the `tar` crate
//! all read:
//!
//! - name: the tree path, directories with a trailing `/`. A name (or symlink target) of
//!   100 bytes or more is written as a GNU `././@LongLink` entry (type `L`, or `K` for a
//!   link target) holding the full NUL-terminated value, followed by the real header whose
//!   name field holds the first 100 bytes. The long-name header has mode 0644, uid/gid 0,
//!   mtime 0 and empty user/group names, so it too depends only on the path.
//! - mode: the node's permission bits (`& 0o7777`, including setuid/setgid/sticky), no file
//!   type bits; uid/gid: numeric (base-256 when too large for octal, GNU style); user and
//!   group names empty; mtime: the node's; no atime/ctime (those GNU fields stay zero);
//!   device numbers zero.
//! - size: the file's length for regular files, 0 otherwise; contents padded with zeros
//!   to a 512-byte boundary.
//!
//! The archive ends with two zero blocks (1024 bytes), the minimum POSIX requires. Unlike
//! GNU tar it is *not* padded further to a 10240-byte record: nothing reading a file or a
//! stream needs that, and it would only add bytes.
//!
//! The tree root is not an entry; hardlinks are written as separate regular files (the
//! tree has already resolved them to copies).

use std::io::Write;

use tar::{EntryType, Header};

use super::{EmitError, copy_content};
use crate::tree::{Node, NodeKind, Tree, TreePath};

const BLOCK: usize = 512;
/// Length of the name and linkname fields of a tar header.
const NAME_FIELD: usize = 100;

/// Writes the whole tree as a tar archive to `out` and returns `out`.
pub fn write_tar<W: Write>(tree: &Tree, out: W) -> Result<W, EmitError> {
    write_tar_filtered(tree, |_| true, out)
}

/// Writes the entries for which `include` is true, in the tree's order. A directory left
/// out does not take its children with it; filter them too if that is wanted.
pub fn write_tar_filtered<W: Write>(
    tree: &Tree,
    include: impl Fn(&TreePath) -> bool,
    mut out: W,
) -> Result<W, EmitError> {
    for (path, node) in tree.iter() {
        if path.is_root() || !include(path) {
            continue;
        }
        write_entry(tree, path, node, &mut out)?;
    }
    out.write_all(&[0u8; 2 * BLOCK]).map_err(EmitError::Write)?;
    Ok(out)
}

fn write_entry<W: Write>(
    tree: &Tree,
    path: &TreePath,
    node: &Node,
    out: &mut W,
) -> Result<(), EmitError> {
    let mut name = path.as_str().as_bytes().to_vec();
    if node.is_dir() {
        name.push(b'/');
    }
    let mut header = Header::new_gnu();
    let (entry_type, size, link) = match &node.kind {
        NodeKind::Dir => (EntryType::Directory, 0, None),
        NodeKind::File(c) => (EntryType::Regular, c.len(), None),
        NodeKind::Symlink(target) => (EntryType::Symlink, 0, Some(target.as_bytes())),
    };
    if name.len() >= NAME_FIELD {
        write_long(b'L', &name, out)?;
    }
    set_field(&mut header.as_old_mut().name, &name);
    if let Some(link) = link {
        if link.len() >= NAME_FIELD {
            write_long(b'K', link, out)?;
        }
        set_field(&mut header.as_old_mut().linkname, link);
    }
    header.set_entry_type(entry_type);
    header.set_mode(node.mode & 0o7777);
    header.set_uid(u64::from(node.uid));
    header.set_gid(u64::from(node.gid));
    header.set_mtime(node.mtime);
    header.set_size(size);
    header.set_cksum();
    out.write_all(header.as_bytes()).map_err(EmitError::Write)?;
    if let NodeKind::File(content) = &node.kind {
        copy_content(tree, path.as_str(), content, out)?;
        pad(size, out)?;
    }
    Ok(())
}

/// Copies as much of `value` as fits; the rest of the field stays zero.
fn set_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// A GNU long name (`L`) or long link target (`K`) pseudo-entry.
fn write_long<W: Write>(kind: u8, value: &[u8], out: &mut W) -> Result<(), EmitError> {
    let mut header = Header::new_gnu();
    set_field(&mut header.as_old_mut().name, b"././@LongLink");
    header.set_entry_type(EntryType::new(kind));
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let size = value.len() as u64 + 1;
    header.set_size(size);
    header.set_cksum();
    out.write_all(header.as_bytes()).map_err(EmitError::Write)?;
    out.write_all(value).map_err(EmitError::Write)?;
    out.write_all(&[0]).map_err(EmitError::Write)?;
    pad(size, out)
}

fn pad<W: Write>(size: u64, out: &mut W) -> Result<(), EmitError> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&[0u8; BLOCK][rem..]).map_err(EmitError::Write)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::testutil::*;
    use crate::tree::Content;
    use proptest::prelude::*;
    use std::io::Read;

    /// (path, kind, mode, uid, gid, mtime, contents-or-link-target)
    type Entry = (String, char, u32, u64, u64, u64, Vec<u8>);

    fn tree_entries(t: &Tree) -> Vec<Entry> {
        t.iter()
            .map(|(p, n)| {
                let (k, data) = match &n.kind {
                    NodeKind::Dir => ('d', Vec::new()),
                    NodeKind::File(c) => ('f', t.read_to_vec(c).unwrap()),
                    NodeKind::Symlink(s) => ('l', s.as_bytes().to_vec()),
                };
                let (uid, gid) = (u64::from(n.uid), u64::from(n.gid));
                (p.as_str().to_string(), k, n.mode, uid, gid, n.mtime, data)
            })
            .collect()
    }

    fn parse_tar(bytes: &[u8]) -> Vec<Entry> {
        let mut ar = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
            let raw = e.path_bytes().into_owned();
            let (k, data) = match h.entry_type() {
                EntryType::Directory => {
                    assert_eq!(raw.last(), Some(&b'/'));
                    ('d', Vec::new())
                }
                EntryType::Regular => {
                    let mut v = Vec::new();
                    e.read_to_end(&mut v).unwrap();
                    ('f', v)
                }
                EntryType::Symlink => ('l', e.link_name_bytes().unwrap().into_owned()),
                other => panic!("unexpected entry type {other:?}"),
            };
            let path = String::from_utf8(raw).unwrap().trim_end_matches('/').to_string();
            let (mode, uid, gid) = (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap());
            out.push((path, k, mode, uid, gid, h.mtime().unwrap(), data));
        }
        out
    }

    #[test]
    fn sample_tree_round_trips() {
        let t = sample_tree();
        let bytes = write_tar(&t, Vec::new()).unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        assert!(bytes[bytes.len() - 2 * BLOCK..].iter().all(|&b| b == 0));
        assert_eq!(parse_tar(&bytes), tree_entries(&t));
        assert_eq!(write_tar(&t, Vec::new()).unwrap(), bytes, "second run differs");
    }

    #[test]
    fn gnu_tar_lists_the_archive() {
        let Ok(tar_bin) = which("tar") else {
            eprintln!("skipping: no tar binary on PATH");
            return;
        };
        let t = sample_tree();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.tar");
        std::fs::write(&file, write_tar(&t, Vec::new()).unwrap()).unwrap();
        let out = std::process::Command::new(tar_bin)
            .args(["--numeric-owner", "-tvf"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains("-rwsr-xr-x 0/0"), "{listing}");
        assert!(listing.contains("drwxrwxrwt"), "{listing}");
        assert!(listing.contains(&"n".repeat(200)), "{listing}");
        assert!(listing.contains(&format!("lib -> /usr/lib/{}", "t".repeat(150))), "{listing}");
    }

    pub(crate) fn which(bin: &str) -> Result<std::path::PathBuf, ()> {
        for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
            let p = std::path::Path::new(dir).join(bin);
            if p.exists() {
                return Ok(p);
            }
        }
        Err(())
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let d = dir_template();
        let items = [
            ("a/b/c", Node::file(Content::inline("1"), 0o644, 7)),
            ("a-b", Node::symlink("a/b", 7)),
            ("a", Node::dir(0o750, 7).with_owner(1000, 1000)),
            ("z/y", Node::dir(0o755, 7)),
        ];
        let mut t1 = Tree::new().unwrap();
        for (path, node) in items.iter() {
            t1.insert(p(path), node.clone(), &d).unwrap();
        }
        let mut t2 = Tree::new().unwrap();
        t2.spool(&b"unrelated spool bytes first"[..], 100).unwrap();
        for (path, node) in items.iter().rev() {
            t2.insert(p(path), node.clone(), &d).unwrap();
        }
        assert_eq!(write_tar(&t1, Vec::new()).unwrap(), write_tar(&t2, Vec::new()).unwrap());
    }

    #[test]
    fn filter_leaves_entries_out() {
        let t = sample_tree();
        let home = p("home");
        let bytes = write_tar_filtered(&t, |q| !q.starts_with(&home), Vec::new()).unwrap();
        let names: Vec<_> = parse_tar(&bytes).into_iter().map(|e| e.0).collect();
        assert!(names.contains(&"bin/sh".to_string()));
        assert!(!names.iter().any(|n| n.starts_with("home")));
    }

    #[test]
    fn empty_tree_is_two_zero_blocks() {
        let t = Tree::new().unwrap();
        assert_eq!(write_tar(&t, Vec::new()).unwrap(), vec![0u8; 1024]);
    }

    fn arb_node() -> impl Strategy<Value = (u8, u32, u32, u32, u64, Vec<u8>, String)> {
        (
            0u8..3,
            0u32..0o10000,
            prop_oneof![Just(0u32), Just(1000), Just(65534), 0u32..3_000_000],
            prop_oneof![Just(0u32), Just(1000), 0u32..3_000_000],
            0u64..0o77777777777,
            proptest::collection::vec(any::<u8>(), 0..2000),
            "[a-z./]{1,160}",
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_trees_round_trip(
            entries in proptest::collection::vec(
                ("[a-c]{1,3}(/[a-c]{1,40}){0,5}", arb_node(), any::<bool>()),
                0..25,
            )
        ) {
            let mut t = Tree::new().unwrap();
            for (path, (kind, mode, uid, gid, mtime, data, target), spool) in entries {
                let content = if spool {
                    t.spool(&data[..], 1 << 20).unwrap()
                } else {
                    Content::inline(data)
                };
                let node = match kind {
                    0 => Node::dir(mode, mtime),
                    1 => Node::file(content, mode, mtime),
                    _ => Node::symlink(target, mtime),
                }
                .with_owner(uid, gid);
                // Paths under an existing file are refused by the tree; skip those.
                let _ = t.insert(p(&path), node, &Node::dir(0o755, mtime));
            }
            let bytes = write_tar(&t, Vec::new()).unwrap();
            prop_assert_eq!(parse_tar(&bytes), tree_entries(&t));
            prop_assert_eq!(write_tar(&t, Vec::new()).unwrap(), bytes);
        }
    }
}
