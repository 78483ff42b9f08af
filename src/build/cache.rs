//! The build cache: a build whose inputs did not change reuses the outputs of the last one
//! instead of assembling and compressing again, and still verifies every byte it reuses.
//!
//! **Key.** A sha256 over the canonical JSON of everything that can change an output byte
//! (the same principle as Bazel's action keys and Nix's input hashes):
//! - the cache schema ([`CACHE_SCHEMA`]) and this cairn's identity: its version and the GNU
//!   build id of the running executable (the linker's hash of the linked code, as Go's build
//!   cache uses), or the sha256 of the executable when it has none; so a rebuilt cairn
//!   never reuses outputs of another one;
//! - the spec's bytes (their sha256, which the provenance records too) and file name;
//! - the lock as parsed (every pinned digest, repository and the recorded source date);
//! - every pinned component (role, position, name, reference, index/manifest/config/layer
//!   digests) and every `files[].source` with the sha256 of its content *now*: a source
//!   that no longer matches its lock is not looked up at all (the build then reports it);
//! - the source date in effect (`SOURCE_DATE_EPOCH`, the spec's, or the lock's);
//! - the output name, the formats in order (codecs included) and the SLSA builder id.
//!
//! Not in the key: the output directory, the store's path, the size limits (they only
//! decide whether a build fails, not its bytes) and the signing key (below).
//!
//! **What is stored.** The unsigned outputs: image files, SBOMs and provenance. Signing is
//! redone on every reuse from the cached provenance and SPDX files, exactly as `cairn sign`
//! does, which gives the bytes a signed build writes (Ed25519 and RFC 6979 ECDSA are
//! deterministic). So a cache entry serves signed and unsigned builds alike, holds no
//! signature, and a signature always comes from the key given to this build.
//! `verified-boot` builds are never cached: their payload embeds signed attestations and
//! their inputs include the verifier binary and boot policy.
//!
//! **Where.** In the store (`crate::store`'s `cache/<key>.json` entries, the files as
//! blobs), so outputs are shared by every output directory and `store gc`/`store fsck`
//! look after them.
//!
//! **Reuse.** Every file is copied out of the store into the build's staging directory
//! while its sha256 is recomputed, and the outputs are then published by the same
//! staging-and-rename as a fresh build. A large output file that is already in the output
//! directory (the usual rebuild into the same directory) is rehashed there instead, and
//! left in place when its size, mode and sha256 are the recorded ones. A file that does not hash to its recorded digest,
//! a missing blob or an unreadable entry is a miss: a warning, the corrupt blob and the
//! entry are removed, and the build runs in full and files a new entry. Never a wrong output.
//!
//! **Trust.** An entry maps a key to output digests; whoever can write the store can file
//! an entry. Use a store only writers you trust can write to (as for the output directory
//! itself), or build with `--no-cache`.

use std::collections::BTreeSet;
use std::fs::{self, File, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;

use super::{BuildOptions, Document, LoadedSpec};
use crate::attest::intoto::Statement;
use crate::attest::sbom_statement_for;
use crate::digest::{Digest, Hasher};
use crate::emit::Output;
use crate::lock::{self, BuildInputs, LockedImage, Lockfile};
use crate::sign::attestations::{SignedAttestations, sign_statements};
use crate::sign::keys::SigningKey;
use crate::store::{CACHE_SCHEMA, CacheEntry, CachedFile, CachedOutput, Store, StoreError};

/// Why cached outputs could not be reused or filed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cached file {path} (blob {digest}) is corrupt or unreadable: {source}")]
    Corrupt { path: String, digest: Digest, source: io::Error },
    #[error("cached file {path}: {reason}")]
    Mismatch { path: String, reason: String },
    #[error("{action} {}: {source}", path.display())]
    Io { action: &'static str, path: std::path::PathBuf, source: io::Error },
    #[error("re-signing the cached attestations: {0}")]
    Sign(String),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io { action, path, source }
}

/// One pinned component as the key records it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyImage<'a> {
    role: crate::spec::Role,
    index: usize,
    name: &'a str,
    image: String,
    locked: &'a LockedImage,
}

/// Everything the key is the hash of (see the module documentation).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyMaterial<'a> {
    schema: u32,
    cairn: String,
    spec_digest: Digest,
    spec_file_name: String,
    lock: Option<&'a Lockfile>,
    images: Vec<KeyImage<'a>>,
    /// `files[].source` → sha256 of its content (equal to the lock's).
    files: Vec<(&'a str, Digest, u64)>,
    source_date: u64,
    name: &'a str,
    formats: Vec<String>,
    builder_id: &'a str,
}

