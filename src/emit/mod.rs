//! Deterministic writers: a [`Tree`] (plus the [`SourceDate`]) in, output files out.
//!
//! This module owns the bytes of every build output: the tar writer ([`tar`]), the cpio
//! newc writer ([`cpio`]), the gzip/zstd streams ([`compress`]) and the OCI image layout
//! ([`oci`]), and the verified-boot payload disk and verifier initramfs ([`verified_boot`]).
//! [`emit`] writes the image outputs a build asks for into a staging directory, computing
//! each file's digest while the bytes are written (files are never read back).
//!
//! Every byte is a function of the tree and the source date only. Entries come in the
//! tree's sorted order, owners are numeric with empty user and group names, timestamps are
//! the tree's (already clamped) mtimes, and no access or change times are written. File
//! contents are streamed from the tree's spool in fixed-size chunks, so memory does not
//! grow with file sizes.

pub mod compress;
pub mod cpio;
pub mod disk;
pub mod esp;
pub mod oci;
pub mod squashfs;
pub mod tar;
pub mod uki;
pub mod verified_boot;
pub mod verity;

use std::fmt;
use std::fs::{File, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::digest::{Digest, HashingWriter};
use crate::output_name::OutputName;
use crate::source_date::SourceDate;
use crate::tree::{Content, NodeKind, Tree, TreeError, TreePath};

pub use compress::Codec;

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// Bad input: the CLI named a format that does not exist.
    #[error(
        "unknown output format {0:?} (expected tar, kernel+initrd, kernel+initrd:gzip, kernel+initrd:zstd, oci or verified-boot)"
    )]
    UnknownFormat(String),
    #[error("unknown compression {0:?} (expected gzip or zstd)")]
    UnknownCodec(String),
    /// Bad input: the image has no kernel but a kernel output was requested.
    #[error("kernel+initrd needs a kernel: the spec has no kernel section")]
    MissingKernel,
    #[error("{path} in the image is a {kind}, but {format} needs a regular file there")]
    NotAFile { path: String, kind: &'static str, format: &'static str },
    /// Bad input: a value does not fit the output format's fields.
    #[error("{path}: {what} {value} does not fit the {format} format (at most {max})")]
    TooLarge { path: String, what: &'static str, value: u64, max: u64, format: &'static str },
    /// Environment: reading a file's contents from the tree's spool failed.
    #[error("reading the contents of {path} from the build spool: {source}")]
    ReadContent { path: String, source: io::Error },
    /// Environment: writing to the output stream failed (the caller knows which).
    #[error("writing the output: {0}")]
    Write(#[source] io::Error),
    /// Bad input: a tree operation was refused (or the spool failed).
    #[error("{0}")]
    Tree(#[from] TreeError),
    /// Environment: an input file (a payload member) could not be read.
    #[error("reading {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("writing {name} into the payload disk: {source}")]
    PayloadMember { name: String, source: io::Error },
    /// Environment: a file or directory of the output could not be written.
    #[error("writing {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Internal bug: an OCI document could not be built or serialized.
    #[error("{0} (this is a bug in cairn)")]
    Oci(#[from] crate::oci::OciError),
}

impl EmitError {
    /// Names the output file for an error of the underlying stream.
    fn at(self, path: &Path) -> EmitError {
        match self {
            EmitError::Write(source) => EmitError::Io { path: path.to_path_buf(), source },
            e => e,
        }
    }
}

/// An output format made from the tree alone (verified boot, which also needs the signed
/// attestations, is a build format: `crate::build::Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `<name>.tar`: the whole tree.
    Tar,
    /// `<name>-kernel`, `<name>-initrd.img` (compressed with the codec) and `<name>-cmdline`.
    KernelInitrd(Codec),
    /// `<name>.oci/`: an OCI image layout with the tree as its single layer.
    Oci,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Tar => f.write_str("tar"),
            Format::KernelInitrd(Codec::Gzip) => f.write_str("kernel+initrd"),
            Format::KernelInitrd(c) => write!(f, "kernel+initrd:{c}"),
            Format::Oci => f.write_str("oci"),
        }
    }
}

