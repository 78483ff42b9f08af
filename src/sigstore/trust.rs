//! Which Sigstore trusted root a keyless verification uses, and how to say so.
//!
//! In order of preference:
//! 1. a trusted root the user names (`--trusted-root FILE`, a policy's `trustedRoot`);
//! 2. the copy `cairn sigstore update-trust-root` last refreshed through TUF, kept in
//!    `<cache dir>/cairn/sigstore/<instance>/trusted_root.json` (its date is the file's
//!    modification time: the last time TUF confirmed it);
//! 3. the snapshot compiled into cairn (`trusted_root/`, see its README for provenance).
//!
//! A refreshed copy that is present but unreadable or not a valid trusted root is an error,
//! not a reason to fall back to the older embedded snapshot (fail closed: the refresh may
//! have retired a key the snapshot still trusts). A root older than [`STALE_AFTER_DAYS`]
//! draws a warning, not an error.

use std::fmt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::{MAX_JSON_BYTES, SigstoreError};

/// The package the embedded trusted roots and TUF roots come from.
pub const SNAPSHOT_SOURCE: &str = "crates.io sigstore-trust-root 0.15.1";
/// The release date of that package: the date the embedded snapshot is reported with.
pub const SNAPSHOT_DATE: &str = "2026-10-23";
/// A trusted root older than this many days draws a warning.
pub const STALE_AFTER_DAYS: i64 = 180;
/// The file name of a refreshed trusted root (and of the TUF target it comes from).
pub const TRUSTED_ROOT_FILE: &str = "trusted_root.json";

/// A Sigstore instance whose trust material cairn ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instance {
    /// The public-good (production) instance.
    PublicGood,
    /// The staging instance (`--staging`).
    Staging,
}

impl Instance {
    pub fn from_staging(staging: bool) -> Instance {
        if staging { Instance::Staging } else { Instance::PublicGood }
    }

    /// `public-good` or `staging`: the name in messages and in the cache path.
    pub fn name(self) -> &'static str {
        match self {
            Instance::PublicGood => "public-good",
            Instance::Staging => "staging",
        }
    }

    /// The instance's TUF repository.
    pub fn tuf_url(self) -> &'static str {
        match self {
            Instance::PublicGood => "https://tuf-repo-cdn.sigstore.dev",
            Instance::Staging => "https://tuf-repo-cdn.sigstage.dev",
        }
    }

    /// The embedded TUF `root.json`: where trust in the TUF repository begins.
    pub fn tuf_root(self) -> &'static [u8] {
        match self {
            Instance::PublicGood => include_bytes!("trusted_root/tuf-root-public-good.json"),
            Instance::Staging => include_bytes!("trusted_root/tuf-root-staging.json"),
        }
    }

    /// The embedded trusted root snapshot.
    pub fn snapshot(self) -> &'static [u8] {
        match self {
            Instance::PublicGood => include_bytes!("trusted_root/public-good.json"),
            Instance::Staging => include_bytes!("trusted_root/staging.json"),
        }
    }

    /// Where `update-trust-root` keeps this instance's refreshed root and TUF metadata:
    /// `<cache_dir>/cairn/sigstore/<instance>`.
    pub fn cache_dir_in(self, cache_dir: &Path) -> PathBuf {
        cache_dir.join("cairn").join("sigstore").join(self.name())
    }
}

/// The user's cache directory (`$XDG_CACHE_HOME`, else `~/.cache`), where the default
/// store also lives.
pub fn user_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir()
}

/// Where a trusted root came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootSource {
    /// Named by the user.
    File(PathBuf),
    /// Refreshed through TUF by `update-trust-root`, last at `refreshed`.
    Refreshed { path: PathBuf, refreshed: Timestamp },
    /// The snapshot compiled into cairn.
    Embedded(Instance),
}

/// A trusted root chosen for a verification.
#[derive(Clone, Debug)]
pub struct SelectedRoot {
    pub json: Vec<u8>,
    pub source: RootSource,
}

/// Why no trusted root could be chosen (bad input: exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("reading the trusted root {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the trusted root {} is larger than {MAX_JSON_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error(
        "the refreshed trusted root {} is not usable ({reason}): run `cairn sigstore update-trust-root{flag}` again, or delete the file to use the embedded snapshot",
        path.display()
    )]
    CorruptRefreshed { path: PathBuf, reason: String, flag: &'static str },
}

impl SelectedRoot {
    /// The embedded snapshot of `instance`.
    pub fn embedded(instance: Instance) -> SelectedRoot {
        SelectedRoot { json: instance.snapshot().to_vec(), source: RootSource::Embedded(instance) }
    }