/// The cache key of a build, or `None` when it cannot be cached: a source file that cannot
/// be read or no longer matches the lock (the build reports it), or an executable that
/// cannot be identified.
pub(super) fn key(
    spec: &LoadedSpec,
    lock: Option<&Lockfile>,
    inputs: &BuildInputs,
    opts: &BuildOptions<'_>,
) -> Option<Digest> {
    let mut files = Vec::new();
    for (source, pinned) in &inputs.files {
        let now = lock::hash_source(&pinned.path).ok()?;
        if now != pinned.locked {
            return None;
        }
        files.push((source.as_str(), now.digest, now.size));
    }
    let material = KeyMaterial {
        schema: CACHE_SCHEMA,
        cairn: cairn_identity()?,
        spec_digest: spec.digest,
        spec_file_name: spec.file_name(),
        lock,
        images: inputs
            .images
            .iter()
            .map(|p| KeyImage {
                role: p.role,
                index: p.index,
                name: &p.name,
                image: p.image.to_string(),
                locked: &p.locked,
            })
            .collect(),
        files,
        source_date: inputs.source_date.secs(),
        name: opts.name.as_str(),
        formats: opts.formats.iter().map(ToString::to_string).collect(),
        builder_id: &opts.builder_id,
    };
    crate::canonical_json::to_vec(&material).ok().map(|bytes| Digest::of(&bytes))
}

/// `cairn VERSION` and the running executable's build id (or sha256).
fn cairn_identity() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let mut file = File::open(&exe).ok()?;
    let id = match elf_build_id(&file) {
        Some(id) => format!("build-id {}", hex::encode(id)),
        None => {
            let mut h = Hasher::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = file.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                h.update(buf.get(..n)?);
            }
            format!("sha256 {}", h.finish().hex())
        }
    };
    Some(format!("cairn {} {id}", env!("CARGO_PKG_VERSION")))
}

/// The `NT_GNU_BUILD_ID` note of a little-endian ELF64 file, if it has one.
fn elf_build_id(file: &File) -> Option<Vec<u8>> {
    let read = |offset: u64, len: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    };
    let u16_at = |b: &[u8], i: usize| {
        b.get(i..i + 2).and_then(|s| s.try_into().ok()).map(u16::from_le_bytes)
    };
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes)
    };
    let u64_at = |b: &[u8], i: usize| {
        b.get(i..i + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes)
    };
    let header = read(0, 64)?;
    // Magic, ELFCLASS64, ELFDATA2LSB.
    if header.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) =
        (u64_at(&header, 32)?, u16_at(&header, 54)?, u16_at(&header, 56)?);
    for i in 0..u64::from(phnum) {
        let ph = read(phoff.checked_add(i.checked_mul(u64::from(phentsize))?)?, 56)?;
        // PT_NOTE, small enough to read.
        let size = u64_at(&ph, 32)?;
        if u32_at(&ph, 0)? != 4 || size > 1 << 16 {
            continue;
        }
        let notes = read(u64_at(&ph, 8)?, usize::try_from(size).ok()?)?;
        let mut at = 0usize;
        while at + 12 <= notes.len() {
            let namesz = u32_at(&notes, at)? as usize;
            let descsz = u32_at(&notes, at + 4)? as usize;
            let kind = u32_at(&notes, at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            // NT_GNU_BUILD_ID, owner "GNU\0".
            if kind == 3 && notes.get(name_at..name_at + namesz)? == b"GNU\0" {
                return notes.get(desc_at..desc_at + descsz).map(<[u8]>::to_vec);
            }
            at = desc_at + descsz.div_ceil(4) * 4;
        }
    }
    None
}

/// Files at least this large that are already in the output directory with the recorded
/// size, mode and sha256 are left in place instead of being copied again.
const IN_PLACE_MIN: u64 = 1 << 20;

/// Files are read in chunks of this size (outputs are large; fewer system calls).
const BUF: usize = 1 << 20;

/// Outputs restored from the cache.
pub(super) struct Restored {
    /// Every output of the entry, in order.
    pub outputs: Vec<Output>,
    /// Outputs already in the output directory with the right content: not in staging.
    pub in_place: BTreeSet<String>,
}

/// Copies the outputs filed under `key` into `staging`, verifying every byte; a large file
/// already in `out_dir` with the recorded content is verified there and left alone.
/// `Ok(None)`: no entry. An error means the entry is unusable; it has then been removed
/// (with a corrupt blob it names), so the caller builds afresh and files a new one.
pub(super) fn restore(
    store: &Store,
    key: &Digest,
    staging: &Path,
    out_dir: &Path,
) -> Result<Option<Restored>, CacheError> {
    let result = copy_out(store, key, staging, out_dir);
    if result.is_err() {
        discard(store, key, &result);
    }
    result
}

