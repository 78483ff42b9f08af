//! The lock file: every input of a spec pinned by sha256.
//!
//! `cairn lock` resolves each image reference through a [`Resolver`] (index → linux/amd64
//! manifest → config and layers) and hashes each `files[].source`, and writes
//! `<spec>.lock`: pretty JSON with sorted keys and sorted lists, so that a diff of two locks
//! is readable. The lock records the spec's own digest; a lock whose recorded digest differs
//! from the spec's is stale (as in apko, a changed spec needs a new lock).
//!
//! [`resolve`] and [`pin_for_build`] do I/O (through a [`Resolver`], and source files);
//! [`Lockfile::render`], [`Lockfile::parse`] and [`Lockfile::staleness`] are pure.
//!
//! Names become digests only through the [`Resolver`] trait. The [`Store`] resolves what
//! `cairn import`/`pull` put in it (and is all `build` and `lock --offline` use);
//! `registry::StoreThenRegistry` resolves what the store lacks on its registry and fills the
//! store with what it names, and the lock then records the repository
//! ([`LockedImage::repository`]; absent otherwise, so older locks read unchanged).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingReader};
use crate::reference::ImageRef;
use crate::source_date::{SourceDate, parse_rfc3339};
use crate::spec::{FileKind, Role, Spec};
use crate::store::{ResolvedImage, Store, StoreError};

/// The lock format version this build of cairn writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// Why a lock could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("resolving image {reference}: {source}")]
    Image { reference: String, source: ResolveError },
    #[error("image {reference} is pinned to {pinned} in the spec but the lock has {locked}")]
    PinConflict { reference: String, pinned: Digest, locked: Digest },
    #[error("reading source file {path}: {source}")]
    Source { path: PathBuf, source: std::io::Error },
    #[error(
        "source file {source_name:?} resolves to {resolved}, outside the spec's directory {spec_dir}: \
         a spec may be someone else's and may only read files under its own directory\n\n\
         To allow it, pass `--allow-source-outside DIR` with a directory that holds it."
    )]
    SourceOutside { source_name: String, resolved: PathBuf, spec_dir: PathBuf },
    #[error("{path}: not a valid cairn lock file: {reason}")]
    Malformed { path: String, reason: String },
    #[error(
        "{path}: lock version {found} is not supported (this cairn reads version {LOCK_VERSION})"
    )]
    Version { path: String, found: u32 },
    #[error(
        "source file {path} changed since it was locked: expected {expected}, found {actual}\n\nRun `cairn lock` again if the change is intended."
    )]
    SourceChanged { path: PathBuf, expected: Digest, actual: Digest },
    #[error("{0}")]
    Unpinned(String),
    /// `--locked` refused: a verdict (the CLI exits 1), not an input error.
    #[error("{0}")]
    Stale(#[from] StaleLock),
}

/// Why a [`Resolver`] could not resolve a reference.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Boxed: a registry error is large and rare, and every lock result carries the type.
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
    /// Neither the store nor the image's registry has it: both reasons are told.
    #[error("{store}, nor could it be pulled from its registry: {registry}")]
    Nowhere { store: Box<StoreError>, registry: Box<crate::registry::RegistryError> },
}

impl From<crate::registry::RegistryError> for ResolveError {
    fn from(e: crate::registry::RegistryError) -> ResolveError {
        ResolveError::Registry(Box::new(e))
    }
}

/// Resolves image references to digests: the seam where a second source of images (a
/// registry) plugs in.
pub trait Resolver {
    /// Resolves `image` (by its digest when it has one, else by its tag) to the digest of
    /// its top-level manifest or index and the image for `platform` under it. On success
    /// every blob the [`ResolvedImage`] names is in the store the build reads from.
    fn resolve_ref(
        &self,
        image: &ImageRef,
        platform: (&str, &str),
    ) -> Result<ResolvedRef, ResolveError>;
}