    /// When this root was current: the snapshot's release date, the last refresh, or
    /// nothing for a file the user named.
    pub fn date(&self) -> Option<Timestamp> {
        match &self.source {
            RootSource::File(_) => None,
            RootSource::Refreshed { refreshed, .. } => Some(*refreshed),
            RootSource::Embedded(_) => snapshot_date(),
        }
    }

    /// Whole days between [`SelectedRoot::date`] and `now` (0 for a date in the future).
    pub fn age_days(&self, now: Timestamp) -> Option<i64> {
        self.date().map(|d| (now.as_second() - d.as_second()).max(0) / 86_400)
    }

    /// Where the root came from and how old it is, for reports.
    pub fn describe(&self, now: Timestamp) -> String {
        let age = |d: Timestamp| {
            let days = self.age_days(now).unwrap_or(0);
            format!("{}, {days} day{} old", day(d), if days == 1 { "" } else { "s" })
        };
        match (&self.source, self.date()) {
            (RootSource::File(p), _) => format!("trusted root {}", p.display()),
            (RootSource::Refreshed { path, .. }, Some(d)) => {
                format!("trusted root refreshed through TUF on {} ({})", age(d), path.display())
            }
            (RootSource::Embedded(i), Some(d)) => format!(
                "embedded {} trusted root snapshot of {} ({SNAPSHOT_SOURCE})",
                i.name(),
                age(d)
            ),
            (_, None) => "trusted root of unknown date".to_string(),
        }
    }

    /// A warning when the root is older than [`STALE_AFTER_DAYS`].
    pub fn staleness_warning(&self, now: Timestamp) -> Option<String> {
        let days = self.age_days(now)?;
        let flag = match &self.source {
            RootSource::Embedded(Instance::Staging) => " --staging",
            _ => "",
        };
        (days > STALE_AFTER_DAYS).then(|| {
            format!(
                "the trusted root is {days} days old (more than {STALE_AFTER_DAYS}): keys rotated since then are unknown to it; refresh it with `cairn sigstore update-trust-root{flag}` or pass --trusted-root"
            )
        })
    }
}

impl fmt::Display for RootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSource::File(p) => write!(f, "file {}", p.display()),
            RootSource::Refreshed { path, .. } => write!(f, "refreshed copy {}", path.display()),
            RootSource::Embedded(i) => write!(f, "embedded {} snapshot", i.name()),
        }
    }
}

fn snapshot_date() -> Option<Timestamp> {
    format!("{SNAPSHOT_DATE}T00:00:00Z").parse().ok()
}

fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// Reads a trusted root file, bounded by [`MAX_JSON_BYTES`].
pub fn read_root(path: &Path) -> Result<Vec<u8>, TrustError> {
    let read_err = |source| TrustError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_JSON_BYTES as u64 {
        return Err(TrustError::TooLarge { path: path.to_path_buf() });
    }
    std::fs::read(path).map_err(read_err)
}

/// Checks that `json` is a trusted root cairn can verify with.
pub fn check_root(json: &[u8]) -> Result<(), SigstoreError> {
    let root = super::parse_trusted_root(json)?;
    sigstore_verify::Verifier::new(&root)
        .map_err(|e| SigstoreError::InvalidTrustedRoot(e.to_string()))?;
    Ok(())
}

/// Chooses the trusted root for `instance`: `explicit` if given, else the refreshed copy
/// under the user's cache directory if there is one, else the embedded snapshot.
pub fn select(instance: Instance, explicit: Option<&Path>) -> Result<SelectedRoot, TrustError> {
    select_in(instance, explicit, user_cache_dir().as_deref())
}

