//! The composed filesystem: sorted metadata in memory, file contents in a spool file.
//!
//! A [`Tree`] is what `assemble` builds and every emitter reads. Paths are [`TreePath`]s,
//! which cannot name anything outside the image root. Symlinks are stored, never followed
//! on the host: when an entry is placed beneath a symlink, the link is resolved inside the
//! tree with chroot semantics (an absolute target or `..` at the top stays at the root),
//! as container runtimes do when they apply layers. File contents are appended to one
//! anonymous temporary file (the spool) so that memory does not grow with image size.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Why a path or a tree operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("path {0:?} climbs out of the image root with \"..\"")]
    DotDot(String),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("{path:?} cannot be created: {parent:?} is a {kind}, not a directory")]
    NotADirectory { path: String, parent: String, kind: &'static str },
    #[error("{0:?}: too many levels of symbolic links (more than 40)")]
    SymlinkLoop(String),
    #[error(
        "hardlink {path:?} points to {target:?}, which is not a regular file already in the image"
    )]
    BadHardlink { path: String, target: String },
    #[error("writing file contents to the spool: {0}")]
    Spool(#[source] io::Error),
    #[error(
        "file contents exceed the size limit of {limit} bytes (raise it with --max-unpacked-size)"
    )]
    TooLarge { limit: u64 },
    #[error(
        "the build spool's filesystem has {available} bytes free, not enough for {need} more (free some space, or point TMPDIR at a larger filesystem)"
    )]
    NoSpace { need: u64, available: u64 },
}

impl TreeError {
    /// The same error with every path made relative to `root`, so that a layer's author
    /// reads paths as they appear in the layer rather than where cairn placed them.
    pub fn relative_to(self, root: &TreePath) -> TreeError {
        let rel = |p: String| match TreePath(p.clone()).strip_prefix(root) {
            Some(r) if !root.is_root() => r.0,
            _ => p,
        };
        match self {
            TreeError::NotADirectory { path, parent, kind } => {
                TreeError::NotADirectory { path: rel(path), parent: rel(parent), kind }
            }
            TreeError::SymlinkLoop(p) => TreeError::SymlinkLoop(rel(p)),
            TreeError::BadHardlink { path, target } => {
                TreeError::BadHardlink { path: rel(path), target: rel(target) }
            }
            other => other,
        }
    }
}

/// A normalized path relative to the image root: `/`-separated, no empty, `.` or `..`
/// components. The empty path is the root itself.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TreePath(String);

impl TreePath {
    /// The image root.
    pub fn root() -> TreePath {
        TreePath(String::new())
    }

