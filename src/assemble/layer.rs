//! Applying one OCI layer (an uncompressed tar stream) to a subtree of the image.
//!
//! Layers are untrusted. Every entry name goes through [`TreePath::parse`] (no `..`, leading
//! `/` dropped), parents are resolved inside the subtree with chroot semantics, and the
//! host filesystem is never touched: contents go to the tree's spool. What the OCI image
//! spec says about whiteouts is followed, with one hardening: a whiteout must name a plain
//! sibling, never `.`, `..` or an empty name. Device nodes and FIFOs are not copied (they are
//! listed in [`LayerStats::skipped`]); the kernel's devtmpfs provides devices at boot.
//! A later entry for the same path replaces an earlier one, as when a tar is extracted.

use std::collections::BTreeSet;
use std::io::{self, Read};

use crate::source_date::SourceDate;
use crate::tree::{Node, NodeKind, Tree, TreeError, TreePath};

/// Why a layer could not be applied. Each variant names the layer (`layer`) and the entry.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{layer}: entry name {name:?} is not valid UTF-8")]
    NonUtf8 { layer: String, name: String },
    #[error("{layer}: entry {name:?}: {source}")]
    Path { layer: String, name: String, source: TreeError },
    #[error("{layer}: whiteout {name:?} does not name a plain file (it names {target:?})")]
    BadWhiteout { layer: String, name: String, target: String },
    #[error("{layer}: entry {name:?} has unsupported type {kind} ")]
    Unsupported { layer: String, name: String, kind: String },
    #[error("{layer}: entry {name:?} has an owner id {id} larger than 32 bits")]
    Owner { layer: String, name: String, id: u64 },
    #[error("{layer}: the archive is truncated or malformed: {source}")]
    Archive { layer: String, source: io::Error },
    #[error(
        "{layer}: unpacked contents exceed the limit of {limit} bytes (possible decompression bomb; raise it with --max-unpacked-size)"
    )]
    TooLarge { layer: String, limit: u64 },
    #[error(
        "{layer}: unpacks to more than {limit} bytes from {compressed} compressed bytes, more than {ratio} times its size (possible decompression bomb; raise it with --max-expansion-ratio)"
    )]
    Expansion { layer: String, compressed: u64, limit: u64, ratio: u64 },
}

/// How much the layers of one build may still unpack.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Content bytes left for all layers together (`--max-unpacked-size`).
    pub left: u64,
    /// Most content bytes a compressed layer may unpack per compressed byte
    /// (`--max-expansion-ratio`), once past [`RATIO_FLOOR`].
    pub max_ratio: u64,
}

/// Unpacked bytes any compressed layer may hold whatever its ratio: small layers of
/// zero-filled or repetitive files compress far better than the ratio allows.
pub const RATIO_FLOOR: u64 = 64 << 20;

/// Files at least this large are checked against the spool's free space before writing.
const SPACE_CHECK_MIN: u64 = 1 << 20;

impl Budget {
    /// Applies `apply` with the budget of one layer of `compressed` bytes (`None` when it
    /// is not compressed), reporting a layer that outgrows its ratio as such.
    pub fn layer<T>(
        &mut self,
        layer: &str,
        compressed: Option<u64>,
        apply: impl FnOnce(&mut u64) -> Result<T, LayerError>,
    ) -> Result<T, LayerError> {
        let cap =
            compressed.map_or(u64::MAX, |c| c.saturating_mul(self.max_ratio).max(RATIO_FLOOR));
        let by_ratio = cap < self.left;
        let start = self.left.min(cap);
        let mut left = start;
        let applied = apply(&mut left);
        self.left -= start - left;
        match (applied, compressed) {
            (Err(LayerError::TooLarge { .. }), Some(compressed)) if by_ratio => {
                let ratio = self.max_ratio;
                Err(LayerError::Expansion {
                    layer: layer.to_string(),
                    compressed,
                    limit: cap,
                    ratio,
                })
            }
            (other, _) => other,
        }
    }
}

/// What applying a layer did, beyond changing the tree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub bytes: u64,
    /// Device nodes, FIFOs and sockets that were left out, by path.
    pub skipped: Vec<String>,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Applies the tar stream `reader` to the subtree `root` of `tree`.