/// [`select`] with the cache directory given (`None`: no refreshed copy is looked for).
pub fn select_in(
    instance: Instance,
    explicit: Option<&Path>,
    cache_dir: Option<&Path>,
) -> Result<SelectedRoot, TrustError> {
    if let Some(path) = explicit {
        return Ok(SelectedRoot { json: read_root(path)?, source: RootSource::File(path.into()) });
    }
    let Some(cache_dir) = cache_dir else {
        return Ok(SelectedRoot::embedded(instance));
    };
    let path = instance.cache_dir_in(cache_dir).join(TRUSTED_ROOT_FILE);
    let corrupt = |reason: String| TrustError::CorruptRefreshed {
        path: path.clone(),
        reason,
        flag: if instance == Instance::Staging { " --staging" } else { "" },
    };
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SelectedRoot::embedded(instance));
        }
        Err(e) => return Err(corrupt(e.to_string())),
    };
    if !meta.is_file() {
        return Err(corrupt("not a regular file".into()));
    }
    let json = read_root(&path).map_err(|e| corrupt(e.to_string()))?;
    check_root(&json).map_err(|e| corrupt(e.to_string()))?;
    let refreshed = meta
        .modified()
        .ok()
        .and_then(|t| Timestamp::try_from(t).ok())
        .ok_or_else(|| corrupt("it has no usable modification time".into()))?;
    Ok(SelectedRoot { json, source: RootSource::Refreshed { path, refreshed } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// The embedded files are the ones the README names.
    #[test]
    fn embedded_files_match_their_recorded_sums() {
        let readme = include_str!("trusted_root/README.md");
        for (file, bytes) in [
            ("public-good.json", Instance::PublicGood.snapshot()),
            ("staging.json", Instance::Staging.snapshot()),
            ("tuf-root-public-good.json", Instance::PublicGood.tuf_root()),
            ("tuf-root-staging.json", Instance::Staging.tuf_root()),
        ] {
            let line = format!("{}  {file}", Digest::of(bytes).hex());
            assert!(readme.contains(&line), "README lacks {line}");
        }
        assert!(
            readme.contains(SNAPSHOT_DATE) && readme.contains("`sigstore-trust-root` **0.15.1**")
        );
    }

    #[test]
    fn embedded_snapshots_are_valid_roots() {
        for i in [Instance::PublicGood, Instance::Staging] {
            check_root(i.snapshot()).unwrap();
            assert_ne!(i.snapshot(), Instance::PublicGood.tuf_root());
        }
        assert_ne!(Instance::PublicGood.snapshot(), Instance::Staging.snapshot());
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn embedded_root_is_described_with_its_date_and_age() {
        let r = SelectedRoot::embedded(Instance::PublicGood);
        let now = at("2026-11-02T12:00:00Z");
        assert_eq!(r.age_days(now), Some(10));
        let text = r.describe(now);
        assert!(
            text.contains("embedded public-good trusted root snapshot of 2026-10-23, 10 days old"),
            "{text}"
        );
        assert_eq!(r.staleness_warning(now), None);
        let later = at("2027-05-01T00:00:00Z");
        let w = r.staleness_warning(later).unwrap();
        assert!(w.contains("190 days old") && w.contains("update-trust-root`"), "{w}");
        let staging = SelectedRoot::embedded(Instance::Staging).staleness_warning(later).unwrap();
        assert!(staging.contains("update-trust-root --staging"), "{staging}");
    }

    #[test]
    fn selection_order() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        // Nothing refreshed, no cache directory at all: the embedded snapshot.
        let r = select_in(Instance::PublicGood, None, Some(&cache)).unwrap();
        assert_eq!(r.source, RootSource::Embedded(Instance::PublicGood));
        let r = select_in(Instance::Staging, None, None).unwrap();
        assert_eq!(r.source, RootSource::Embedded(Instance::Staging));
        assert_eq!(r.json, Instance::Staging.snapshot());

        // A refreshed copy wins over the snapshot, for its own instance only.
        let slot = Instance::PublicGood.cache_dir_in(&cache);
        std::fs::create_dir_all(&slot).unwrap();
        let refreshed = slot.join(TRUSTED_ROOT_FILE);
        std::fs::write(&refreshed, Instance::Staging.snapshot()).unwrap();
        let r = select_in(Instance::PublicGood, None, Some(&cache)).unwrap();
        assert!(matches!(&r.source, RootSource::Refreshed { path, .. } if *path == refreshed));
        assert_eq!(r.json, Instance::Staging.snapshot());
        assert!(r.age_days(Timestamp::now()).unwrap() <= 1);
        let r = select_in(Instance::Staging, None, Some(&cache)).unwrap();
        assert_eq!(r.source, RootSource::Embedded(Instance::Staging));

        // A named file wins over both.
        let named = dir.path().join("mine.json");
        std::fs::write(&named, b"{}").unwrap();
        let r = select_in(Instance::PublicGood, Some(&named), Some(&cache)).unwrap();
        assert_eq!(r.source, RootSource::File(named.clone()));
        assert_eq!(r.date(), None);
        assert!(r.describe(Timestamp::now()).contains("mine.json"));
        assert!(matches!(
            select_in(Instance::PublicGood, Some(&dir.path().join("nope")), None),
            Err(TrustError::Read { .. })
        ));

        // A corrupt refreshed copy is refused, not skipped.
        for bad in [&b"{not json"[..], b"{}", b""] {
            std::fs::write(&refreshed, bad).unwrap();
            let err = select_in(Instance::PublicGood, None, Some(&cache)).unwrap_err();
            assert!(matches!(err, TrustError::CorruptRefreshed { .. }), "{err}");
            assert!(err.to_string().contains("update-trust-root"), "{err}");
        }
        std::fs::remove_file(&refreshed).unwrap();
        std::fs::create_dir(&refreshed).unwrap();
        let err = select_in(Instance::PublicGood, None, Some(&cache)).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