/// What a [`Resolver`] found for a reference.
pub struct ResolvedRef {
    /// The digest the reference names: an index or a manifest.
    pub digest: Digest,
    pub image: ResolvedImage,
    /// The registry repository (`host/path`) it was resolved on; `None` when the store
    /// resolved it.
    pub repository: Option<String>,
}

/// The store resolves what was imported into it: its index maps tags to digests.
impl Resolver for Store {
    fn resolve_ref(
        &self,
        image: &ImageRef,
        platform: (&str, &str),
    ) -> Result<ResolvedRef, ResolveError> {
        let top = self.resolve(image)?;
        let digest = crate::store::desc_digest(&top)?;
        let image = self.resolve_image(&top, platform)?;
        Ok(ResolvedRef { digest, image, repository: None })
    }
}

/// Where the lock's source date came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceDateOrigin {
    /// `SOURCE_DATE_EPOCH` was set when the lock was made.
    Environment,
    /// The spec's `x-cairn.source-date-epoch`.
    Spec,
    /// The newest `created` among the component image configs (0 when none has one).
    Inputs,
}

/// One pinned image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LockedImage {
    /// The normalized reference as the spec names it, without a digest.
    pub reference: String,
    /// The digest the reference resolved to (an index or a manifest).
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
    pub platform: String,
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
    /// The registry repository (`host/path`) the image was resolved on, when `cairn lock`
    /// took it from a registry; absent for images the store already had (lock files
    /// without it read as before). `cairn fetch` pulls from it, and the provenance names
    /// it in the component's `resolvedDependencies` URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// One pinned `files[].source`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LockedFile {
    pub digest: Digest,
    pub size: u64,
}

/// The lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lockfile {
    pub lock_version: u32,
    /// sha256 of the spec file's bytes when it was locked.
    pub spec_digest: Digest,
    pub source_date_epoch: SourceDate,
    pub source_date_origin: SourceDateOrigin,
    /// Keyed by normalized reference without digest.
    pub images: BTreeMap<String, LockedImage>,
    /// Keyed by the `source` string exactly as the spec writes it.
    pub files: BTreeMap<String, LockedFile>,
}

/// The platform cairn composes for.
pub const PLATFORM: (&str, &str) = ("linux", "amd64");

