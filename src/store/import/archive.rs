//! The members of an image archive (OCI archive or `docker save` tar): every regular file
//! staged by content digest, names normalized, links resolved to the files they name.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;

use super::{Cx, ImportError, MemberNameError, io_err};
use crate::digest::Digest;
use crate::store::Staging;

/// Normalizes an archive member name: relative, no `..`, no empty or `.` components.
pub(super) fn member_path(raw: &[u8]) -> Result<String, MemberNameError> {
    let s = std::str::from_utf8(raw).map_err(|_| MemberNameError::NotUtf8(raw.to_vec()))?;
    if s.starts_with('/') {
        return Err(MemberNameError::Absolute(s.to_string()));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(MemberNameError::DotDot(s.to_string())),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The files of an archive, staged in the store by content digest.
#[derive(Default)]
pub(super) struct Members {
    pub(super) files: BTreeMap<String, (Digest, u64)>,
}

impl Cx<'_> {
    /// Stages every regular file of an archive (links resolved to their targets).
    pub(super) fn stage_archive(
        &self,
        staging: &Staging,
        tar_path: &Path,
    ) -> Result<Members, ImportError> {
        let file = File::open(tar_path).map_err(io_err("open", tar_path))?;
        let mut ar = tar::Archive::new(super::EndOfArchive::new(io::BufReader::new(file)));
        let mut m = Members::default();
        let mut links: BTreeMap<String, String> = BTreeMap::new();
        let entries = ar.entries().map_err(|e| self.bad(format!("reading the archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.bad(format!("reading the archive: {e}")))?;
            let path = member_path(&entry.path_bytes()).map_err(self.member_name())?;
            if path.is_empty() {
                continue;
            }
            if m.files.contains_key(&path) || links.contains_key(&path) {
                return Err(self.bad(format!("member {path:?} appears twice")));
            }
            let header_size = entry
                .header()
                .entry_size()
                .map_err(|e| self.bad(format!("member {path:?}: bad size: {e}")))?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut w = staging.writer().map_err(self.st())?;
                    let n = self.copy_limited(&mut entry, &mut w, &format!("member {path:?}"))?;
                    if n != header_size {
                        return Err(self.bad(format!(
                            "member {path:?} is truncated: its header says {header_size} bytes, {n} follow"
                        )));
                    }
                    let (d, size) = w.finish(None, &path).map_err(self.st())?;
                    m.files.insert(path, (d, size));
                }
                tar::EntryType::Directory => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| self.bad(format!("link {path:?} has no target")))?
                        .into_owned();
                    let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                        if target.starts_with(b"/") {
                            return Err(
                                self.bad(format!("symlink {path:?} points outside the archive"))
                            );
                        }
                        let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                        let mut joined = parent.as_bytes().to_vec();
                        joined.push(b'/');
                        joined.extend_from_slice(&target);
                        resolve_dots(&joined).ok_or_else(|| {
                            self.bad(format!("symlink {path:?} points outside the archive"))
                        })?
                    } else {
                        member_path(&target).map_err(self.member_name())?
                    };
                    links.insert(path, target);
                }
                other => {
                    return Err(self.bad(format!("member {path:?} has unsupported type {other:?}")));
                }
            }
        }
        if !ar.into_inner().ended_properly() {
            return Err(self.no_end_marker());
        }
        for (path, target) in &links {
            let mut t = target.clone();
            let mut hops = 0;
            while let Some(next) = links.get(&t) {
                hops += 1;
                if hops > 8 {
                    return Err(self.bad(format!("link {path:?} is part of a loop")));
                }
                t = next.clone();
            }
            let found = m.files.get(&t).copied().ok_or_else(|| {
                self.bad(format!(
                    "link {path:?} points to {target:?}, which is not a file in the archive"
                ))
            })?;
            m.files.insert(path.clone(), found);
        }
        Ok(m)
    }
}

/// Resolves `.` and `..` in a `/`-separated path; `None` when it climbs above the root.
fn resolve_dots(path: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(path).ok()?;
    let mut out: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}
