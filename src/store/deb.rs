//! Debian binary packages (`.deb`): a bounded `ar` parser, the `control` paragraph, and the
//! decompressed `data.tar` that [`super::import`] stores as one uncompressed tar layer.
//!
//! A `.deb` is an `ar` archive whose members come in this order: `debian-binary` (format
//! version `2.x`), `control.tar[.gz|.xz|.zst]`, `data.tar[.gz|.xz|.zst]`. Members whose names
//! start with `_` (signatures) may appear after `debian-binary` and are ignored, as dpkg
//! does. The whole input is untrusted: every header field is validated, every member must be
//! exactly as long as its header says, and sizes are bounded.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use super::{BoundedCopyError, copy_bounded};

/// Largest `control.tar` member we decompress `control` from, and largest `control` file.
const MAX_CONTROL: u64 = 1024 * 1024;

/// Why a `.deb` cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DebError {
    #[error("not a Debian package: {0}")]
    Format(String),
    #[error("member {member}: {reason}")]
    Member { member: String, reason: String },
    /// A member could not be read or decompressed.
    #[error("member {member}: {source}")]
    MemberIo { member: String, source: io::Error },
    /// The `control` file inside a `control.tar` member is malformed.
    #[error("member {member}: {source}")]
    InMember { member: String, source: Box<DebError> },
    #[error("control file: {0}")]
    Control(String),
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("cannot write the data layer: {0}")]
    Write(#[source] io::Error),
}

/// The fields of a package's `control` paragraph that cairn uses, plus the paragraph itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// All fields, keys as written (continuation lines joined with `\n`).
    pub fields: BTreeMap<String, String>,
    /// The `control` file as it is in the package.
    pub text: String,
}

/// Parses a `control` paragraph (RFC 822 style: `Field: value`, continuation lines start with
/// a space or a tab). `Package`, `Version` and `Architecture` are required.
pub fn parse_control(text: &str) -> Result<Control, DebError> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if fields.is_empty() {
                continue;
            }
            // Only one paragraph: what follows a blank line is not ours.
            break;
        }
        if line.starts_with([' ', '\t']) {
            let Some(key) = &last else {
                return Err(DebError::Control(format!("line {} continues no field", i + 1)));
            };
            if let Some(v) = fields.get_mut(key) {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(DebError::Control(format!(
                "line {} is not `Field: value`: {line:?}",
                i + 1
            )));
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DebError::Control(format!(
                "line {} has an invalid field name {k:?}",
                i + 1
            )));
        }
        if fields.insert(k.to_string(), v.trim().to_string()).is_some() {
            return Err(DebError::Control(format!("field {k} appears twice")));
        }
        last = Some(k.to_string());
    }
    let get = |k: &str| -> Result<String, DebError> {
        fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty() && !v.contains('\n'))
            .ok_or_else(|| DebError::Control(format!("the {k} field is missing or empty")))
    };
    let package = get("Package")?;
    let version = get("Version")?;
    let architecture = get("Architecture")?;
    let name_ok = package.len() >= 2
        && package
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        && package.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !name_ok {
        return Err(DebError::Control(format!("invalid package name {package:?}")));
    }
    if version.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(DebError::Control(format!("invalid version {version:?}")));
    }
    Ok(Control { package, version, architecture, fields, text: text.to_string() })
}

