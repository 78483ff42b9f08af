//! The entries LinuxKit gives every image it unpacks, so that a container with a read-only
//! root still has mount points for what its runtime binds over them.
//!
//! LinuxKit's `ImageTar` (`src/cmd/linuxkit/moby/build/image.go`, the `exclude`, `replace`
//! and `touch` tables) applies three rules to each init image (at `/`) and to each
//! container's copy of its image (`lower/` or `rootfs/`), never to the kernel image:
//! - non-directories at `.dockerenv`, `Dockerfile`, `dev/console`, `dev/pts`, `dev/shm` and
//!   `etc/hostname` are left out (the hostname comes from the spec's `files`);
//! - `etc/hosts` gets LinuxKit's localhost table and `etc/resolv.conf` the placeholder
//!   "no resolv.conf configured", keeping the image's mode and owner; in the init images
//!   `etc/resolv.conf` is instead a symlink to `/run/resolvconf/resolv.conf`, which the init
//!   creates at boot for containers (dhcpcd) that write it;
//! - `dev/`, `dev/pts/`, `dev/shm/`, `etc/`, `proc/`, `sys/` (directories 0755),
//!   `etc/mtab` (a symlink to `/proc/mounts`, header mode 0755), `etc/hosts` and
//!   `etc/resolv.conf` (0644) are created, owned by root, when the image lacks them; what
//!   the image has is kept, with its mtime set to the build's date as every generated entry.
//!
//! Where the image holds something of another type (a directory at `etc/hosts`, a symlink
//! at `etc`), it is left as it is: nothing here follows a symlink or replaces a directory.
//! LinuxKit fails the build on a non-regular `etc/hosts`; cairn writes a regular file there.

use crate::source_date::SourceDate;
use crate::tree::{Content, Node, NodeKind, Tree, TreeError, TreePath};

/// LinuxKit's `etc/hosts`.
pub const HOSTS: &str = "127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";

/// LinuxKit's placeholder `etc/resolv.conf` for containers.
pub const NO_RESOLV_CONF: &str = "\n# no resolv.conf configured\n";

/// Where the init images' `etc/resolv.conf` points (somewhere writable at run time).
pub const RESOLV_CONF_SYMLINK: &str = "/run/resolvconf/resolv.conf";

/// Non-directories LinuxKit leaves out of every image.
const EXCLUDE: [&str; 6] =
    [".dockerenv", "Dockerfile", "dev/console", "dev/pts", "dev/shm", "etc/hostname"];

/// Which kind of image root is being completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// An init image, unpacked at `/`: `etc/resolv.conf` is [`RESOLV_CONF_SYMLINK`].
    Init,
    /// A container's copy of its image: `etc/resolv.conf` is [`NO_RESOLV_CONF`].
    Container,
}