    /// Normalizes a path from an archive or a spec. A leading `/` or `./` is dropped
    /// (archives written with absolute names are placed under the root, as GNU tar does);
    /// any `..` component is refused rather than resolved, since no legitimate image
    /// needs one.
    pub fn parse(raw: &str) -> Result<TreePath, TreeError> {
        if raw.contains('\0') {
            return Err(TreeError::Nul(raw.to_string()));
        }
        let mut out = String::with_capacity(raw.len());
        for comp in raw.split('/') {
            match comp {
                "" | "." => {}
                ".." => return Err(TreeError::DotDot(raw.to_string())),
                c => {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str(c);
                }
            }
        }
        Ok(TreePath(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent directory, or `None` for the root.
    pub fn parent(&self) -> Option<TreePath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => TreePath(self.0[..i].to_string()),
            None => TreePath::root(),
        })
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Appends a relative path, normalizing it like [`TreePath::parse`].
    pub fn join(&self, rel: &str) -> Result<TreePath, TreeError> {
        let rel = TreePath::parse(rel)?;
        Ok(self.join_path(&rel))
    }

    pub fn join_path(&self, rel: &TreePath) -> TreePath {
        match (self.is_root(), rel.is_root()) {
            (true, _) => rel.clone(),
            (_, true) => self.clone(),
            _ => TreePath(format!("{}/{}", self.0, rel.0)),
        }
    }

    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// True when `self` is `other` or lies beneath it.
    pub fn starts_with(&self, other: &TreePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// `self` with the leading `prefix` removed, if it lies beneath it.
    pub fn strip_prefix(&self, prefix: &TreePath) -> Option<TreePath> {
        if prefix.is_root() {
            return Some(self.clone());
        }
        if self.0 == prefix.0 {
            return Some(TreePath::root());
        }
        self.starts_with(prefix).then(|| TreePath(self.0[prefix.0.len() + 1..].to_string()))
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Where a regular file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A range of the tree's spool file.
    Spooled { offset: u64, len: u64 },
    /// Small generated contents (config.json, `files` entries).
    Inline(Arc<[u8]>),
}

impl Content {
    pub fn inline(bytes: impl Into<Vec<u8>>) -> Content {
        Content::Inline(Arc::from(bytes.into()))
    }

    pub fn len(&self) -> u64 {
        match self {
            Content::Spooled { len, .. } => *len,
            Content::Inline(b) => b.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a tree entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File(Content),
    Symlink(String),
}

impl NodeKind {
    fn name(&self) -> &'static str {
        match self {
            NodeKind::Dir => "directory",
            NodeKind::File(_) => "regular file",
            NodeKind::Symlink(_) => "symlink",
        }
    }
}

/// One entry: kind plus the metadata that reaches outputs. Host user names, atime, ctime
/// and xattrs are deliberately absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits including setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, already clamped to the source date by `assemble`.
    pub mtime: u64,
}

impl Node {
    pub fn dir(mode: u32, mtime: u64) -> Node {
        Node { kind: NodeKind::Dir, mode: mode & 0o7777, uid: 0, gid: 0, mtime }
    }
    pub fn file(content: Content, mode: u32, mtime: u64) -> Node {
        Node { kind: NodeKind::File(content), mode: mode & 0o7777, uid: 0, gid: 0, mtime }
    }
    pub fn symlink(target: impl Into<String>, mtime: u64) -> Node {
        Node { kind: NodeKind::Symlink(target.into()), mode: 0o777, uid: 0, gid: 0, mtime }
    }
    pub fn with_owner(mut self, uid: u32, gid: u32) -> Node {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir)
    }
}

const MAX_SYMLINK_HOPS: usize = 40;

/// The composed filesystem. Iteration is always in sorted path order, so a parent
/// directory always comes before its children.
pub struct Tree {
    nodes: BTreeMap<TreePath, Node>,
    spool: Spool,
}

impl Tree {
    /// An empty tree whose spool is an anonymous file in the system temporary directory.
    pub fn new() -> io::Result<Tree> {
        Ok(Tree { nodes: BTreeMap::new(), spool: Spool::new()? })
    }

    pub fn get(&self, path: &TreePath) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn get_mut(&mut self, path: &TreePath) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All entries in sorted path order (the root itself is never an entry).
    pub fn iter(&self) -> impl Iterator<Item = (&TreePath, &Node)> {
        self.nodes.iter()
    }

    /// Entries at or beneath `prefix`, in sorted order.
    pub fn iter_under<'a>(
        &'a self,
        prefix: &'a TreePath,
    ) -> Box<dyn Iterator<Item = (&'a TreePath, &'a Node)> + 'a> {
        if prefix.is_root() {
            return Box::new(self.nodes.iter());
        }
        // Children of "a" sort between "a/" and "a0" ('0' follows '/' in ASCII); "a-b"
        // sorts between "a" and "a/", so a plain range from "a" would include it.
        let lo = TreePath(format!("{}/", prefix.0));
        let hi = TreePath(format!("{}0", prefix.0));
        Box::new(self.nodes.get_key_value(prefix).into_iter().chain(self.nodes.range(lo..hi)))
    }

    /// Resolves the directories leading to `path` (not its last component) inside the
    /// subtree `root`, following symlinks with chroot semantics. Missing directories are
    /// allowed: they are created by [`Tree::insert`].
    pub fn resolve_parent(&self, root: &TreePath, path: &TreePath) -> Result<TreePath, TreeError> {
        let Some(rel) = path.strip_prefix(root) else {
            return Ok(path.clone());
        };
        let Some(parent) = rel.parent() else {
            return Ok(path.clone());
        };
        let dir = self.resolve_dir(root, &parent, path)?;
        Ok(dir.join_path(&TreePath(rel.file_name().to_string())))
    }