/// Maps a Debian architecture to an OCI (GOARCH) architecture and variant. `all` maps to
/// `default_arch`.
pub fn oci_platform(deb_arch: &str, default_arch: &str) -> Option<(String, Option<String>)> {
    let (a, v) = match deb_arch {
        "all" => return Some((default_arch.to_string(), None)),
        "amd64" => ("amd64", None),
        "arm64" => ("arm64", None),
        "armhf" => ("arm", Some("v7")),
        "armel" => ("arm", Some("v5")),
        "i386" => ("386", None),
        "ppc64el" => ("ppc64le", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips64el" => ("mips64le", None),
        "loong64" => ("loong64", None),
        _ => return None,
    };
    Some((a.to_string(), v.map(str::to_string)))
}

/// One `ar` member header.
struct ArHeader {
    name: String,
    size: u64,
}

/// Reads a 60-byte `ar` header. `Ok(None)` at a clean end of archive.
fn read_ar_header(r: &mut impl Read) -> Result<Option<ArHeader>, DebError> {
    let mut h = [0u8; 60];
    let mut got = 0;
    while got < h.len() {
        let n = match r.read(h.get_mut(got..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DebError::Format(format!("reading a member header: {e}"))),
        };
        if n == 0 {
            break;
        }
        got += n;
    }
    if got == 0 {
        return Ok(None);
    }
    if got < h.len() {
        return Err(DebError::Format("truncated member header".into()));
    }
    let field = |r: std::ops::Range<usize>| -> &[u8] { h.get(r).unwrap_or_default() };
    if field(58..60) != b"`\n" {
        return Err(DebError::Format("bad member header terminator".into()));
    }
    let name = std::str::from_utf8(field(0..16))
        .map_err(|_| DebError::Format("member name is not ASCII".into()))?
        .trim_end_matches(' ');
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty() || name.starts_with("#1/") || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DebError::Format(format!("unsupported member name {name:?}")));
    }
    let size_text = std::str::from_utf8(field(48..58)).unwrap_or("").trim_end_matches(' ');
    if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DebError::Format(format!("member {name}: bad size field {size_text:?}")));
    }
    let size = size_text
        .parse()
        .map_err(|_| DebError::Format(format!("member {name}: bad size field {size_text:?}")))?;
    Ok(Some(ArHeader { name: name.to_string(), size }))
}

/// A reader over exactly `remaining` bytes of `inner`; running out early is an error.
struct Exact<'a, R> {
    inner: &'a mut R,
    remaining: u64,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(buf.get_mut(..max).unwrap_or_default())?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("truncated: {} bytes missing", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A decompressing reader chosen by the member name's suffix.
fn decompressor<'a>(
    member: &str,
    stem: &str,
    r: impl Read + 'a,
) -> Result<Box<dyn Read + 'a>, DebError> {
    let suffix = member.strip_prefix(stem).unwrap_or("");
    let err = |source| DebError::MemberIo { member: member.to_string(), source };
    Ok(match suffix {
        "" => Box::new(r),
        ".gz" => Box::new(flate2::read::GzDecoder::new(r)),
        ".xz" => Box::new(liblzma::read::XzDecoder::new(r)),
        ".zst" => Box::new(zstd::stream::read::Decoder::new(r).map_err(err)?),
        _ => {
            return Err(DebError::Member {
                member: member.to_string(),
                reason: "unsupported compression (expected none, .gz, .xz or .zst)".into(),
            });
        }
    })
}