/// One entry of LinuxKit's `touch` table.
#[derive(Clone, Copy)]
enum Touch {
    /// A directory (0755), created when missing.
    Dir,
    /// A symlink with this header mode, created when missing; the image's entry is kept.
    Link(&'static str, u32),
    /// A file whose contents are always LinuxKit's, whatever the image had.
    File(&'static str),
    /// A symlink that replaces whatever non-directory the image has.
    ReplaceLink(&'static str),
}

/// Applies LinuxKit's rules (see the module docs) to the image unpacked at `root`.
pub fn complete_image_root(
    tree: &mut Tree,
    root: &TreePath,
    kind: ImageKind,
    sd: SourceDate,
) -> Result<(), TreeError> {
    for rel in EXCLUDE {
        let p = root.join(rel)?;
        if tree.get(&p).is_some_and(|n| !n.is_dir()) {
            tree.remove(&p);
        }
    }
    let resolv = match kind {
        ImageKind::Init => Touch::ReplaceLink(RESOLV_CONF_SYMLINK),
        ImageKind::Container => Touch::File(NO_RESOLV_CONF),
    };
    // LinuxKit's order (sorted names): parents come before their children.
    let table = [
        ("dev", Touch::Dir),
        ("dev/pts", Touch::Dir),
        ("dev/shm", Touch::Dir),
        ("etc", Touch::Dir),
        ("etc/hosts", Touch::File(HOSTS)),
        ("etc/mtab", Touch::Link("/proc/mounts", 0o755)),
        ("etc/resolv.conf", resolv),
        ("proc", Touch::Dir),
        ("sys", Touch::Dir),
    ];
    let sd = sd.secs();
    let parent_template = Node::dir(0o755, sd);
    for (rel, touch) in table {
        let path = root.join(rel)?;
        if !parents_are_dirs(tree, root, &path) {
            continue;
        }
        let node = match (touch, tree.get(&path)) {
            (Touch::Dir, Some(n)) if n.is_dir() => Node { mtime: sd, ..n.clone() },
            (_, Some(n)) if n.is_dir() => continue,
            (Touch::Dir, Some(_)) => continue,
            (Touch::Link(..), Some(n)) => Node { mtime: sd, ..n.clone() },
            (Touch::File(text), Some(n)) => {
                let (mode, uid, gid) = match n.kind {
                    NodeKind::File(_) => (n.mode, n.uid, n.gid),
                    _ => (0o644, 0, 0),
                };
                let kind = NodeKind::File(Content::inline(text.as_bytes().to_vec()));
                Node { kind, mode, uid, gid, mtime: sd }
            }
            (Touch::ReplaceLink(target), Some(n)) => {
                Node { kind: NodeKind::Symlink(target.to_string()), mtime: sd, ..n.clone() }
            }
            (Touch::Dir, None) => Node::dir(0o755, sd),
            (Touch::Link(target, mode), None) => Node { mode, ..Node::symlink(target, sd) },
            (Touch::File(text), None) => {
                Node::file(Content::inline(text.as_bytes().to_vec()), 0o644, sd)
            }
            (Touch::ReplaceLink(target), None) => Node { mode: 0o644, ..Node::symlink(target, sd) },
        };
        tree.insert(path, node, &parent_template)?;
    }
    Ok(())
}

/// Whether every ancestor of `path` below `root` is absent or a directory (never a symlink:
/// nothing is placed through one).
fn parents_are_dirs(tree: &Tree, root: &TreePath, path: &TreePath) -> bool {
    let mut cur = path.parent();
    while let Some(p) = cur {
        if !p.starts_with(root) || p == *root {
            return true;
        }
        if tree.get(&p).is_some_and(|n| !n.is_dir()) {
            return false;
        }
        cur = p.parent();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SD: u64 = 1_700_000_000;

    fn p(s: &str) -> TreePath {
        TreePath::parse(s).unwrap()
    }

    /// `path kind mode uid:gid mtime [contents or target]`, one line per entry under `root`.
    fn listing(tree: &Tree, root: &TreePath) -> Vec<String> {
        tree.iter_under(root)
            .filter(|(path, _)| *path != root)
            .map(|(path, n)| {
                let rel = path.strip_prefix(root).unwrap();
                let what = match &n.kind {
                    NodeKind::Dir => "dir".to_string(),
                    NodeKind::File(c) => {
                        format!(
                            "file {:?}",
                            String::from_utf8(tree.read_to_vec(c).unwrap()).unwrap()
                        )
                    }
                    NodeKind::Symlink(t) => format!("link {t}"),
                };
                format!("{rel} {:o} {}:{} {} {what}", n.mode, n.uid, n.gid, n.mtime)
            })
            .collect()
    }

    fn complete(tree: &mut Tree, root: &str, kind: ImageKind) {
        complete_image_root(tree, &p(root), kind, SourceDate::new(SD).unwrap()).unwrap();
    }

    #[test]
    fn an_empty_container_image_gets_linuxkit_entries() {
        let mut tree = Tree::new().unwrap();
        complete(&mut tree, "c/lower", ImageKind::Container);
        // Every entry is root's, dated SD; the files hold LinuxKit's exact text.
        let expected = "dev 755 dir|dev/pts 755 dir|dev/shm 755 dir|etc 755 dir|\
            etc/hosts 644 file HOSTS|etc/mtab 755 link /proc/mounts|\
            etc/resolv.conf 644 file RESOLV|proc 755 dir|sys 755 dir";
        let expected: Vec<String> = expected
            .split('|')
            .map(|l| {
                let (path, rest) = l.split_once(' ').unwrap();
                let rest = rest
                    .replace("HOSTS", &format!("{HOSTS:?}"))
                    .replace("RESOLV", &format!("{NO_RESOLV_CONF:?}"));
                let (mode, what) = rest.split_once(' ').unwrap();
                format!("{path} {mode} 0:0 {SD} {what}")
            })
            .collect();
        assert_eq!(listing(&tree, &p("c/lower")), expected);
        assert!(HOSTS.starts_with("127.0.0.1       localhost\n::1     localhost ip6-localhost"));
    }

    /// What the image has is kept (with the build's date), except the contents of the
    /// replaced files and the left-out entries; nothing is duplicated.
    #[test]
    fn image_entries_win_except_replaced_and_excluded_ones() {
        let mut tree = Tree::new().unwrap();
        let parent = Node::dir(0o755, 5);
        let put = |tree: &mut Tree, path: &str, node: Node| {
            tree.insert(p(&format!("r/{path}")), node, &parent).unwrap()
        };
        put(&mut tree, "dev", Node::dir(0o700, 5).with_owner(1, 2));
        put(&mut tree, "dev/shm", Node::file(Content::inline("x"), 0o600, 5));
        put(&mut tree, "etc", Node::dir(0o750, 5));
        put(&mut tree, "etc/hosts", Node::file(Content::inline("mine"), 0o600, 5).with_owner(3, 4));
        put(&mut tree, "etc/mtab", Node::symlink("../proc/self/mounts", 5));
        put(&mut tree, "etc/hostname", Node::file(Content::inline("h"), 0o644, 5));
        put(&mut tree, "etc/resolv.conf", Node::file(Content::inline("ns"), 0o640, 5));
        put(&mut tree, "Dockerfile", Node::file(Content::inline("FROM x"), 0o644, 5));
        put(&mut tree, "proc", Node::symlink("elsewhere", 5));
        complete(&mut tree, "r", ImageKind::Init);
        let hosts = format!("file {HOSTS:?}");
        assert_eq!(
            listing(&tree, &p("r")),
            [
                format!("dev 700 1:2 {SD} dir"),
                format!("dev/pts 755 0:0 {SD} dir"),
                // A non-directory dev/shm is left out, then made a directory.
                format!("dev/shm 755 0:0 {SD} dir"),
                format!("etc 750 0:0 {SD} dir"),
                format!("etc/hosts 600 3:4 {SD} {hosts}"),
                format!("etc/mtab 777 0:0 {SD} link ../proc/self/mounts"),
                format!("etc/resolv.conf 640 0:0 {SD} link {RESOLV_CONF_SYMLINK}"),
                // A symlink where a directory belongs is left alone.
                "proc 777 0:0 5 link elsewhere".to_string(),
                format!("sys 755 0:0 {SD} dir"),
            ]
        );
    }

    #[test]
    fn nothing_is_placed_through_a_symlink_or_over_a_directory() {
        let mut tree = Tree::new().unwrap();
        let parent = Node::dir(0o755, 5);
        tree.insert(p("r/etc"), Node::symlink("/host/etc", 5), &parent).unwrap();
        tree.insert(p("s/etc/hosts"), Node::dir(0o755, 5), &parent).unwrap();
        complete(&mut tree, "r", ImageKind::Container);
        complete(&mut tree, "s", ImageKind::Init);
        assert!(tree.get(&p("r/etc/hosts")).is_none());
        assert_eq!(tree.get(&p("r/etc")).unwrap().kind, NodeKind::Symlink("/host/etc".into()));
        assert!(tree.get(&p("s/etc/hosts")).unwrap().is_dir());
        assert_eq!(
            tree.get(&p("s/etc/resolv.conf")).unwrap().kind,
            NodeKind::Symlink(RESOLV_CONF_SYMLINK.into())
        );
        for (path, _) in tree.iter() {
            assert!(path.starts_with(&p("r")) || path.starts_with(&p("s")), "{path}");
        }
    }
}