/// Whether `path` is a regular file with `f`'s size, mode and sha256.
fn already_there(path: &Path, f: &CachedFile) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else { return false };
    if !meta.is_file() || meta.len() != f.size || meta.permissions().mode() & 0o7777 != f.mode {
        return false;
    }
    let Ok(file) = File::open(path) else { return false };
    let mut r = crate::digest::HashingReader::new(io::BufReader::with_capacity(BUF, file));
    match io::copy(&mut r, &mut io::sink()) {
        Ok(n) if n == f.size => r.finish().0 == f.digest,
        _ => false,
    }
}

fn copy_out(
    store: &Store,
    key: &Digest,
    staging: &Path,
    out_dir: &Path,
) -> Result<Option<Restored>, CacheError> {
    let Some(entry) = store.cache_entry(key)? else { return Ok(None) };
    let mut in_place = BTreeSet::new();
    for d in &entry.dirs {
        let path = staging.join(d);
        fs::create_dir_all(&path).map_err(io_err("create directory", &path))?;
        fs::set_permissions(&path, Permissions::from_mode(0o755))
            .map_err(io_err("set the mode of", &path))?;
    }
    for f in &entry.files {
        // Attestations are always copied: they are read back from staging to be signed.
        let top_level = entry.outputs.iter().any(|o| o.rel_path == f.path)
            && !super::UNSIGNED_DOCUMENTS.iter().any(|d| f.path.ends_with(d));
        if top_level && f.size >= IN_PLACE_MIN && already_there(&out_dir.join(&f.path), f) {
            in_place.insert(f.path.clone());
            continue;
        }
        let corrupt =
            |source| CacheError::Corrupt { path: f.path.clone(), digest: f.digest, source };
        let mut blob = io::BufReader::with_capacity(BUF, store.open_blob(&f.digest)?);
        let path = staging.join(&f.path);
        let mut out = File::create(&path).map_err(io_err("create", &path))?;
        // The blob reader rehashes what it reads and fails at its end on a mismatch.
        let copied = io::copy(&mut blob, &mut out).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => corrupt(e),
            _ => CacheError::Io { action: "copy a cached file to", path: path.clone(), source: e },
        })?;
        if copied != f.size {
            return Err(CacheError::Mismatch {
                path: f.path.clone(),
                reason: format!("{copied} bytes, the entry says {}", f.size),
            });
        }
        out.set_permissions(Permissions::from_mode(f.mode))
            .map_err(io_err("set the mode of", &path))?;
        out.sync_all().map_err(io_err("sync", &path))?;
    }
    for o in &entry.outputs {
        if !in_place.contains(&o.rel_path) && !staging.join(&o.rel_path).exists() {
            return Err(CacheError::Mismatch {
                path: o.rel_path.clone(),
                reason: "the output is not among the entry's files".into(),
            });
        }
    }
    store.touch_cache_entry(key);
    let outputs = entry
        .outputs
        .into_iter()
        .map(|o| Output { rel_path: o.rel_path, digest: o.digest, size: o.size })
        .collect();
    Ok(Some(Restored { outputs, in_place }))
}

/// Removes an unusable entry and, when a blob of it was corrupt, that blob (if it is still
/// corrupt once the lock is held: a concurrent build may have replaced it). Best effort:
/// what cannot be removed here is found by `store fsck` and dropped by `store gc`.
fn discard<T>(store: &Store, key: &Digest, result: &Result<T, CacheError>) {
    let Ok(lock) = store.lock() else { return };
    if let Err(CacheError::Corrupt { digest, .. }) = result {
        let still_corrupt = match store.open_blob(digest) {
            Ok(r) => r.finish().is_err(),
            Err(_) => false,
        };
        if still_corrupt {
            let _ = fs::remove_file(store.blob_path(digest));
        }
    }
    let _ = store.remove_cache_entry(key, &lock);
}

/// Files the outputs in `staging` under `key`: each file becomes a blob, then the entry is
/// written under the store lock (re-putting any blob a concurrent `gc` removed meanwhile).
pub(super) fn save(
    store: &Store,
    key: &Digest,
    staging: &Path,
    outputs: &[Output],
) -> Result<(), CacheError> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for o in outputs {
        collect(staging, &o.rel_path, &mut dirs, &mut files)?;
    }
    let mut cached = Vec::new();
    for rel in &files {
        cached.push(put_file(store, staging, rel)?);
    }
    let entry = CacheEntry {
        schema: CACHE_SCHEMA,
        key: *key,
        outputs: outputs
            .iter()
            .map(|o| CachedOutput { rel_path: o.rel_path.clone(), digest: o.digest, size: o.size })
            .collect(),
        dirs,
        files: cached,
    };
    let lock = store.lock()?;
    for f in &entry.files {
        if !store.has_blob(&f.digest) {
            let again = put_file(store, staging, &f.path)?;
            if again.digest != f.digest {
                return Err(CacheError::Mismatch {
                    path: f.path.clone(),
                    reason: "it changed while being filed".into(),
                });
            }
        }
    }
    store.put_cache_entry(&entry, &lock)?;
    Ok(())
}