    fn resolve_dir(
        &self,
        root: &TreePath,
        rel: &TreePath,
        for_path: &TreePath,
    ) -> Result<TreePath, TreeError> {
        // `stack` holds the resolved components below `root`; `queue` what is left to walk.
        let mut stack: Vec<String> = Vec::new();
        let mut queue: Vec<String> = rel.components().rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(comp) = queue.pop() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let here =
                root.join_path(&TreePath(stack.join("/"))).join_path(&TreePath(comp.clone()));
            match self.nodes.get(&here).map(|n| &n.kind) {
                Some(NodeKind::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(TreeError::SymlinkLoop(for_path.to_string()));
                    }
                    if target.starts_with('/') {
                        stack.clear();
                    }
                    queue.extend(target.split('/').rev().map(str::to_string));
                }
                Some(NodeKind::File(_)) => {
                    return Err(TreeError::NotADirectory {
                        path: for_path.to_string(),
                        parent: here.to_string(),
                        kind: "regular file",
                    });
                }
                Some(NodeKind::Dir) | None => stack.push(comp),
            }
        }
        Ok(root.join_path(&TreePath(stack.join("/"))))
    }

    /// Places `node` at `path` (already resolved, see [`Tree::resolve_parent`]). Missing
    /// parents become directories with `parent_template`'s metadata. An existing directory
    /// meeting a directory keeps its children and takes the new metadata; anything else is
    /// replaced, including a whole subtree.
    pub fn insert(
        &mut self,
        path: TreePath,
        node: Node,
        parent_template: &Node,
    ) -> Result<(), TreeError> {
        if path.is_root() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cur = path.parent();
        while let Some(p) = cur {
            if p.is_root() {
                break;
            }
            match self.nodes.get(&p) {
                Some(n) if n.is_dir() => break,
                Some(n) => {
                    return Err(TreeError::NotADirectory {
                        path: path.to_string(),
                        parent: p.to_string(),
                        kind: n.kind.name(),
                    });
                }
                None => {
                    cur = p.parent();
                    missing.push(p);
                }
            }
        }
        for p in missing {
            self.nodes.insert(p, parent_template.clone());
        }
        let existing_is_dir = self.nodes.get(&path).map(Node::is_dir);
        if existing_is_dir == Some(true) && !node.is_dir() {
            self.remove(&path);
        }
        self.nodes.insert(path, node);
        Ok(())
    }

    /// Removes `path` and everything beneath it. Returns whether anything was removed.
    pub fn remove(&mut self, path: &TreePath) -> bool {
        let doomed: Vec<TreePath> = self.iter_under(path).map(|(p, _)| p.clone()).collect();
        for p in &doomed {
            self.nodes.remove(p);
        }
        !doomed.is_empty()
    }

    /// Removes everything beneath `dir` but keeps `dir` (an opaque-directory whiteout).
    pub fn clear_dir(&mut self, dir: &TreePath) {
        let doomed: Vec<TreePath> =
            self.iter_under(dir).filter(|(p, _)| *p != dir).map(|(p, _)| p.clone()).collect();
        for p in &doomed {
            self.nodes.remove(p);
        }
    }

    /// Copies every entry beneath `from` to the same relative place beneath `to` (which
    /// must not lie inside `from`). Contents are shared, not copied: this is how one image
    /// used by several containers is read from the store only once.
    pub fn copy_subtree(
        &mut self,
        from: &TreePath,
        to: &TreePath,
        parent_template: &Node,
    ) -> Result<(), TreeError> {
        let copies: Vec<(TreePath, Node)> = self
            .iter_under(from)
            .filter_map(|(p, n)| p.strip_prefix(from).map(|rel| (to.join_path(&rel), n.clone())))
            .collect();
        for (p, n) in copies {
            self.insert(p, n, parent_template)?;
        }
        Ok(())
    }

    /// Creates a hardlink as a second file entry sharing the target's contents. The target
    /// must already be a regular file in the tree.
    pub fn hardlink(
        &mut self,
        path: TreePath,
        target: &TreePath,
        parent_template: &Node,
    ) -> Result<(), TreeError> {
        let node = match self.nodes.get(target) {
            Some(n @ Node { kind: NodeKind::File(_), .. }) => n.clone(),
            _ => {
                return Err(TreeError::BadHardlink {
                    path: path.to_string(),
                    target: target.to_string(),
                });
            }
        };
        self.insert(path, node, parent_template)
    }

    /// Copies up to `limit` bytes from `reader` into the spool. More than `limit` bytes is
    /// an error, so a decompression bomb stops at the limit.
    /// Refuses to spool `len` more bytes when the spool's filesystem has not that much
    /// free plus a margin, so a large layer fails before it fills the build machine's disk.
    pub fn ensure_space(&self, len: u64) -> Result<(), TreeError> {
        const MARGIN: u64 = 64 << 20;
        let stat = nix::sys::statvfs::fstatvfs(&self.spool.file)
            .map_err(|e| TreeError::Spool(io::Error::from(e)))?;
        let available = stat.blocks_available().saturating_mul(stat.fragment_size());
        let need = len.saturating_add(MARGIN);
        if need > available {
            return Err(TreeError::NoSpace { need, available });
        }
        Ok(())
    }

    pub fn spool(&mut self, reader: impl Read, limit: u64) -> Result<Content, TreeError> {
        self.spool.append(reader, limit)
    }

    /// A reader over a file's contents.
    pub fn open(&self, content: &Content) -> ContentReader<'_> {
        match content {
            Content::Spooled { offset, len } => {
                ContentReader::Spooled { file: &self.spool.file, pos: *offset, end: offset + len }
            }
            Content::Inline(bytes) => ContentReader::Inline(io::Cursor::new(bytes.clone())),
        }
    }

    /// A reader that does not borrow the tree, so a file's contents (an archive inside the
    /// image, such as a kernel image's `kernel.tar`) can be unpacked back into the same tree.
    pub fn open_owned(&self, content: &Content) -> io::Result<OwnedContentReader> {
        Ok(match content {
            Content::Spooled { offset, len } => OwnedContentReader::Spooled {
                file: self.spool.file.try_clone()?,
                pos: *offset,
                end: offset + len,
            },
            Content::Inline(bytes) => OwnedContentReader::Inline(io::Cursor::new(bytes.clone())),
        })
    }

    /// Reads a whole file (for small generated or parsed files such as `/etc/os-release`).
    pub fn read_to_vec(&self, content: &Content) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(content.len() as usize);
        self.open(content).read_to_end(&mut out)?;
        Ok(out)
    }
}