impl FromStr for Format {
    type Err = EmitError;
    /// Parses `tar`, `oci`, `kernel+initrd` (gzip) and `kernel+initrd:<gzip|zstd>`.
    fn from_str(s: &str) -> Result<Format, EmitError> {
        match s.split_once(':') {
            None => match s {
                "tar" => Ok(Format::Tar),
                "oci" => Ok(Format::Oci),
                "kernel+initrd" => Ok(Format::KernelInitrd(Codec::Gzip)),
                _ => Err(EmitError::UnknownFormat(s.to_string())),
            },
            Some(("kernel+initrd", codec)) => Ok(Format::KernelInitrd(codec.parse()?)),
            Some(_) => Err(EmitError::UnknownFormat(s.to_string())),
        }
    }
}

/// One written output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// File name inside the output directory (for OCI: the layout directory's name).
    pub rel_path: String,
    /// sha256 of the file's bytes; for an OCI layout, the digest of its manifest.
    pub digest: Digest,
    /// Size of the file; for an OCI layout, the size of its manifest.
    pub size: u64,
}

/// Tree paths that belong to the kernel+initrd outputs themselves, not to the initrd.
pub const KERNEL_PATH: &str = "boot/kernel";
pub const CMDLINE_PATH: &str = "boot/cmdline";
pub const UCODE_PATH: &str = "boot/ucode.cpio";

/// Writes every output of `formats` for `tree` into `dir` (an existing staging directory
/// that the caller renames into place when everything succeeded), named after `name` as
/// LinuxKit names them. Returns the outputs in the order written.
pub fn emit(
    tree: &Tree,
    formats: &[Format],
    dir: &Path,
    name: &OutputName,
    source_date: SourceDate,
) -> Result<Vec<Output>, EmitError> {
    let mut outputs = Vec::new();
    for format in formats {
        match format {
            Format::Tar => {
                let rel = format!("{name}.tar");
                outputs.push(write_file(dir, rel, |w| tar::write_tar(tree, w).map(drop))?);
            }
            Format::KernelInitrd(codec) => {
                outputs.extend(emit_kernel_initrd(tree, *codec, dir, name)?);
            }
            Format::Oci => {
                let rel = format!("{name}.oci");
                let opts = oci::OciOptions::new(source_date);
                let img = oci::write_layout(tree, &dir.join(&rel), &opts)?;
                outputs.push(Output {
                    rel_path: rel,
                    digest: img.manifest,
                    size: img.manifest_size,
                });
            }
        }
    }
    Ok(outputs)
}

/// The three LinuxKit kernel+initrd files. The initrd holds every entry except the
/// kernel, the command line and the early microcode archive. When `boot/ucode.cpio`
/// exists its raw bytes come first, uncompressed: the kernel reads an uncompressed
/// early-microcode cpio at the start of the initrd and then the compressed archive after
/// it (Documentation/arch/x86/microcode.rst).
fn emit_kernel_initrd(
    tree: &Tree,
    codec: Codec,
    dir: &Path,
    name: &OutputName,
) -> Result<Vec<Output>, EmitError> {
    const FORMAT: &str = "kernel+initrd";
    let file_at = |raw: &str| -> Result<Option<&Content>, EmitError> {
        let path = TreePath::parse(raw).map_err(|_| EmitError::MissingKernel)?;
        match tree.get(&path).map(|n| &n.kind) {
            None => Ok(None),
            Some(NodeKind::File(c)) => Ok(Some(c)),
            Some(NodeKind::Dir) => Err(EmitError::NotAFile {
                path: raw.to_string(),
                kind: "directory",
                format: FORMAT,
            }),
            Some(NodeKind::Symlink(_)) => {
                Err(EmitError::NotAFile { path: raw.to_string(), kind: "symlink", format: FORMAT })
            }
        }
    };
    let kernel = file_at(KERNEL_PATH)?.ok_or(EmitError::MissingKernel)?;
    let cmdline = file_at(CMDLINE_PATH)?;
    let ucode = file_at(UCODE_PATH)?;

    let kernel_out =
        write_file(dir, format!("{name}-kernel"), |w| copy_content(tree, KERNEL_PATH, kernel, w))?;
    let initrd_out = write_file(dir, format!("{name}-initrd.img"), |w| {
        if let Some(ucode) = ucode {
            copy_content(tree, UCODE_PATH, ucode, w)?;
        }
        let enc = compress::compress_to(codec, w).map_err(EmitError::Write)?;
        let skip = |p: &TreePath| matches!(p.as_str(), KERNEL_PATH | CMDLINE_PATH | UCODE_PATH);
        let enc = cpio::write_newc(tree, |p| !skip(p), enc)?;
        enc.finish().map_err(EmitError::Write)?;
        Ok(())
    })?;
    let cmdline_out = write_file(dir, format!("{name}-cmdline"), |w| match cmdline {
        Some(c) => copy_content(tree, CMDLINE_PATH, c, w),
        None => Ok(()),
    })?;
    Ok(vec![kernel_out, initrd_out, cmdline_out])
}

