//! `cairn sigstore update-trust-root`: refresh a Sigstore trusted root through TUF.
//!
//! The TUF client is `sigstore-tuf` (the sigstore-rust family's, without its reqwest
//! transport): trust starts from the TUF `root.json` embedded in cairn (or one the user
//! names for another repository), walks the root chain, checks timestamp, snapshot and
//! targets (signatures, thresholds, expiry, rollback), and only then downloads the
//! `trusted_root.json` target, whose length and sha256 the signed targets metadata pins.
//! The verified metadata is kept beside the refreshed root (`tuf/<repository>/`), so a
//! later refresh cannot be rolled back to older metadata. Transport: ureq (blocking),
//! driven by a minimal executor since nothing here waits on anything but its own I/O.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{FileStore, Repository, Updater};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use super::trust::{Instance, TRUSTED_ROOT_FILE, check_root};
use crate::digest::Digest;

/// How long one HTTP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where to refresh from.
#[derive(Clone, Debug)]
pub struct TufSource {
    /// The repository's base URL (metadata at `<url>/N.root.json`, targets at
    /// `<url>/targets/…`).
    pub url: String,
    /// The TUF `root.json` trust starts from.
    pub root: Vec<u8>,
}

impl TufSource {
    /// The instance's own repository and embedded TUF root.
    pub fn of(instance: Instance) -> TufSource {
        TufSource { url: instance.tuf_url().to_string(), root: instance.tuf_root().to_vec() }
    }
}

/// What a refresh did.
#[derive(Clone, Debug)]
pub struct Refreshed {
    /// The refreshed trusted root file.
    pub path: PathBuf,
    pub sha256: Digest,
    /// The version of the TUF root the repository is at now.
    pub tuf_root_version: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TufError {
    #[error("the TUF repository URL {0:?} is not http(s)://…")]
    BadUrl(String),
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the TUF root: {0}")]
    BadRoot(String),
    #[error("TUF refresh from {url}: {reason}")]
    Refresh { url: String, reason: String },
}

/// Refreshes `instance`'s trusted root from `source` into `<cache_dir>/cairn/sigstore/
/// <instance>/trusted_root.json` (atomically; nothing is written unless TUF verified it
/// and it parses as a trusted root).
pub fn update_trust_root(
    instance: Instance,
    source: &TufSource,
    cache_dir: &Path,
) -> Result<Refreshed, TufError> {
    let url = source.url.trim_end_matches('/').to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(TufError::BadUrl(source.url.clone()));
    }
    let slot = instance.cache_dir_in(cache_dir);
    let store = FileStore::new(slot.join("tuf").join(dir_name(&url)));
    let repo = HttpRepository { agent: agent(), url: url.clone() };
    let refresh_err =
        |e: sigstore_tuf::Error| TufError::Refresh { url: url.clone(), reason: chain(&e) };
    let mut updater = Updater::new(repo, &source.root)
        .map_err(|e| TufError::BadRoot(chain(&e)))?
        .with_store(store);
    let now = jiff::Timestamp::now();
    block_on(updater.refresh(now)).map_err(refresh_err)?;
    let json = block_on(updater.get_target(TRUSTED_ROOT_FILE, now)).map_err(refresh_err)?;
    check_root(&json).map_err(|e| TufError::Refresh {
        url: url.clone(),
        reason: format!("the {TRUSTED_ROOT_FILE} it delivered is not usable: {e}"),
    })?;
    let path = slot.join(TRUSTED_ROOT_FILE);
    crate::atomic::write_atomic(&path, &json)
        .map_err(|source| TufError::Write { path: path.clone(), source })?;
    Ok(Refreshed {
        path,
        sha256: Digest::of(&json),
        tuf_root_version: updater.trusted().root().version,
    })
}

/// An error and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// A file-system-safe name for a repository URL (its metadata cache directory).
fn dir_name(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// TUF over HTTP(S) with ureq: metadata at `<url>/<name>`, targets at `<url>/targets/<path>`.
struct HttpRepository {
    agent: ureq::Agent,
    url: String,
}

impl HttpRepository {
    fn get(&self, rel: &str, max_length: u64) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let url = format!("{}/{rel}", self.url);
        let fail = |what: String| sigstore_tuf::Error::transport(format!("GET {url}: {what}"));
        let mut resp = self.agent.get(&url).call().map_err(|e| fail(e.to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            // What a missing file looks like on a static host or a CDN (S3 says 403).
            403 | 404 => return Ok(None),
            status => return Err(fail(format!("HTTP {status}"))),
        }
        resp.body_mut()
            .with_config()
            .limit(max_length)
            .read_to_vec()
            .map(Some)
            .map_err(|e| fail(format!("{e} (at most {max_length} bytes are accepted)")))
    }
}

impl Repository for HttpRepository {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        let res = self.get(name, max_length);
        Box::pin(async move { res })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        let res = self.get(&format!("targets/{path}"), max_length);
        Box::pin(async move { res })
    }
}

fn agent() -> ureq::Agent {
    let roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::new_with_certs(&roots))
                .unversioned_rustls_crypto_provider(provider)
                .build(),
        )
        .http_status_as_error(false)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .timeout_global(Some(TIMEOUT))
        .build()
        .new_agent()
}

/// Runs a future to completion on this thread (the TUF updater's futures only wait on
/// the blocking transport above, so they are ready when first polled).
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_dir_names_are_flat() {
        assert_eq!(
            dir_name("https://tuf-repo-cdn.sigstore.dev"),
            "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        );
        assert!(!dir_name("http://127.0.0.1:80/../x").contains('/'));
    }

    #[test]
    fn block_on_runs_ready_and_waking_futures() {
        assert_eq!(block_on(async { 7 }), 7);
        let mut polled = false;
        let once_pending = std::future::poll_fn(|cx| {
            if polled {
                Poll::Ready(1)
            } else {
                polled = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        assert_eq!(block_on(once_pending), 1);
    }

    #[test]
    fn embedded_tuf_roots_bootstrap_an_updater() {
        for i in [Instance::PublicGood, Instance::Staging] {
            let repo = HttpRepository { agent: agent(), url: "http://127.0.0.1:9".into() };
            let u = Updater::new(repo, i.tuf_root()).unwrap();
            assert!(u.trusted().root().version >= 15, "{i:?}");
        }
    }

    #[test]
    fn refuses_bad_urls_and_roots() {
        let dir = tempfile::tempdir().unwrap();
        let bad =
            TufSource { url: "file:///etc".into(), root: Instance::PublicGood.tuf_root().into() };
        assert!(matches!(
            update_trust_root(Instance::PublicGood, &bad, dir.path()),
            Err(TufError::BadUrl(_))
        ));
        let bad = TufSource { url: "http://127.0.0.1:9".into(), root: b"{}".to_vec() };
        assert!(matches!(
            update_trust_root(Instance::PublicGood, &bad, dir.path()),
            Err(TufError::BadRoot(_))
        ));
        // Nothing listens on the discard port: a transport error, and nothing written.
        let src =
            TufSource { url: "http://127.0.0.1:9".into(), ..TufSource::of(Instance::Staging) };
        let err = update_trust_root(Instance::Staging, &src, dir.path()).unwrap_err();
        assert!(matches!(err, TufError::Refresh { .. }), "{err}");
        assert!(!Instance::Staging.cache_dir_in(dir.path()).join(TRUSTED_ROOT_FILE).exists());
    }
}