///
/// `layer` names the layer in error messages. Every mtime is clamped to `source_date`.
/// `budget` is the number of content bytes this layer may still unpack; it is reduced by
/// what the layer used.
pub fn apply_layer(
    tree: &mut Tree,
    root: &TreePath,
    reader: impl Read,
    layer: &str,
    source_date: SourceDate,
    budget: &mut u64,
) -> Result<LayerStats, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let archive_err = |source: io::Error| LayerError::Archive { layer: layer.to_string(), source };
    let mut stats = LayerStats::default();
    // Whiteouts hide lower layers only: entries this layer added survive them.
    let mut added: BTreeSet<TreePath> = BTreeSet::new();
    let parent_template = Node::dir(0o755, source_date.secs());

    for entry in archive.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw_name).map_err(|e| LayerError::NonUtf8 {
            layer: layer.to_string(),
            name: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })?;
        let path_err = |source: TreeError| LayerError::Path {
            layer: layer.to_string(),
            name: name.clone(),
            source: source.relative_to(root),
        };
        let rel = TreePath::parse(&name).map_err(path_err)?;
        stats.entries += 1;
        if rel.is_root() {
            continue;
        }
        let full = root.join_path(&rel);
        let path = tree.resolve_parent(root, &full).map_err(path_err)?;

        // Whiteouts.
        let file_name = path.file_name().to_string();
        if let Some(target) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            let dir = path.parent().unwrap_or_default();
            if file_name == OPAQUE_MARKER {
                let doomed: Vec<TreePath> = tree
                    .iter_under(&dir)
                    .filter(|(p, _)| **p != dir && !added.contains(*p))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in doomed {
                    tree.remove(&p);
                }
                continue;
            }
            if target.is_empty()
                || target == "."
                || target == ".."
                || target.starts_with(WHITEOUT_PREFIX)
            {
                return Err(LayerError::BadWhiteout {
                    layer: layer.to_string(),
                    name: name.clone(),
                    target: target.to_string(),
                });
            }
            let victim = dir.join_path(&TreePath::parse(target).map_err(path_err)?);
            if !added.contains(&victim) {
                tree.remove(&victim);
            }
            continue;
        }

        let header = entry.header();
        let owner = |id: u64| {
            u32::try_from(id).map_err(|_| LayerError::Owner {
                layer: layer.to_string(),
                name: name.clone(),
                id,
            })
        };
        let uid = owner(header.uid().map_err(archive_err)?)?;
        let gid = owner(header.gid().map_err(archive_err)?)?;
        let mode = header.mode().map_err(archive_err)? & 0o7777;
        let mtime = source_date.clamp(header.mtime().map_err(archive_err)?);
        let kind = header.entry_type();

        use tar::EntryType as E;
        match kind {
            E::Regular | E::Continuous => {
                let len = entry.size();
                if len > *budget {
                    return Err(LayerError::TooLarge { layer: layer.to_string(), limit: *budget });
                }
                if len >= SPACE_CHECK_MIN {
                    tree.ensure_space(len).map_err(path_err)?;
                }
                let content = tree.spool(&mut entry, *budget).map_err(|e| match e {
                    TreeError::TooLarge { limit } => {
                        LayerError::TooLarge { layer: layer.to_string(), limit }
                    }
                    TreeError::Spool(source) => archive_err(source),
                    other => path_err(other),
                })?;
                if content.len() != len {
                    return Err(archive_err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("entry {name:?} claims {len} bytes but has {}", content.len()),
                    )));
                }
                *budget -= len;
                stats.bytes += len;
                let node = Node { kind: NodeKind::File(content), mode, uid, gid, mtime };
                tree.insert(path.clone(), node, &parent_template).map_err(path_err)?;
            }
            E::Directory => {
                let node = Node { kind: NodeKind::Dir, mode, uid, gid, mtime };
                tree.insert(path.clone(), node, &parent_template).map_err(path_err)?;
            }
            E::Symlink => {
                let target = link_name(&entry, layer, &name)?;
                let node = Node { kind: NodeKind::Symlink(target), mode: 0o777, uid, gid, mtime };
                tree.insert(path.clone(), node, &parent_template).map_err(path_err)?;
            }
            E::Link => {
                let target = link_name(&entry, layer, &name)?;
                let target_full = root.join_path(&TreePath::parse(&target).map_err(path_err)?);
                let target_path = tree.resolve_parent(root, &target_full).map_err(path_err)?;
                tree.hardlink(path.clone(), &target_path, &parent_template).map_err(path_err)?;
            }
            E::Char | E::Block | E::Fifo => {
                stats.skipped.push(path.to_string());
                continue;
            }
            other => {
                return Err(LayerError::Unsupported {
                    layer: layer.to_string(),
                    name: name.clone(),
                    kind: format!("{other:?}"),
                });
            }
        }
        added.insert(path);
    }
    Ok(stats)
}