/// An append-only anonymous file holding file contents during a build.
struct Spool {
    file: File,
    len: u64,
}

impl Spool {
    fn new() -> io::Result<Spool> {
        Ok(Spool { file: tempfile::tempfile()?, len: 0 })
    }

    fn append(&mut self, mut reader: impl Read, limit: u64) -> Result<Content, TreeError> {
        let offset = self.len;
        let mut buf = vec![0u8; 256 * 1024];
        let mut written = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TreeError::Spool(e)),
            };
            written += n as u64;
            if written > limit {
                return Err(TreeError::TooLarge { limit });
            }
            self.file.write_all(&buf[..n]).map_err(TreeError::Spool)?;
        }
        self.len += written;
        Ok(Content::Spooled { offset, len: written })
    }
}

/// Reads one file's contents from a tree.
pub enum ContentReader<'a> {
    Spooled { file: &'a File, pos: u64, end: u64 },
    Inline(io::Cursor<Arc<[u8]>>),
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ContentReader::Spooled { file, pos, end } => read_spooled(file, pos, *end, buf),
            ContentReader::Inline(c) => c.read(buf),
        }
    }
}

/// Like [`ContentReader`] but owning a handle to the spool.
pub enum OwnedContentReader {
    Spooled { file: File, pos: u64, end: u64 },
    Inline(io::Cursor<Arc<[u8]>>),
}

impl Read for OwnedContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            OwnedContentReader::Spooled { file, pos, end } => read_spooled(file, pos, *end, buf),
            OwnedContentReader::Inline(c) => c.read(buf),
        }
    }
}