/// Creates `dir/rel`, lets `body` write it through a hashing writer, then flushes and
/// syncs it with mode 0644. The digest is of the bytes as written.
fn write_file(
    dir: &Path,
    rel: String,
    body: impl FnOnce(&mut HashingWriter<BufWriter<File>>) -> Result<(), EmitError>,
) -> Result<Output, EmitError> {
    let path = dir.join(&rel);
    let io_err = |source| EmitError::Io { path: path.clone(), source };
    let file = File::create(&path).map_err(io_err)?;
    let mut w = HashingWriter::new(BufWriter::with_capacity(CHUNK, file));
    body(&mut w).map_err(|e| e.at(&path))?;
    let (buf, digest, size) = w.finish();
    let file = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
    finish_file(&file, &path)?;
    Ok(Output { rel_path: rel, digest, size })
}

/// Gives an output file mode 0644 whatever the umask (and tempfile's 0600), then syncs it.
fn finish_file(file: &File, path: &Path) -> Result<(), EmitError> {
    let io_err = |source| EmitError::Io { path: path.to_path_buf(), source };
    file.set_permissions(Permissions::from_mode(0o644)).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Size of the buffer file contents are streamed through.
const CHUNK: usize = 128 * 1024;

/// Streams one file's contents from the tree to `out`, telling read errors (the spool)
/// apart from write errors (the output). Exactly `content.len()` bytes are written: archive
/// headers have already announced that size.
fn copy_content<W: Write + ?Sized>(
    tree: &Tree,
    path: &str,
    content: &Content,
    out: &mut W,
) -> Result<(), EmitError> {
    let read_err = |source| EmitError::ReadContent { path: path.to_string(), source };
    let mut reader = tree.open(content);
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(content.len()).unwrap_or(CHUNK)).max(1)];
    let mut left = content.len();
    while left > 0 {
        let n = match reader.read(&mut buf) {
            Ok(0) => {
                let msg = format!("ended {left} bytes early");
                return Err(read_err(io::Error::new(io::ErrorKind::UnexpectedEof, msg)));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        // `n` never exceeds what is left: the reader is bounded to the content's range.
        let n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        out.write_all(&buf[..n]).map_err(EmitError::Write)?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Small trees for the emitters' tests.
    use crate::tree::{Content, Node, Tree, TreePath};

    pub fn p(s: &str) -> TreePath {
        TreePath::parse(s).unwrap()
    }

    pub fn dir_template() -> Node {
        Node::dir(0o755, 1000)
    }

    /// A tree with every kind of entry the emitters must handle.
    pub fn sample_tree() -> Tree {
        let mut t = Tree::new().unwrap();
        let d = dir_template();
        let spooled = t.spool(&vec![b'x'; 300_000][..], 1 << 20).unwrap();
        let long_dir = "l".repeat(90);
        let longer = format!("{long_dir}/{}", "n".repeat(200));
        let entries = vec![
            ("bin", Node::dir(0o755, 1000)),
            ("bin/sh", Node::file(Content::inline("#!/bin/sh\n"), 0o755, 1000)),
            ("bin/su", Node::file(Content::inline("su"), 0o4755, 1000)),
            ("etc/empty", Node::file(Content::inline(""), 0o644, 900)),
            ("home/user/big", Node::file(spooled, 0o600, 1000).with_owner(1000, 1000)),
            ("home/user", Node::dir(0o700, 1000).with_owner(1000, 1000)),
            ("usr/bin/sh", Node::symlink("../../bin/sh", 1000)),
            ("lib", Node::symlink("/usr/lib/".to_string() + &"t".repeat(150), 1000)),
            (long_dir.as_str(), Node::dir(0o755, 1000)),
            (longer.as_str(), Node::file(Content::inline("long"), 0o644, 1000)),
            ("tmp", Node::dir(0o1777, 1000)),
        ];
        for (path, node) in entries {
            t.insert(p(path), node, &d).unwrap();
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::tree::Node;

    /// [`emit`] with the source date zero, named `n`.
    fn emit_as(
        t: &Tree,
        formats: &[Format],
        dir: &Path,
        n: &str,
    ) -> Result<Vec<Output>, EmitError> {
        emit(t, formats, dir, &OutputName::parse(n).unwrap(), SourceDate::ZERO)
    }

    #[test]
    fn formats_parse_and_display() {
        for (s, f) in [
            ("tar", Format::Tar),
            ("oci", Format::Oci),
            ("kernel+initrd", Format::KernelInitrd(Codec::Gzip)),
            ("kernel+initrd:zstd", Format::KernelInitrd(Codec::Zstd)),
        ] {
            assert_eq!(s.parse::<Format>().unwrap(), f);
            assert_eq!(f.to_string(), s);
        }
        assert_eq!(
            "kernel+initrd:gzip".parse::<Format>().unwrap(),
            Format::KernelInitrd(Codec::Gzip)
        );
        for bad in ["iso", "tar:gzip", "kernel+initrd:xz", ""] {
            assert!(bad.parse::<Format>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kernel_initrd_needs_a_kernel() {
        let t = sample_tree();
        let dir = tempfile::tempdir().unwrap();
        let err = emit_as(&t, &[Format::KernelInitrd(Codec::Gzip)], dir.path(), "img").unwrap_err();
        assert_eq!(err.to_string(), "kernel+initrd needs a kernel: the spec has no kernel section");
    }

    #[test]
    fn kernel_initrd_writes_three_files_with_ucode_first() {
        let mut t = sample_tree();
        let d = dir_template();
        t.insert(p("boot/kernel"), Node::file(Content::inline("KERNEL"), 0o644, 5), &d).unwrap();
        t.insert(p("boot/cmdline"), Node::file(Content::inline("console=ttyS0"), 0o644, 5), &d)
            .unwrap();
        t.insert(p("boot/ucode.cpio"), Node::file(Content::inline("UCODE!!!"), 0o644, 5), &d)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let formats = [Format::KernelInitrd(Codec::Gzip), Format::Tar];
        let outs = emit_as(&t, &formats, dir.path(), "img").unwrap();
        let names: Vec<_> = outs.iter().map(|o| o.rel_path.as_str()).collect();
        assert_eq!(names, ["img-kernel", "img-initrd.img", "img-cmdline", "img.tar"]);
        for o in &outs {
            let bytes = std::fs::read(dir.path().join(&o.rel_path)).unwrap();
            assert_eq!(Digest::of(&bytes), o.digest, "{}", o.rel_path);
            assert_eq!(bytes.len() as u64, o.size);
        }
        assert_eq!(std::fs::read(dir.path().join("img-kernel")).unwrap(), b"KERNEL");
        assert_eq!(std::fs::read(dir.path().join("img-cmdline")).unwrap(), b"console=ttyS0");
        let initrd = std::fs::read(dir.path().join("img-initrd.img")).unwrap();
        assert_eq!(&initrd[..8], b"UCODE!!!");
        assert_eq!(&initrd[8..10], &[0x1f, 0x8b]);
        let mut cpio = Vec::new();
        flate2::read::GzDecoder::new(&initrd[8..]).read_to_end(&mut cpio).unwrap();
        let names = cpio::tests::parse_newc(&cpio).into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert!(names.contains(&"boot".to_string()));
        assert!(names.contains(&"bin/sh".to_string()));
        assert!(!names.iter().any(|n| n.starts_with("boot/")), "{names:?}");
    }

    #[test]
    fn missing_cmdline_gives_an_empty_file() {
        let mut t = sample_tree();
        t.insert(p("boot/kernel"), Node::file(Content::inline("K"), 0o644, 5), &dir_template())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let outs = emit_as(&t, &[Format::KernelInitrd(Codec::Zstd)], dir.path(), "x").unwrap();
        assert_eq!(outs[2].size, 0);
    }

    #[test]
    fn write_errors_name_the_file() {
        let t = sample_tree();
        let err = emit_as(&t, &[Format::Tar], Path::new("/nonexistent/dir"), "x").unwrap_err();
        assert!(err.to_string().starts_with("writing /nonexistent/dir/x.tar: "), "{err}");
    }
}
