//! OCI registries: the only network code in cairn. Pulls images into the store, pushes OCI
//! layouts with their signed attestations, and reads attestations attached to an image.
//!
//! # Why a small client on `ureq` and not `oci-client`
//! `oci-client` 0.18 was evaluated: it is maintained, speaks the distribution spec 1.1
//! (chunked upload, cross-repository mount, referrers with the tag-schema fallback), can use
//! rustls, extra CAs and plain HTTP for chosen hosts, and verifies pulled blob digests. But it
//! is async only (tokio + reqwest + hyper), which adds about 75 crates to cairn's tree, and
//! cairn is synchronous throughout; it has no retries, and we would still have to wrap every
//! call to bound parallelism, verify manifests and stream into the store. `ureq` 3 (blocking,
//! maintained) with rustls on the aws-lc-rs provider cairn already builds for
//! `sigstore-verify` adds 12 crates, and the protocol subset cairn needs is a few hundred
//! lines that we test against a real registry (distribution 2.8) and a spec-following
//! in-test server.
//!
//! # Trust
//! A registry is not trusted: every manifest and blob is hashed while it is received and
//! refused unless its digest and size match what the reference or the parent descriptor
//! says ([`RegistryError::Verification`]); blobs are verified before they are renamed into
//! the store, so a lying registry leaves nothing behind. Blobs that did verify stay in the
//! store even if a later one fails, so an interrupted pull resumes where it stopped; a name
//! is tagged only once the whole image is present.
//!
//! # Files
//! `auth` (credentials and the `WWW-Authenticate` dance), `transport` (TLS, plain HTTP policy,
//! retries), `client` (the distribution API of one repository), `pull` (registry → store),
//! `resolver` (the lock's resolver: the store, then the registry), `layout` (registry → OCI
//! layout, for `cairn verify REF`),
//! `push` (OCI layout and attestations → registry), `referrers` (attached artifacts), and
//! `progress`.

use crate::digest::Digest;
use crate::reference::ReferenceError;
use crate::store::{FsError, StoreError};

mod auth;
mod client;
mod layout;
mod progress;
mod pull;
mod push;
mod referrers;
mod resolver;
mod transport;

pub use auth::{AUTH_ENV, Credentials};
pub use layout::pull_layout;
pub use progress::Progress;
pub use pull::{Fetched, Pulled, ResolvedImage, fetch_lock, pull, resolve};
pub use push::{PushOptions, Pushed, push_layout};
pub use referrers::{ARTIFACT_DSSE, ARTIFACT_SIGSTORE_BUNDLE, fetch_referrers};
pub use resolver::StoreThenRegistry;
pub use transport::{Options, Registry};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The registry refused the credentials (or there were none and it wants some).
    #[error(
        "authentication to {registry} failed ({reason})\n\nCheck the credentials for {registry} in ${AUTH_ENV} or the Docker config.json ($DOCKER_CONFIG or ~/.docker)."
    )]
    Auth { registry: String, reason: String },
    /// Content the registry sent does not match its digest or size.
    #[error("{what} from {registry} failed verification: {reason}; nothing was stored")]
    Verification { registry: String, what: String, reason: String },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: the registry answered HTTP {status}{detail}")]
    Status { method: &'static str, url: String, status: u16, detail: String },
    /// The registry could not be reached (after retries).
    #[error("{method} {url}: {reason}")]
    Transport { method: &'static str, url: String, reason: String },
    #[error("{what} was not found on {registry}")]
    NotFound { registry: String, what: String },
    /// Plain HTTP was needed for a host that is neither loopback nor named insecure.
    #[error(
        "{registry} does not speak HTTPS ({reason})\n\nPlain HTTP is used only for loopback addresses and hosts given with --insecure-registry {registry}."
    )]
    Insecure { registry: String, reason: String },
    /// A document from the registry or the input is malformed or unsupported.
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// Credentials or CA configuration is unusable.
    #[error("{what}: {reason}")]
    Config { what: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file system failed (writing fetched files).
    #[error(transparent)]
    Io(#[from] FsError),
}

impl RegistryError {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> RegistryError {
        RegistryError::Invalid { what: what.into(), reason: reason.into() }
    }

    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> RegistryError {
        let path = path.to_path_buf();
        move |source| RegistryError::Io(FsError { action, path, source })
    }

    /// Whether this is a failed authentication (the CLI says so distinctly).
    pub fn is_auth(&self) -> bool {
        matches!(self, RegistryError::Auth { .. })
    }
}

/// A descriptor as the distribution API exchanges it: what cairn needs of one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desc {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

impl Desc {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Desc {
        Desc {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        }
    }
}

/// Runs `f` on each item, at most `jobs` at a time. The first error stops the items not yet
/// started and is returned.
pub(crate) fn parallel<T: Send>(
    items: Vec<T>,
    jobs: usize,
    f: impl Fn(T) -> Result<(), RegistryError> + Sync,
) -> Result<(), RegistryError> {
    let workers = jobs.clamp(1, items.len().max(1));
    let queue = std::sync::Mutex::new(items.into_iter());
    let failure: std::sync::Mutex<Option<RegistryError>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let Some(item) = queue.lock().ok().and_then(|mut q| q.next()) else { return };
                    if let Err(e) = f(item) {
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