fn read_spooled(file: &File, pos: &mut u64, end: u64, buf: &mut [u8]) -> io::Result<usize> {
    let want = buf.len().min((end - *pos) as usize);
    if want == 0 {
        return Ok(0);
    }
    let n = file.read_at(&mut buf[..want], *pos)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "spool file truncated"));
    }
    *pos += n as u64;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TreePath {
        TreePath::parse(s).unwrap()
    }

    fn dir() -> Node {
        Node::dir(0o755, 0)
    }

    #[test]
    fn parse_normalizes_and_refuses_dotdot() {
        assert_eq!(p("/usr//bin/./sh").as_str(), "usr/bin/sh");
        assert_eq!(p("./etc/").as_str(), "etc");
        assert!(p("/").is_root());
        assert!(matches!(TreePath::parse("a/../../etc"), Err(TreeError::DotDot(_))));
        assert!(matches!(TreePath::parse("a\0b"), Err(TreeError::Nul(_))));
    }

    #[test]
    fn prefixes_respect_component_boundaries() {
        assert!(p("a/b").starts_with(&p("a")));
        assert!(!p("ab").starts_with(&p("a")));
        assert_eq!(p("a/b/c").strip_prefix(&p("a")), Some(p("b/c")));
        assert_eq!(p("ab").strip_prefix(&p("a")), None);
    }

    #[test]
    fn insert_creates_parents_and_remove_takes_subtree() {
        let mut t = Tree::new().unwrap();
        t.insert(p("a/b/c"), Node::file(Content::inline("x"), 0o644, 0), &dir()).unwrap();
        t.insert(p("a-b"), Node::file(Content::inline("y"), 0o644, 0), &dir()).unwrap();
        let paths: Vec<_> = t.iter().map(|(p, _)| p.as_str().to_string()).collect();
        assert_eq!(paths, ["a", "a-b", "a/b", "a/b/c"]);
        assert!(t.remove(&p("a")));
        let paths: Vec<_> = t.iter().map(|(p, _)| p.as_str().to_string()).collect();
        assert_eq!(paths, ["a-b"]);
    }

    #[test]
    fn symlinked_parents_resolve_inside_the_root() {
        let mut t = Tree::new().unwrap();
        let root = p("containers/x/rootfs");
        t.insert(root.join("usr/bin").unwrap(), dir(), &dir()).unwrap();
        t.insert(root.join("bin").unwrap(), Node::symlink("/usr/bin", 0), &dir()).unwrap();
        t.insert(root.join("up").unwrap(), Node::symlink("../../../../../etc", 0), &dir()).unwrap();
        let got = t.resolve_parent(&root, &root.join("bin/sh").unwrap()).unwrap();
        assert_eq!(got, root.join("usr/bin/sh").unwrap());
        // Climbing out through a relative link stops at the subtree root.
        let got = t.resolve_parent(&root, &root.join("up/passwd").unwrap()).unwrap();
        assert_eq!(got, root.join("etc/passwd").unwrap());
    }

    #[test]
    fn symlink_loops_are_refused() {
        let mut t = Tree::new().unwrap();
        t.insert(p("a"), Node::symlink("b", 0), &dir()).unwrap();
        t.insert(p("b"), Node::symlink("a", 0), &dir()).unwrap();
        let err = t.resolve_parent(&TreePath::root(), &p("a/x")).unwrap_err();
        assert!(matches!(err, TreeError::SymlinkLoop(_)));
    }

    #[test]
    fn spool_refuses_what_its_filesystem_cannot_hold() {
        let t = Tree::new().unwrap();
        assert!(matches!(t.ensure_space(u64::MAX / 2), Err(TreeError::NoSpace { .. })));
        assert!(t.ensure_space(1).is_ok());
    }

    #[test]
    fn spool_round_trips_and_enforces_limit() {
        let mut t = Tree::new().unwrap();
        let c1 = t.spool(&b"hello"[..], 10).unwrap();
        let c2 = t.spool(&b"world!"[..], 10).unwrap();
        assert_eq!(t.read_to_vec(&c1).unwrap(), b"hello");
        assert_eq!(t.read_to_vec(&c2).unwrap(), b"world!");
        assert!(matches!(t.spool(&[0u8; 11][..], 10), Err(TreeError::TooLarge { limit: 10 })));
    }

    #[test]
    fn hardlink_needs_an_existing_file() {
        let mut t = Tree::new().unwrap();
        assert!(t.hardlink(p("x"), &p("missing"), &dir()).is_err());
        t.insert(p("f"), Node::file(Content::inline("data"), 0o600, 0), &dir()).unwrap();
        t.hardlink(p("g"), &p("f"), &dir()).unwrap();
        assert_eq!(t.get(&p("g")), t.get(&p("f")));
    }
}