/// Reads a `.deb` from `r`: returns its control paragraph and writes the decompressed
/// `data.tar` to `data_out` (at most `max_data` bytes). The tar itself is not validated here.
pub fn extract(r: impl Read, data_out: &mut dyn Write, max_data: u64) -> Result<Control, DebError> {
    let mut r = io::BufReader::new(r);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| DebError::Format("too short for an ar archive".into()))?;
    if &magic != b"!<arch>\n" {
        return Err(DebError::Format("no ar archive magic".into()));
    }
    let mut index = 0usize;
    let mut control: Option<Control> = None;
    let mut have_data = false;
    while let Some(h) = read_ar_header(&mut r)? {
        let member = h.name.clone();
        let merr = |reason: String| DebError::Member { member: member.clone(), reason };
        let ioerr = |source| DebError::MemberIo { member: member.clone(), source };
        let mut body = Exact { inner: &mut r, remaining: h.size };
        match (index, member.as_str()) {
            (0, "debian-binary") => {
                let mut v = Vec::new();
                (&mut body).take(64).read_to_end(&mut v).map_err(ioerr)?;
                if !v.starts_with(b"2.") {
                    return Err(merr(format!(
                        "unsupported format version {:?}",
                        String::from_utf8_lossy(&v)
                    )));
                }
            }
            (0, _) => {
                return Err(DebError::Format(format!(
                    "first member is {member:?}, not debian-binary"
                )));
            }
            (_, m) if m.starts_with('_') => {}
            (_, m) if m.starts_with("control.tar") && control.is_none() && !have_data => {
                let limited = (&mut body).take(MAX_CONTROL * 16);
                let dec = decompressor(m, "control.tar", limited)?;
                control = Some(read_control(m, dec)?);
            }
            (_, m) if m.starts_with("data.tar") && control.is_some() && !have_data => {
                let dec = decompressor(m, "data.tar", &mut body)?;
                let copied = copy_bounded(dec, data_out, max_data).map_err(|e| match e {
                    BoundedCopyError::Read(source) => ioerr(source),
                    BoundedCopyError::Write(source) => DebError::Write(source),
                    BoundedCopyError::Limit => DebError::TooLarge {
                        what: format!("decompressed {member}"),
                        limit: max_data,
                    },
                })?;
                if copied == 0 {
                    return Err(merr("empty data archive".into()));
                }
                have_data = true;
            }
            (_, m) => {
                return Err(DebError::Format(format!(
                    "unexpected member {m:?} (expected control.tar then data.tar)"
                )));
            }
        }
        // The member must be exactly as long as its header says, even where the decoder
        // stopped early.
        io::copy(&mut body, &mut io::sink()).map_err(ioerr)?;
        if h.size % 2 == 1 {
            let mut pad = [0u8; 1];
            // A missing pad byte after the last member is tolerated, as GNU ar does.
            let _ = r.read(&mut pad).map_err(ioerr)?;
        }
        index += 1;
    }
    let control = control.ok_or_else(|| DebError::Format("no control.tar member".into()))?;
    if !have_data {
        return Err(DebError::Format("no data.tar member".into()));
    }
    Ok(control)
}

/// Finds `./control` in the control tarball `member` and parses it.
fn read_control(member: &str, r: impl Read) -> Result<Control, DebError> {
    let bad = |reason: &str| DebError::Member { member: member.to_string(), reason: reason.into() };
    let ioerr = |source| DebError::MemberIo { member: member.to_string(), source };
    let mut ar = tar::Archive::new(r);
    for entry in ar.entries().map_err(ioerr)? {
        let mut entry = entry.map_err(ioerr)?;
        let path = entry.path_bytes().into_owned();
        let path = path.strip_prefix(b"./").unwrap_or(&path);
        if path != b"control" {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(bad("control is not a regular file"));
        }
        let mut text = Vec::new();
        (&mut entry).take(MAX_CONTROL + 1).read_to_end(&mut text).map_err(ioerr)?;
        if text.len() as u64 > MAX_CONTROL {
            return Err(bad(&format!("control file is larger than {MAX_CONTROL} bytes")));
        }
        if text.len() as u64 != entry.header().entry_size().unwrap_or(0) {
            return Err(bad("control file is truncated"));
        }
        let text = String::from_utf8(text).map_err(|_| bad("control file is not UTF-8"))?;
        return parse_control(&text)
            .map_err(|e| DebError::InMember { member: member.to_string(), source: Box::new(e) });
    }
    Err(bad("no ./control file in it"))
}

/// The default store name of a package: `cairn.local/deb/<package>:<version>`, with every
/// character a tag may not hold replaced by `_` (`1:2.3+dfsg-1~bpo` → `1_2.3_dfsg-1_bpo`).
pub fn default_name(c: &Control) -> String {
    let repo: String = c
        .package
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() || ".-".contains(ch) { ch } else { '_' })
        .collect();
    let mut tag: String = c
        .version
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() || "._-".contains(ch) { ch } else { '_' })
        .take(128)
        .collect();
    if tag.starts_with(['.', '-']) {
        tag.replace_range(..1, "_");
    }
    format!("cairn.local/deb/{repo}:{tag}")
}