fn link_name<R: Read>(
    entry: &tar::Entry<'_, R>,
    layer: &str,
    name: &str,
) -> Result<String, LayerError> {
    let bytes = entry
        .link_name_bytes()
        .ok_or_else(|| LayerError::Archive {
            layer: layer.to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("link {name:?} has no target"),
            ),
        })?
        .into_owned();
    String::from_utf8(bytes).map_err(|e| LayerError::NonUtf8 {
        layer: layer.to_string(),
        name: format!("{name} -> {}", String::from_utf8_lossy(e.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    // Tars built header by header, so that hostile names reach the parser unchanged.
    use crate::testkit::RawTar;
    use crate::tree::Content;

    fn apply(tree: &mut Tree, bytes: &[u8]) -> Result<LayerStats, LayerError> {
        let mut budget = 1 << 20;
        apply_layer(tree, &TreePath::root(), bytes, "test layer", SourceDate::ZERO, &mut budget)
    }

    fn paths(tree: &Tree) -> Vec<String> {
        tree.iter().map(|(p, _)| p.to_string()).collect()
    }

    fn content(tree: &Tree, path: &str) -> Vec<u8> {
        match &tree.get(&TreePath::parse(path).unwrap()).unwrap().kind {
            NodeKind::File(c) => tree.read_to_vec(c).unwrap(),
            other => panic!("{path} is {other:?}"),
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        let mut t = Tree::new().unwrap();
        let lower = RawTar::new()
            .dir("etc/")
            .file("etc/a", b"a")
            .file("etc/b", b"b")
            .dir("var/")
            .file("var/old", b"o")
            .finish();
        apply(&mut t, &lower).unwrap();
        let upper = RawTar::new()
            .file("etc/.wh.a", b"")
            .file("var/new", b"n")
            .file("var/.wh..wh..opq", b"")
            .finish();
        apply(&mut t, &upper).unwrap();
        assert_eq!(paths(&t), ["etc", "etc/b", "var", "var/new"]);
    }

    #[test]
    fn dotdot_is_refused() {
        let mut t = Tree::new().unwrap();
        let bad = RawTar::new().file("../evil", b"x").finish();
        let err = apply(&mut t, &bad).unwrap_err();
        assert!(matches!(err, LayerError::Path { source: TreeError::DotDot(_), .. }), "{err}");
        assert!(t.is_empty());
    }

    #[test]
    fn absolute_names_land_under_the_root() {
        let mut t = Tree::new().unwrap();
        apply(&mut t, &RawTar::new().file("/etc/passwd", b"root").finish()).unwrap();
        assert_eq!(paths(&t), ["etc", "etc/passwd"]);
    }

    #[test]
    fn writing_through_an_escaping_symlink_stays_inside() {
        let mut t = Tree::new().unwrap();
        let root = TreePath::parse("containers/x/rootfs").unwrap();
        let bad = RawTar::new().symlink("escape", "/etc").symlink("up", "../../../..").finish();
        let mut budget = 1 << 20;
        apply_layer(&mut t, &root, &bad[..], "l1", SourceDate::ZERO, &mut budget).unwrap();
        let bad2 = RawTar::new().file("escape/passwd", b"x").file("up/etc/shadow", b"y").finish();
        apply_layer(&mut t, &root, &bad2[..], "l2", SourceDate::ZERO, &mut budget).unwrap();
        for (p, _) in t.iter() {
            assert!(p.starts_with(&root) || root.starts_with(p), "{p} escaped");
        }
        assert!(t.get(&root.join("etc/passwd").unwrap()).is_some());
        assert!(t.get(&root.join("etc/shadow").unwrap()).is_some());
    }

    #[test]
    fn whiteout_naming_a_parent_is_refused() {
        let mut t = Tree::new().unwrap();
        apply(&mut t, &RawTar::new().file("a/b/f", b"x").finish()).unwrap();
        let err = apply(&mut t, &RawTar::new().file("a/b/.wh...", b"").finish()).unwrap_err();
        assert!(matches!(err, LayerError::BadWhiteout { .. }), "{err}");
        assert_eq!(paths(&t), ["a", "a/b", "a/b/f"]);
    }

    #[test]
    fn hardlinks_need_an_earlier_target_inside() {
        let mut t = Tree::new().unwrap();
        let err = apply(&mut t, &RawTar::new().hardlink("x", "not/yet").finish()).unwrap_err();
        assert!(matches!(err, LayerError::Path { source: TreeError::BadHardlink { .. }, .. }));
        let err =
            apply(&mut t, &RawTar::new().hardlink("x", "../../etc/passwd").finish()).unwrap_err();
        assert!(matches!(err, LayerError::Path { source: TreeError::DotDot(_), .. }));
        apply(&mut t, &RawTar::new().file("f", b"data").hardlink("g", "f").finish()).unwrap();
        assert_eq!(content(&t, "g"), b"data");
    }

    #[test]
    fn device_nodes_are_skipped() {
        let mut t = Tree::new().unwrap();
        let tar = RawTar::new()
            .entry(b"dev/sda", b'4', b"", b"")
            .entry(b"dev/null", b'3', b"", b"")
            .entry(b"fifo", b'6', b"", b"")
            .finish();
        let stats = apply(&mut t, &tar).unwrap();
        assert_eq!(stats.skipped, ["dev/sda", "dev/null", "fifo"]);
        assert!(t.get(&TreePath::parse("dev/sda").unwrap()).is_none());
    }

    #[test]
    fn truncated_data_is_an_error() {
        let mut t = Tree::new().unwrap();
        let mut tar = RawTar::new().file("big", &[7u8; 2000]).unfinished();
        tar.truncate(512 + 700);
        let err = apply(&mut t, &tar).unwrap_err();
        assert!(matches!(err, LayerError::Archive { .. }), "{err}");
    }

    #[test]
    fn budget_names_the_limit_that_stopped_a_layer() {
        let fail = |left: &mut u64| -> Result<(), LayerError> {
            *left = 0;
            Err(LayerError::TooLarge { layer: "l".into(), limit: 0 })
        };
        // The ratio's cap is below the total budget: the ratio is named.
        let mut b = Budget { left: RATIO_FLOOR * 4, max_ratio: 2 };
        let err = b.layer("l", Some(10), fail).unwrap_err();
        assert!(matches!(err, LayerError::Expansion { limit: RATIO_FLOOR, .. }), "{err}");
        assert_eq!(b.left, RATIO_FLOOR * 3);
        // The total budget is the smaller: the size limit is named.
        let err = b.layer("l", Some(RATIO_FLOOR * 2), fail).unwrap_err();
        assert!(matches!(err, LayerError::TooLarge { .. }), "{err}");
        assert_eq!(b.left, 0);
        // Uncompressed layers have no ratio.
        let mut b = Budget { left: 100, max_ratio: 1 };
        let used = |left: &mut u64| -> Result<(), LayerError> {
            *left -= 60;
            Ok(())
        };
        b.layer("l", None, used).unwrap();
        assert_eq!(b.left, 40);
    }

    #[test]
    fn duplicates_last_one_wins() {
        let mut t = Tree::new().unwrap();
        apply(&mut t, &RawTar::new().file("f", b"one").file("f", b"two").finish()).unwrap();
        assert_eq!(content(&t, "f"), b"two");
    }

    #[test]
    fn non_utf8_names_are_refused() {
        let mut t = Tree::new().unwrap();
        let tar = RawTar::new().entry(b"bad\xff", b'0', b"", b"").finish();
        let err = apply(&mut t, &tar).unwrap_err();
        assert!(matches!(err, LayerError::NonUtf8 { .. }), "{err}");
    }

    #[test]
    fn budget_stops_bombs() {
        let mut t = Tree::new().unwrap();
        let tar = RawTar::new().file("a", &[0u8; 600]).file("b", &[0u8; 600]).finish();
        let mut budget = 1000;
        let err =
            apply_layer(&mut t, &TreePath::root(), &tar[..], "bomb", SourceDate::ZERO, &mut budget)
                .unwrap_err();
        assert!(matches!(err, LayerError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn mtimes_are_clamped() {
        let mut t = Tree::new().unwrap();
        let mut tar = RawTar::new().file("f", b"x").finish();
        // Set mtime to 0o77777777 (later than the source date below) and fix the checksum.
        tar[136..148].copy_from_slice(b"00077777777\0");
        tar[148..156].copy_from_slice(b"        ");
        let sum: u32 = tar[..512].iter().map(|&b| b as u32).sum();
        tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut budget = 100;
        let sd = SourceDate::new(1000).unwrap();
        apply_layer(&mut t, &TreePath::root(), &tar[..], "l", sd, &mut budget).unwrap();
        assert_eq!(t.get(&TreePath::parse("f").unwrap()).unwrap().mtime, 1000);
        let _ = Content::inline("");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn sample_layer() -> Vec<u8> {
            RawTar::new()
                .dir("etc/")
                .file("etc/passwd", b"root:x:0:0::/:/bin/sh\n")
                .symlink("bin", "/usr/bin")
                .file("bin/sh", b"#!")
                .hardlink("etc/shadow", "etc/passwd")
                .file(".wh.gone", b"")
                .finish()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

            /// Whatever bytes a layer holds, applying it never panics and never places
            /// anything outside the subtree it was applied to.
            #[test]
            fn mutated_layers_stay_inside_their_root(
                flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..24),
                cut in 0usize..4096,
            ) {
                let mut bytes = sample_layer();
                for (at, b) in flips {
                    let i = at % bytes.len();
                    bytes[i] = b;
                }
                bytes.truncate(cut.max(512).min(bytes.len()));
                let mut tree = Tree::new().unwrap();
                let root = TreePath::parse("containers/services/x/lower").unwrap();
                let mut budget = 1 << 20;
                let _ = apply_layer(&mut tree, &root, &bytes[..], "fuzz", SourceDate::ZERO, &mut budget);
                for (p, _) in tree.iter() {
                    prop_assert!(p.starts_with(&root) || root.starts_with(p), "{} escaped", p);
                }
            }
        }
    }
}
