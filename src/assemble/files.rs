//! The spec's `files` section, placed last so that it can override anything from images.
//!
//! LinuxKit's rules: a file gets mode 0600 and a directory 0700 unless `mode` says
//! otherwise; missing parents are created 0755; `uid`/`gid` are numbers or names looked up
//! in the image's own `/etc/passwd` and `/etc/group`; `metadata: yaml` writes the spec
//! itself. A `source` is read from the path the lock pinned and must still hash to the
//! locked digest.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, HashingReader};
use crate::lock::BuildInputs;
use crate::source_date::SourceDate;
use crate::spec::{FileKind, Id, MetadataFormat, Spec};
use crate::tree::{Content, Node, NodeKind, Tree, TreeError, TreePath};

use super::{AssembleError, read_small_file};

/// Why one `files:` entry could not be placed ([`AssembleError::File`] names the entry).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The path cannot be placed in the tree (a parent is not a directory, …).
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("converting the spec to JSON: {0}")]
    SpecYaml(#[source] serde_norway::Error),
    #[error("converting the spec to JSON: {0}")]
    SpecJson(#[source] serde_json::Error),
    /// The host file a `source:` names could not be read.
    #[error("reading {}: {source}", .path.display())]
    ReadSource { path: PathBuf, source: io::Error },
    /// The host file a `source:` names could not be copied into the build spool.
    #[error("reading {}: {source}", .path.display())]
    SpoolSource { path: PathBuf, source: TreeError },
    #[error(
        "source {} changed since it was locked: expected {expected}, found {actual}; run `cairn lock` again if the change is intended",
        .path.display()
    )]
    SourceChanged { path: PathBuf, expected: Digest, actual: Digest },
    /// The lock has no pin for the `source:` (an internal inconsistency or a stale lock).
    #[error("source {0} is not pinned by the lock")]
    NotPinned(String),
    #[error("cannot resolve {name:?}: the image has no /{db}")]
    NoOwnerDb { name: String, db: &'static str },
    #[error("{name:?} is not listed in the image's /{db}")]
    OwnerNotListed { name: String, db: &'static str },
}

/// Largest `source` file accepted (they are configuration, not payload).
const MAX_SOURCE: u64 = 1 << 30;

pub(super) fn place_files(
    tree: &mut Tree,
    spec: &Spec,
    spec_yaml: &str,
    inputs: &BuildInputs,
    sd: SourceDate,
) -> Result<(), AssembleError> {
    let parent = Node::dir(0o755, sd.secs());
    for (index, entry) in spec.files.iter().enumerate() {
        let fail = |source: FileError| AssembleError::File {
            index,
            path: entry.path.to_string(),
            source: Box::new(source),
        };
        let path =
            tree.resolve_parent(&TreePath::root(), &entry.path).map_err(|e| fail(e.into()))?;
        let uid = owner_id(tree, entry.uid.as_ref(), "etc/passwd").map_err(&fail)?;
        let gid = owner_id(tree, entry.gid.as_ref(), "etc/group").map_err(&fail)?;
        let (kind, mode) = match &entry.kind {
            FileKind::Directory => (NodeKind::Dir, entry.mode),
            FileKind::Symlink { target } => (NodeKind::Symlink(target.clone()), 0o777),
            FileKind::Contents(text) => {
                (NodeKind::File(Content::inline(text.as_bytes().to_vec())), entry.mode)
            }
            FileKind::Metadata(MetadataFormat::Yaml) => {
                (NodeKind::File(Content::inline(spec_yaml.as_bytes().to_vec())), entry.mode)
            }
            FileKind::Metadata(MetadataFormat::Json) => {
                let value: serde_json::Value =
                    serde_norway::from_str(spec_yaml).map_err(|e| fail(FileError::SpecYaml(e)))?;
                let mut json =
                    serde_json::to_vec(&value).map_err(|e| fail(FileError::SpecJson(e)))?;
                json.push(b'\n');
                (NodeKind::File(Content::inline(json)), entry.mode)
            }
            FileKind::Source { path: source, optional } => match inputs.files.get(source) {
                Some(pinned) => {
                    let path = || pinned.path.clone();
                    let file = File::open(&pinned.path)
                        .map_err(|source| fail(FileError::ReadSource { path: path(), source }))?;
                    let mut reader = HashingReader::new(file);
                    let content = tree
                        .spool(&mut reader, MAX_SOURCE)
                        .map_err(|source| fail(FileError::SpoolSource { path: path(), source }))?;
                    let (actual, _) = reader.finish();
                    if actual != pinned.locked.digest {
                        let expected = pinned.locked.digest;
                        return Err(fail(FileError::SourceChanged {
                            path: path(),
                            expected,
                            actual,
                        }));
                    }
                    (NodeKind::File(content), entry.mode)
                }
                None if *optional => continue,
                None => return Err(fail(FileError::NotPinned(source.clone()))),
            },
        };
        let node = Node { kind, mode: mode & 0o7777, uid, gid, mtime: sd.secs() };
        tree.insert(path, node, &parent).map_err(|e| fail(e.into()))?;
    }
    Ok(())
}

/// Looks a user or group name up in the tree's passwd/group file.
fn owner_id(tree: &Tree, owner: Option<&Id>, db: &'static str) -> Result<u32, FileError> {
    match owner {
        None => Ok(0),
        Some(Id::Num(id)) => Ok(*id),
        Some(Id::Name(name)) => {
            let text = read_small_file(tree, db, 16 << 20)
                .ok_or_else(|| FileError::NoOwnerDb { name: name.clone(), db })?;
            String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split(':');
                    let n = fields.next()?;
                    let id = fields.nth(1)?;
                    (n == name).then(|| id.parse::<u32>().ok()).flatten()
                })
                .next()
                .ok_or_else(|| FileError::OwnerNotListed { name: name.clone(), db })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_looked_up_in_the_image() {
        let mut tree = Tree::new().unwrap();
        let id = |name: &str| Some(Id::Name(name.to_string()));
        let e = owner_id(&tree, id("www").as_ref(), "etc/passwd").unwrap_err();
        assert!(matches!(&e, FileError::NoOwnerDb { db: "etc/passwd", .. }), "{e:?}");
        assert_eq!(e.to_string(), "cannot resolve \"www\": the image has no /etc/passwd");

        let passwd = b"root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n";
        let node =
            Node { kind: NodeKind::File(Content::inline(passwd.to_vec())), ..Node::dir(0o644, 0) };
        tree.insert(TreePath::parse("etc/passwd").unwrap(), node, &Node::dir(0o755, 0)).unwrap();
        assert_eq!(owner_id(&tree, id("www").as_ref(), "etc/passwd").unwrap(), 33);
        assert_eq!(owner_id(&tree, Some(&Id::Num(7)), "etc/passwd").unwrap(), 7);
        let e = owner_id(&tree, id("nobody").as_ref(), "etc/passwd").unwrap_err();
        assert!(matches!(&e, FileError::OwnerNotListed { .. }), "{e:?}");
        assert_eq!(e.to_string(), "\"nobody\" is not listed in the image's /etc/passwd");
    }
}