/// Lists `rel` (a file, or a directory of files) under `root`, directories before their
/// contents and entries sorted.
fn collect(
    root: &Path,
    rel: &str,
    dirs: &mut Vec<String>,
    files: &mut Vec<String>,
) -> Result<(), CacheError> {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
    if meta.is_file() {
        files.push(rel.to_string());
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(CacheError::Mismatch {
            path: rel.to_string(),
            reason: "neither a file nor a directory".into(),
        });
    }
    dirs.push(rel.to_string());
    let mut names = Vec::new();
    for e in fs::read_dir(&path).map_err(io_err("list", &path))? {
        let e = e.map_err(io_err("list", &path))?;
        let name = e.file_name().into_string().map_err(|n| CacheError::Mismatch {
            path: format!("{rel}/{}", n.to_string_lossy()),
            reason: "the name is not UTF-8".into(),
        })?;
        names.push(name);
    }
    names.sort();
    for n in names {
        collect(root, &format!("{rel}/{n}"), dirs, files)?;
    }
    Ok(())
}

fn put_file(store: &Store, root: &Path, rel: &str) -> Result<CachedFile, CacheError> {
    let path = root.join(rel);
    let file = File::open(&path).map_err(io_err("open", &path))?;
    let exec = file.metadata().map_err(io_err("stat", &path))?.permissions().mode() & 0o111;
    let (digest, size) = store.put_blob(io::BufReader::with_capacity(BUF, file), None)?;
    Ok(CachedFile {
        path: rel.to_string(),
        digest,
        size,
        mode: if exec != 0 { 0o755 } else { 0o644 },
    })
}

/// The unsigned attestation documents of restored outputs, read back from `staging`.
pub(super) fn documents(staging: &Path, name: &str) -> Result<Vec<Document>, CacheError> {
    super::UNSIGNED_DOCUMENTS
        .iter()
        .map(|suffix| {
            let file_name = format!("{name}{suffix}");
            let path = staging.join(&file_name);
            let bytes = fs::read(&path).map_err(io_err("read", &path))?;
            Ok(Document { file_name, bytes })
        })
        .collect()
}

/// Signs restored attestations as `cairn sign` does: the provenance as written, and the SBOM
/// statement made from its subjects and the SPDX document as written.
pub(super) fn resign(
    documents: &[Document],
    key: &SigningKey,
) -> Result<SignedAttestations, CacheError> {
    let bad = |e: serde_json::Error| CacheError::Sign(e.to_string());
    let find = |suffix: &str| {
        documents
            .iter()
            .find(|d| d.file_name.ends_with(suffix))
            .map(|d| d.bytes.as_slice())
            .ok_or_else(|| CacheError::Sign(format!("no {suffix} document")))
    };
    let (provenance, spdx) = (find(".provenance.json")?, find(".spdx.json")?);
    let provenance: serde_json::Value = serde_json::from_slice(provenance).map_err(bad)?;
    let statement: Statement<serde_json::Value> =
        serde_json::from_value(provenance.clone()).map_err(bad)?;
    let spdx: serde_json::Value = serde_json::from_slice(spdx).map_err(bad)?;
    let sbom = sbom_statement_for(statement.subject, spdx);
    sign_statements(&provenance, &sbom, key).map_err(|e| CacheError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_has_a_build_id() {
        let exe = File::open(std::env::current_exe().unwrap()).unwrap();
        let id = elf_build_id(&exe).expect("a GNU build id");
        assert!(id.len() >= 16, "{id:?}");
        assert!(cairn_identity().unwrap().contains(&hex::encode(&id)));
    }

    #[test]
    fn a_file_that_is_not_elf_has_no_build_id() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &[0x7f, b'E', b'L', b'F', 1, 1, 0, 0]).unwrap();
        assert_eq!(elf_build_id(&f), None);
        let mut g = tempfile::tempfile().unwrap();
        // An ELF64 header whose program headers point past the end.
        let mut h = vec![0u8; 64];
        h[..6].copy_from_slice(b"\x7fELF\x02\x01");
        h[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&3u16.to_le_bytes());
        std::io::Write::write_all(&mut g, &h).unwrap();
        assert_eq!(elf_build_id(&g), None);
    }
}