impl Lockfile {
    /// Stable, human-diffable JSON: two-space indent, struct fields in declaration order,
    /// map keys sorted, trailing newline.
    pub fn render(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn parse(path: &str, bytes: &[u8]) -> Result<Lockfile, LockError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct VersionOnly {
            lock_version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(bytes)
            .map_err(|e| LockError::Malformed { path: path.to_string(), reason: e.to_string() })?;
        if v.lock_version != LOCK_VERSION {
            return Err(LockError::Version { path: path.to_string(), found: v.lock_version });
        }
        serde_json::from_slice(bytes)
            .map_err(|e| LockError::Malformed { path: path.to_string(), reason: e.to_string() })
    }

    /// Why this lock does not match `spec` (whose bytes hash to `spec_digest`); `None` when
    /// it matches.
    pub fn staleness(&self, spec: &Spec, spec_digest: &Digest) -> Option<String> {
        if self.spec_digest != *spec_digest {
            return Some(format!(
                "the spec changed since it was locked (lock has {}, spec is {})",
                self.spec_digest, spec_digest
            ));
        }
        for image in spec.image_refs() {
            let key = image.image.without_digest().to_string();
            if !self.images.contains_key(&key) {
                return Some(format!("image {key} is not in the lock"));
            }
        }
        for source in spec_sources(spec) {
            if !self.files.contains_key(&source) {
                return Some(format!("source file {source} is not in the lock"));
            }
        }
        None
    }
}

/// Every `files[].source` in spec order.
pub fn spec_sources(spec: &Spec) -> Vec<String> {
    spec.files
        .iter()
        .filter_map(|f| match &f.kind {
            FileKind::Source { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// Resolves `source` relative to the spec's directory (never the working directory, so a
/// build does not depend on where it is run from).
pub fn source_path(spec_dir: &Path, source: &str) -> PathBuf {
    spec_dir.join(source)
}

/// Where `files[].source` paths may lead: under the spec's directory, or under a directory
/// the user named with `--allow-source-outside`. A spec may come from someone else; without
/// this check `source: ../../home/me/.ssh/id_ed25519` would copy a host file into the image.
#[derive(Clone, Copy, Debug)]
pub struct SourceRoots<'a> {
    /// The spec file's directory: `files[].source` paths are relative to it.
    pub spec_dir: &'a Path,
    /// Further directories sources may be read from (`--allow-source-outside`).
    pub allowed_outside: &'a [PathBuf],
}

impl SourceRoots<'_> {
    /// The path `source` names, refused with [`LockError::SourceOutside`] when, after `..`
    /// and symlinks are resolved, it is under neither the spec's directory nor an allowed
    /// one. A source that does not exist is returned unchecked: reading it fails anyway.
    pub fn source_path(&self, source: &str) -> Result<PathBuf, LockError> {
        let path = source_path(self.spec_dir, source);
        let Ok(resolved) = fs::canonicalize(&path) else { return Ok(path) };
        let dir = if self.spec_dir.as_os_str().is_empty() { Path::new(".") } else { self.spec_dir };
        let canonical_dir = fs::canonicalize(dir)
            .map_err(|source| LockError::Source { path: dir.to_path_buf(), source })?;
        let inside = |root: &Path| fs::canonicalize(root).is_ok_and(|r| resolved.starts_with(r));
        if resolved.starts_with(&canonical_dir) || self.allowed_outside.iter().any(|r| inside(r)) {
            Ok(path)
        } else {
            Err(LockError::SourceOutside {
                source_name: source.to_string(),
                resolved,
                spec_dir: canonical_dir,
            })
        }
    }
}

/// Resolves one image to a [`LockedImage`].
pub fn lock_image(
    resolver: &dyn Resolver,
    image: &ImageRef,
) -> Result<(LockedImage, ResolvedImage), LockError> {
    let ResolvedRef { digest, image: resolved, repository } = resolver
        .resolve_ref(image, PLATFORM)
        .map_err(|source| LockError::Image { reference: image.to_string(), source })?;
    let locked = LockedImage {
        reference: image.without_digest().to_string(),
        digest,
        index: resolved.index,
        platform: format!("{}/{}", PLATFORM.0, PLATFORM.1),
        manifest: resolved.manifest,
        config: resolved.config,
        layers: resolved.layers.iter().map(|l| l.digest).collect(),
        repository,
    };
    Ok((locked, resolved))
}

/// Hashes a source file.
pub fn hash_source(path: &Path) -> Result<LockedFile, LockError> {
    let err = |source| LockError::Source { path: path.to_path_buf(), source };
    let file = fs::File::open(path).map_err(err)?;
    let mut reader = HashingReader::new(file);
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(err)?;
    let (digest, size) = reader.finish();
    Ok(LockedFile { digest, size })
}

/// The source date derived from the inputs alone: the newest image config `created`.
pub fn source_date_from_inputs<'a>(
    images: impl IntoIterator<Item = &'a ResolvedImage>,
) -> SourceDate {
    let newest = images
        .into_iter()
        .filter_map(|r| r.config_json.created().as_deref().and_then(parse_rfc3339))
        .max()
        .unwrap_or(0);
    SourceDate::new(newest).unwrap_or(SourceDate::ZERO)
}

/// Resolves every input of `spec` and returns the lock.
///
/// `env_source_date` is `SOURCE_DATE_EPOCH` as the caller parsed it, if set. `previous` is
/// the lock being replaced: an image still at the same digest keeps the registry
/// repository it recorded (the store, which now has the image, does not know it).
pub fn resolve(
    spec: &Spec,
    spec_digest: Digest,
    roots: SourceRoots<'_>,
    resolver: &dyn Resolver,
    env_source_date: Option<SourceDate>,
    previous: Option<&Lockfile>,
) -> Result<Lockfile, LockError> {
    let mut images = BTreeMap::new();
    let mut resolved_all = Vec::new();
    for image in spec.image_refs() {
        let (mut locked, resolved) = lock_image(resolver, &image.image)?;
        if locked.repository.is_none()
            && let Some(before) = previous.and_then(|p| p.images.get(&locked.reference))
            && before.digest == locked.digest
        {
            locked.repository = before.repository.clone();
        }
        if let Some(pinned) = image.image.digest()
            && *pinned != locked.digest
        {
            return Err(LockError::PinConflict {
                reference: image.image.to_string(),
                pinned: *pinned,
                locked: locked.digest,
            });
        }
        if let Some(previous) = images.get(&locked.reference) {
            let previous: &LockedImage = previous;
            if previous.digest != locked.digest {
                return Err(LockError::PinConflict {
                    reference: locked.reference.clone(),
                    pinned: previous.digest,
                    locked: locked.digest,
                });
            }
            // Named twice: the first resolution pulled it, the second found it in the store.
            locked.repository = locked.repository.or_else(|| previous.repository.clone());
        }
        images.insert(locked.reference.clone(), locked);
        resolved_all.push(resolved);
    }
    let mut files = BTreeMap::new();
    for f in &spec.files {
        let FileKind::Source { path: source, optional } = &f.kind else { continue };
        let path = roots.source_path(source)?;
        match hash_source(&path) {
            Ok(locked) => {
                files.insert(source.clone(), locked);
            }
            Err(LockError::Source { source: e, .. })
                if *optional && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let (source_date_epoch, source_date_origin) =
        match (env_source_date, spec.x_cairn.source_date_epoch) {
            (Some(sd), _) => (sd, SourceDateOrigin::Environment),
            (None, Some(sd)) => (sd, SourceDateOrigin::Spec),
            (None, None) => (source_date_from_inputs(&resolved_all), SourceDateOrigin::Inputs),
        };
    Ok(Lockfile {
        lock_version: LOCK_VERSION,
        spec_digest,
        source_date_epoch,
        source_date_origin,
        images,
        files,
    })
}

/// One image of the spec with everything the build needs about it.
pub struct PinnedImage {
    pub role: Role,
    /// Position within its section (0 for the kernel).
    pub index: usize,
    /// The container name, or `kernel` / `init[N]`.
    pub name: String,
    pub image: ImageRef,
    pub locked: LockedImage,
    pub resolved: ResolvedImage,
}

/// A `files[].source` with the path it is read from and the digest it must have.
pub struct PinnedFile {
    pub path: PathBuf,
    pub locked: LockedFile,
}

/// What a build consumes: only pinned inputs.
pub struct BuildInputs {
    /// In spec order: kernel, init, onboot, onshutdown, services.
    pub images: Vec<PinnedImage>,
    pub files: BTreeMap<String, PinnedFile>,
    pub source_date: SourceDate,
}

/// How strictly a build treats the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// `--locked`: the lock must exist and match the spec.
    Locked,
    /// Use the lock where it pins an input; refuse inputs neither locked nor `@sha256:`-pinned.
    PinnedOnly,
}

/// Why `--locked` refused: a verdict (exit 1), not an input error.
#[derive(Debug, thiserror::Error)]
#[error("{lock_path}: {reason}\n\nRun `cairn lock {spec_path}` to update it.")]
pub struct StaleLock {
    pub lock_path: String,
    pub spec_path: String,
    pub reason: String,
}

/// What [`pin_for_build`] needs to know about the spec and its lock.
pub struct PinRequest<'a> {
    pub spec: &'a Spec,
    /// sha256 of the spec file's bytes.
    pub spec_digest: &'a Digest,
    /// Where `files[].source` paths are read from.
    pub sources: SourceRoots<'a>,
    pub lock: Option<&'a Lockfile>,
    pub mode: LockMode,
    /// `SOURCE_DATE_EPOCH` as the caller parsed it, if set.
    pub env_source_date: Option<SourceDate>,
    /// How messages name the spec file and its lock file.
    pub spec_name: &'a str,
    pub lock_name: &'a str,
}

/// The pins a build uses, from the lock and the spec's own `@sha256:` references. A lock
/// that `--locked` refuses is [`LockError::Stale`].
pub fn pin_for_build(
    req: &PinRequest<'_>,
    resolver: &dyn Resolver,
) -> Result<BuildInputs, LockError> {
    let PinRequest { spec, spec_digest, sources, lock, mode, env_source_date, .. } = *req;
    let spec_path = req.spec_name;
    let stale = |reason: String| StaleLock {
        lock_path: req.lock_name.to_string(),
        spec_path: spec_path.to_string(),
        reason,
    };
    if mode == LockMode::Locked {
        let reason = match lock {
            None => Some("the lock file does not exist (--locked needs one)".to_string()),
            Some(l) => l.staleness(spec, spec_digest),
        };
        if let Some(reason) = reason {
            return Err(stale(reason).into());
        }
    }
    let mut images = Vec::new();
    let mut resolved_for_date = Vec::new();
    for u in spec.image_refs() {
        let key = u.image.without_digest().to_string();
        let from_lock = lock.and_then(|l| l.images.get(&key));
        let top = match (u.image.digest(), from_lock) {
            (Some(pinned), Some(locked)) if *pinned != locked.digest => {
                return Err(LockError::PinConflict {
                    reference: u.image.to_string(),
                    pinned: *pinned,
                    locked: locked.digest,
                });
            }
            (Some(pinned), _) => *pinned,
            (None, Some(locked)) => locked.digest,
            (None, None) => {
                return Err(LockError::Unpinned(format!(
                    "image {} is neither in the lock nor pinned with @sha256:\n\nRun `cairn lock {spec_path}` to pin it.",
                    u.image
                )));
            }
        };
        let (mut locked, resolved) = lock_image(resolver, &u.image.with_digest(top))?;
        // Where the image came from is the lock's record, not the store's.
        locked.repository = from_lock.and_then(|l| l.repository.clone());
        if let Some(l) = from_lock
            && (l.manifest != locked.manifest
                || l.config != locked.config
                || l.layers != locked.layers)
        {
            return Err(LockError::Unpinned(format!(
                "image {key}: the store resolves {top} differently from the lock (manifest, config or layers differ)"
            )));
        }
        resolved_for_date.push(resolved.clone());
        images.push(PinnedImage {
            role: u.role,
            index: u.index,
            name: u.name.clone(),
            image: u.image.clone(),
            locked,
            resolved,
        });
    }
    let mut files = BTreeMap::new();
    for f in &spec.files {
        let FileKind::Source { path: source, optional } = &f.kind else { continue };
        match lock.and_then(|l| l.files.get(source)) {
            Some(locked) => {
                files.insert(
                    source.clone(),
                    PinnedFile { path: sources.source_path(source)?, locked: locked.clone() },
                );
            }
            None if *optional => {}
            None => {
                return Err(LockError::Unpinned(format!(
                    "source file {source} is not pinned by the lock\n\nRun `cairn lock {spec_path}` to pin it."
                )));
            }
        }
    }
    let source_date = match (env_source_date, spec.x_cairn.source_date_epoch, lock) {
        (Some(sd), _, _) => sd,
        (None, Some(sd), _) => sd,
        (None, None, Some(l)) => l.source_date_epoch,
        (None, None, _) => source_date_from_inputs(&resolved_for_date),
    };
    Ok(BuildInputs { images, files, source_date })
}
