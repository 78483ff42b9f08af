//! `files:` entries: what each one creates in the image (directory, symlink, contents,
//! host file or the spec itself), its octal mode and its owner.

use serde::{Deserialize, Deserializer};

use super::{Id, ValueError, deserialize_scalar, deserialize_validated};
use crate::tree::TreePath;

/// One `files:` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: TreePath,
    pub kind: FileKind,
    /// Permission bits (`mode:`, default 0600 for files and symlinks, 0700 for directories).
    pub mode: u32,
    pub uid: Option<Id>,
    pub gid: Option<Id>,
}

/// What a `files:` entry creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Symlink {
        target: String,
    },
    /// Inline contents (`contents: ""` is an empty file).
    Contents(String),
    /// Contents read from a host path at build time; `optional` skips a missing file.
    Source {
        path: String,
        optional: bool,
    },
    /// The spec itself, in the given format (LinuxKit's `metadata: yaml|json`).
    Metadata(MetadataFormat),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataFormat {
    Json,
    Yaml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    #[serde(default)]
    directory: bool,
    #[serde(default)]
    symlink: Option<String>,
    #[serde(default)]
    contents: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default, deserialize_with = "de_mode")]
    mode: Option<u32>,
    #[serde(default)]
    uid: Option<Id>,
    #[serde(default)]
    gid: Option<Id>,
}

fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    deserialize_scalar(d, "an octal mode such as \"0644\"", parse_mode).map(Some)
}

/// Parses an octal permission string. The raw scalar text is used, so `0644` means the same
/// quoted or not (YAML 1.1 and 1.2 disagree about unquoted leading zeros).
fn parse_mode(s: &str) -> Result<u32, ValueError> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    let bad = || ValueError::Mode(s.to_string());
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(bad()),
    }
}

impl<'de> Deserialize<'de> for File {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_validated(d, |r: RawFile| {
            if r.path.is_empty() {
                return Err(ValueError::EmptyFilePath);
            }
            let path = TreePath::parse(&r.path)?;
            if path.is_root() {
                return Err(ValueError::FileIsRoot(r.path));
            }
            let mut kinds = Vec::new();
            if r.directory {
                kinds.push(("directory", FileKind::Directory));
            }
            if let Some(target) = r.symlink.filter(|t| !t.is_empty()) {
                kinds.push(("symlink", FileKind::Symlink { target }));
            }
            if let Some(c) = r.contents {
                kinds.push(("contents", FileKind::Contents(c)));
            }
            if let Some(s) = r.source.filter(|s| !s.is_empty()) {
                kinds.push(("source", FileKind::Source { path: s, optional: r.optional }));
            }
            if let Some(m) = r.metadata.filter(|m| !m.is_empty()) {
                let fmt = match m.as_str() {
                    "json" => MetadataFormat::Json,
                    "yaml" => MetadataFormat::Yaml,
                    _ => return Err(ValueError::MetadataFormat(m)),
                };
                kinds.push(("metadata", FileKind::Metadata(fmt)));
            }
            let kind = match kinds.len() {
                1 => kinds.pop().map(|(_, k)| k),
                _ => None,
            };
            let Some(kind) = kind else {
                let kinds: Vec<&'static str> = kinds.iter().map(|(n, _)| *n).collect();
                return Err(if kinds.is_empty() {
                    ValueError::NoFileKind(r.path)
                } else {
                    ValueError::FileKinds { path: r.path, kinds }
                });
            };
            if r.optional && !matches!(kind, FileKind::Source { .. }) {
                return Err(ValueError::OptionalNotSource(r.path));
            }
            let default_mode = if kind == FileKind::Directory { 0o700 } else { 0o600 };
            Ok(File { path, kind, mode: r.mode.unwrap_or(default_mode), uid: r.uid, gid: r.gid })
        })
    }
}
