//! The spec's `files` section, placed last so that it can override anything from images.
//!
//! LinuxKit's rules: a file gets mode 0600 and a directory 0700 unless `mode` says
//! otherwise; missing parents are created 0755; `uid`/`gid` are numbers or names looked up
//! in the image's own `/etc/passwd` and `/etc/group`; `metadata: yaml` writes the spec
//! itself. A `source` is read from the path the lock pinned and must still hash to the
//! locked digest.

use std::fs::File;

use crate::digest::HashingReader;
use crate::lock::BuildInputs;
use crate::source_date::SourceDate;
use crate::spec::{FileKind, Id, MetadataFormat, Spec};
use crate::tree::{Content, Node, NodeKind, Tree, TreePath};

use super::{AssembleError, read_small_file};

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
        let fail =
            |reason: String| AssembleError::File { index, path: entry.path.to_string(), reason };
        let path =
            tree.resolve_parent(&TreePath::root(), &entry.path).map_err(|e| fail(e.to_string()))?;
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
                let value: serde_json::Value = serde_norway::from_str(spec_yaml)
                    .map_err(|e| fail(format!("converting the spec to JSON: {e}")))?;
                let mut json = serde_json::to_vec(&value)
                    .map_err(|e| fail(format!("converting the spec to JSON: {e}")))?;
                json.push(b'\n');
                (NodeKind::File(Content::inline(json)), entry.mode)
            }
            FileKind::Source { path: source, optional } => match inputs.files.get(source) {
                Some(pinned) => {
                    let file = File::open(&pinned.path)
                        .map_err(|e| fail(format!("reading {}: {e}", pinned.path.display())))?;
                    let mut reader = HashingReader::new(file);
                    let content = tree
                        .spool(&mut reader, MAX_SOURCE)
                        .map_err(|e| fail(format!("reading {}: {e}", pinned.path.display())))?;
                    let (actual, _) = reader.finish();
                    if actual != pinned.locked.digest {
                        return Err(fail(format!(
                            "source {} changed since it was locked: expected {}, found {actual}; run `cairn lock` again if the change is intended",
                            pinned.path.display(),
                            pinned.locked.digest
                        )));
                    }
                    (NodeKind::File(content), entry.mode)
                }
                None if *optional => continue,
                None => return Err(fail(format!("source {source} is not pinned by the lock"))),
            },
        };
        let node = Node { kind, mode: mode & 0o7777, uid, gid, mtime: sd.secs() };
        tree.insert(path, node, &parent).map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

/// Looks a user or group name up in the tree's passwd/group file.
fn owner_id(tree: &Tree, owner: Option<&Id>, db: &str) -> Result<u32, String> {
    match owner {
        None => Ok(0),
        Some(Id::Num(id)) => Ok(*id),
        Some(Id::Name(name)) => {
            let text = read_small_file(tree, db, 16 << 20)
                .ok_or_else(|| format!("cannot resolve {name:?}: the image has no /{db}"))?;
            String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split(':');
                    let n = fields.next()?;
                    let id = fields.nth(1)?;
                    (n == name).then(|| id.parse::<u32>().ok()).flatten()
                })
                .next()
                .ok_or_else(|| format!("{name:?} is not listed in the image's /{db}"))
        }
    }
}
