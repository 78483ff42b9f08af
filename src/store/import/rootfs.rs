//! Images cairn writes itself from one layer: a root filesystem (a tar, or a directory
//! turned into a deterministic tar) or the `data.tar` of a `.deb` package.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Cx, ImportError, Imported, io_err, validate_tar};
use crate::digest::Digest;
use crate::oci::{MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_MANIFEST};
use crate::reference::ImageRef;
use crate::store::deb;
use crate::store::{BlobWriter, Staging, make_descriptor};

impl Cx<'_> {
    /// Writes config and manifest for a one-layer image, commits and tags it.
    fn single_layer_image(
        &self,
        staging: Staging,
        layer: (Digest, u64),
        platform: (String, Option<String>),
        labels: BTreeMap<String, String>,
        name: ImageRef,
    ) -> Result<Vec<Imported>, ImportError> {
        let config = serde_json::to_vec(&ConfigOut {
            architecture: platform.0,
            variant: platform.1,
            os: "linux",
            config: ConfigInner { labels },
            rootfs: RootFsOut { kind: "layers", diff_ids: vec![layer.0] },
        })
        .map_err(|e| self.bad(format!("cannot serialize the image config: {e}")))?;
        let (cd, csize) = self.stage_bytes(&staging, &config)?;
        let (md, msize) = self.stage_manifest(
            &staging,
            make_descriptor(MT_OCI_CONFIG, &cd, csize).map_err(self.st())?,
            vec![make_descriptor(MT_OCI_LAYER, &layer.0, layer.1).map_err(self.st())?],
        )?;
        let lock = staging.commit(&[layer.0, cd, md].into_iter().collect()).map_err(self.st())?;
        let desc = make_descriptor(MT_OCI_MANIFEST, &md, msize).map_err(self.st())?;
        self.tag_all(&lock, vec![(name.without_digest(), desc)])
    }

    /// The `--name` a root filesystem import cannot do without.
    fn rootfs_name(&self) -> Result<ImageRef, ImportError> {
        self.name.cloned().ok_or_else(|| self.need_name("a rootfs import needs --name"))
    }

    pub(super) fn rootfs_tar(
        &self,
        staging: Staging,
        tar_path: &Path,
        staged: Option<Digest>,
    ) -> Result<Vec<Imported>, ImportError> {
        let name = self.rootfs_name()?;
        let file = File::open(tar_path).map_err(io_err("open", tar_path))?;
        validate_tar(file).map_err(|e| self.bad(format!("not a valid tar archive: {e}")))?;
        let layer = match staged {
            Some(d) => (d, staging.size(&d).unwrap_or(0)),
            None => {
                let mut w = staging.writer().map_err(self.st())?;
                let f = File::open(tar_path).map_err(io_err("open", tar_path))?;
                self.copy_limited(f, &mut w, "the tar")?;
                w.finish(None, "rootfs tar").map_err(self.st())?
            }
        };
        let arch = (self.opts.architecture.clone(), None);
        self.single_layer_image(staging, layer, arch, BTreeMap::new(), name)
    }

    pub(super) fn rootfs_dir(&self, staging: Staging) -> Result<Vec<Imported>, ImportError> {
        let name = self.rootfs_name()?;
        let w = staging.writer().map_err(self.st())?;
        let mut builder = tar::Builder::new(w);
        let mut budget = self.opts.max_blob_size;
        self.append_dir(&mut builder, self.input, &mut PathBuf::new(), &mut budget)?;
        let w = builder.into_inner().map_err(self.read_input("write the layer for"))?;
        let layer = w.finish(None, "rootfs layer").map_err(self.st())?;
        let arch = (self.opts.architecture.clone(), None);
        self.single_layer_image(staging, layer, arch, BTreeMap::new(), name)
    }

    /// Appends the children of `dir` (at `rel` inside the layer), sorted, depth first.
    fn append_dir(
        &self,
        b: &mut tar::Builder<BlobWriter>,
        dir: &Path,
        rel: &mut PathBuf,
        budget: &mut u64,
    ) -> Result<(), ImportError> {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(dir)
            .map_err(io_err("list", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("list", dir))?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        let mtime = self.opts.source_date.secs();
        for n in names {
            let path = dir.join(&n);
            rel.push(&n);
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            let ft = meta.file_type();
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(mtime);
            h.set_size(0);
            let werr = io_err("write the layer entry for", &path);
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                let mut with_slash = rel.clone().into_os_string();
                with_slash.push("/");
                b.append_data(&mut h, Path::new(&with_slash), io::empty()).map_err(werr)?;
                self.append_dir(b, &path, rel, budget)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("read link", &path))?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                b.append_link(&mut h, &*rel, &target).map_err(werr)?;
            } else if ft.is_file() {
                let size = meta.len();
                *budget = budget.checked_sub(size).ok_or_else(|| ImportError::TooLarge {
                    input: self.input.to_path_buf(),
                    what: "the directory's content".into(),
                    limit: self.opts.max_blob_size,
                })?;
                let exec = meta.permissions().mode() & 0o111 != 0;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if exec { 0o755 } else { 0o644 });
                h.set_size(size);
                let f = File::open(&path).map_err(io_err("open", &path))?;
                // Exactly `size` bytes: a file that changes while read must not corrupt the tar.
                let exact = ExactLen { inner: f.take(size), remaining: size };
                b.append_data(&mut h, &*rel, exact).map_err(werr)?;
            } else {
                return Err(self.bad(format!(
                    "{} is a device, socket or FIFO, which a root filesystem import does not take",
                    path.display()
                )));
            }
            rel.pop();
        }
        Ok(())
    }

    pub(super) fn deb(&self, staging: Staging) -> Result<Vec<Imported>, ImportError> {
        let f = File::open(self.input).map_err(self.read_input("open"))?;
        let mut w = staging.writer().map_err(self.st())?;
        let control = deb::extract(f, &mut w, self.opts.max_blob_size)
            .map_err(|source| ImportError::Deb { input: self.input.to_path_buf(), source })?;
        let (ld, lsize) = w.finish(None, "data.tar").map_err(self.st())?;
        validate_tar(staging.open(&ld).map_err(self.st())?)
            .map_err(|e| self.bad(format!("data.tar is not a valid tar archive: {e}")))?;
        let platform = deb::oci_platform(&control.architecture, &self.opts.architecture)
            .ok_or_else(|| {
                self.bad(format!("unknown Debian architecture {:?}", control.architecture))
            })?;
        let name = match self.name {
            Some(n) => n.clone(),
            None => {
                let n = deb::default_name(&control);
                ImageRef::parse(&n)
                    .map_err(|e| self.bad(format!("cannot derive a name from the package: {e}")))?
            }
        };
        let labels: BTreeMap<String, String> = [
            ("dev.cairn.deb.package", control.package.clone()),
            ("dev.cairn.deb.version", control.version.clone()),
            ("dev.cairn.deb.architecture", control.architecture.clone()),
            ("dev.cairn.deb.control", control.text.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.single_layer_image(staging, (ld, lsize), platform, labels, name)
    }
}

/// A reader that yields exactly `remaining` bytes or fails.
struct ExactLen<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read",
            ));
        }
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

/// A deterministic image config: no `created`, no history, labels sorted.
#[derive(Serialize)]
struct ConfigOut {
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: &'static str,
    config: ConfigInner,
    rootfs: RootFsOut,
}

#[derive(Serialize)]
struct ConfigInner {
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootFsOut {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<Digest>,
}
