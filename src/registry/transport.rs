//! One registry host: TLS, the plain-HTTP policy, authentication and retries.
//!
//! HTTPS uses the system's trusted roots plus the certificates of `--registry-ca`. Plain HTTP
//! is used only when HTTPS fails and the host is a loopback address (`localhost`,
//! `127.0.0.0/8`, `::1`) or was named with `--insecure-registry HOST:PORT`, as Docker does.
//!
//! Requests that fail to connect, time out, or get 429 or 5xx are retried with exponential
//! backoff, a bounded number of times; then the last error is reported.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::http::{self, Method, Response};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body, SendBody};
use zeroize::Zeroizing;

use super::RegistryError;
use super::auth::{Challenge, Credentials};

/// How cairn talks to registries.
#[derive(Clone, Debug)]
pub struct Options {
    pub credentials: Credentials,
    /// `HOST:PORT` (or `HOST`) names allowed to use plain HTTP besides loopback addresses.
    pub insecure: Vec<String>,
    /// A PEM file of extra trusted CA certificates.
    pub ca_file: Option<PathBuf>,
    /// Parallel blob transfers.
    pub jobs: usize,
    /// Attempts per request (1 = no retry).
    pub attempts: u32,
    /// The first retry waits this long; each further one twice as long.
    pub backoff: Duration,
    /// Connect and per-read timeout: a registry that stalls longer is retried.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            credentials: Credentials::none(),
            insecure: Vec::new(),
            ca_file: None,
            jobs: 4,
            attempts: 4,
            backoff: Duration::from_millis(250),
            timeout: Duration::from_secs(30),
        }
    }
}

/// What a request sends.
pub(crate) enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    /// A whole file, reopened on each attempt.
    File(&'a std::path::Path),
}

/// A connection policy to one registry host, shared by the threads of a transfer.
pub struct Registry {
    /// The name references use (`docker.io`, `host:port`).
    pub(crate) name: String,
    /// `https://host[:port]` or `http://…`.
    base: String,
    agent: Agent,
    options: Options,
    /// `Authorization` values by scope; `""` holds a Basic header valid for every scope.
    auth: Mutex<BTreeMap<String, Zeroizing<String>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({})", self.base)
    }
}

impl Registry {
    /// Checks that `name` answers the distribution API (`GET /v2/`) and picks the scheme.
    pub fn connect(name: &str, options: &Options) -> Result<Registry, RegistryError> {
        let api_host = if name == "docker.io" { "registry-1.docker.io" } else { name };
        let mut reg = Registry {
            name: name.to_string(),
            base: format!("https://{api_host}"),
            agent: agent(options)?,
            options: options.clone(),
            auth: Mutex::new(BTreeMap::new()),
        };
        let plain_allowed = plain_http_allowed(name, &options.insecure);
        let (method, url, reason) = match reg.ping(plain_allowed) {
            Ok(()) => return Ok(reg),
            Err(RegistryError::Transport { method, url, reason }) => (method, url, reason),
            Err(e) => return Err(e),
        };
        if !plain_allowed {
            // A TLS failure on a host that may be plain HTTP deserves the hint.
            if reason.to_ascii_lowercase().contains("tls") {
                return Err(RegistryError::Insecure { registry: name.to_string(), reason });
            }
            return Err(RegistryError::Transport { method, url, reason });
        }
        reg.base = format!("http://{api_host}");
        match reg.ping(false) {
            Ok(()) => Ok(reg),
            // Both failed: the HTTPS reason is the one that explains (an untrusted CA…).
            Err(e) => Err(RegistryError::Transport {
                method,
                url,
                reason: format!("{reason}; plain HTTP failed too: {e}"),
            }),
        }
    }

    /// `GET /v2/`; `probe` makes one attempt only (a probe for HTTPS before plain HTTP).
    fn ping(&mut self, probe: bool) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        let attempts = self.options.attempts;
        if probe {
            self.options.attempts = 1;
        }
        let resp = self.send(Method::GET, &url, &[], Payload::None, "");
        self.options.attempts = attempts;
        let resp = resp?;
        if resp.status().is_success() { Ok(()) } else { Err(status_error("GET", &url, resp)) }
    }

    /// An absolute URL for `/v2/…` paths and `Location` headers.
    pub(crate) fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            format!("{}/{path_or_url}", self.base)
        }
    }

    /// Sends one request with authentication and retries. `scope` is the token scope
    /// (`repository:NAME:pull`); the response may have any status.
    pub(crate) fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        scope: &str,
    ) -> Result<Response<Body>, RegistryError> {
        let options = &self.options;
        let method_name = method_name(&method);
        let mut authenticated = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut builder = http::Request::builder().method(method.clone()).uri(url);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            // Credentials go only to the registry itself, never to a host a Location names.
            let own = url.strip_prefix(self.base.as_str()).is_some_and(|r| r.starts_with('/'));
            if let Some(value) = self.auth_header(scope).filter(|_| own) {
                builder = builder.header("authorization", value.as_str());
            }
            let result = match &payload {
                Payload::None => builder.body(SendBody::none()).map(|r| self.agent.run(r)),
                Payload::Bytes(b) => builder.body(*b).map(|r| self.agent.run(r)),
                Payload::File(p) => {
                    let file = std::fs::File::open(p).map_err(RegistryError::io("open", p))?;
                    builder.body(file).map(|r| self.agent.run(r))
                }
            }
            .map_err(|e| RegistryError::invalid(format!("request {url}"), e.to_string()))?;
            let retry_in = options.backoff.saturating_mul(1 << (attempt - 1).min(8));
            let resp = match result {
                Ok(resp) => resp,
                Err(e) if attempt < options.attempts && retryable(&e) => {
                    std::thread::sleep(retry_in);
                    continue;
                }
                Err(e) => {
                    return Err(RegistryError::Transport {
                        method: method_name,
                        url: url.to_string(),
                        reason: describe(&e, attempt),
                    });
                }
            };
            let status = resp.status().as_u16();
            if status == 401 && !authenticated {
                authenticated = true;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|h| h.to_str().ok())
                    .and_then(Challenge::parse);
                self.authenticate(challenge, scope)?;
                attempt -= 1;
                continue;
            }
            if status == 401 || status == 403 {
                let detail = error_detail(resp);
                return Err(RegistryError::Auth {
                    registry: self.name.clone(),
                    reason: format!("HTTP {status} for {method_name} {url}{detail}"),
                });
            }
            if (status == 429 || status >= 500) && attempt < options.attempts {
                std::thread::sleep(retry_in);
                continue;
            }
            return Ok(resp);
        }
    }

    fn auth_header(&self, scope: &str) -> Option<Zeroizing<String>> {
        let map = self.auth.lock().ok()?;
        map.get(scope).or_else(|| map.get("")).cloned()
    }

    /// Answers a `WWW-Authenticate` challenge for `scope` and remembers the header.
    fn authenticate(&self, challenge: Option<Challenge>, scope: &str) -> Result<(), RegistryError> {
        let login = self.options.credentials.get(&self.name);
        let fail = |reason: &str| RegistryError::Auth {
            registry: self.name.clone(),
            reason: reason.to_string(),
        };
        let (key, value) = match challenge {
            Some(Challenge::Basic) => {
                let login = login.ok_or_else(|| {
                    fail("the registry wants a user name and password and none is configured")
                })?;
                (String::new(), login.basic_header())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let mut url = realm.clone();
                let mut sep = if realm.contains('?') { '&' } else { '?' };
                for (k, v) in service
                    .iter()
                    .map(|s| ("service", s.as_str()))
                    .chain(scope.split(' ').filter(|s| !s.is_empty()).map(|s| ("scope", s)))
                {
                    url.push_str(&format!("{sep}{k}={}", percent_encode(v)));
                    sep = '&';
                }
                let basic = login.map(|l| l.basic_header());
                let mut builder = http::Request::builder().method(Method::GET).uri(&url);
                if let Some(b) = &basic {
                    builder = builder.header("authorization", b.as_str());
                }
                let req = builder.body(SendBody::none()).map_err(|e| {
                    RegistryError::invalid(format!("token realm {realm}"), e.to_string())
                })?;
                let mut resp = self.agent.run(req).map_err(|e| RegistryError::Transport {
                    method: "GET",
                    url: realm.clone(),
                    reason: describe(&e, 1),
                })?;
                if !resp.status().is_success() {
                    return Err(fail(&format!(
                        "the token service {realm} answered HTTP {}",
                        resp.status().as_u16()
                    )));
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let bytes = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| fail(&format!("reading the token from {realm}: {e}")))?;
                let t: Token = serde_json::from_slice(&bytes)
                    .map_err(|_| fail(&format!("the token service {realm} sent no JSON token")))?;
                let token = Zeroizing::new(
                    t.token
                        .or(t.access_token)
                        .ok_or_else(|| fail("the token service sent no token"))?,
                );
                (scope.to_string(), Zeroizing::new(format!("Bearer {}", token.as_str())))
            }
            None => return Err(fail("HTTP 401 without a usable WWW-Authenticate challenge")),
        };
        if let Ok(mut map) = self.auth.lock() {
            map.insert(key, value);
        }
        Ok(())
    }
}

fn agent(options: &Options) -> Result<Agent, RegistryError> {
    let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(path) = &options.ca_file {
        let bytes = std::fs::read(path).map_err(RegistryError::io("read CA file", path))?;
        let before = roots.len();
        for item in ureq::tls::parse_pem(&bytes) {
            match item {
                Ok(PemItem::Certificate(c)) => roots.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(RegistryError::Config {
                        what: format!("CA file {}", path.display()),
                        reason: e.to_string(),
                    });
                }
            }
        }
        if roots.len() == before {
            return Err(RegistryError::Config {
                what: format!("CA file {}", path.display()),
                reason: "it holds no PEM certificate".into(),
            });
        }
    }
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::new_with_certs(&roots))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    Ok(Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(options.timeout))
        .timeout_recv_response(Some(options.timeout))
        .timeout_per_read(Some(options.timeout))
        .build()
        .new_agent())
}

/// Loopback addresses and hosts named insecure may fall back to plain HTTP.
pub(crate) fn plain_http_allowed(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|h| h.eq_ignore_ascii_case(registry)) {
        return true;
    }
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn retryable(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

fn describe(e: &ureq::Error, attempts: u32) -> String {
    let what = match e {
        ureq::Error::Timeout(_) => "the registry stalled (timed out)".to_string(),
        e => e.to_string(),
    };
    if attempts > 1 { format!("{what} (after {attempts} attempts)") } else { what }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// The registry's own error message (`errors[0]`), if it sent one, as `: CODE message`.
pub(crate) fn error_detail(mut resp: Response<Body>) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let bytes = resp.body_mut().with_config().limit(64 * 1024).read_to_vec().unwrap_or_default();
    match serde_json::from_slice::<Errors>(&bytes) {
        Ok(e) => e
            .errors
            .first()
            .map(|e| format!(": {} {}", e.code, e.message).trim_end().to_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A [`RegistryError::Status`] for an unexpected response.
pub(crate) fn status_error(method: &'static str, url: &str, resp: Response<Body>) -> RegistryError {
    let status = resp.status().as_u16();
    let mut detail = error_detail(resp);
    if status == 429 || status >= 500 {
        detail.push_str(" (retries exhausted)");
    }
    RegistryError::Status { method, url: url.to_string(), status, detail }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response header as text.
pub(crate) fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        assert!(plain_http_allowed("127.0.0.1:5000", &[]));
        assert!(plain_http_allowed("localhost:5000", &[]));
        assert!(plain_http_allowed("[::1]:5000", &[]));
        assert!(!plain_http_allowed("registry.example:5000", &[]));
        assert!(plain_http_allowed("registry.example:5000", &["registry.example:5000".into()]));
        assert!(!plain_http_allowed("docker.io", &[]));
    }

    #[test]
    fn encodes_scopes() {
        assert_eq!(percent_encode("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
    }
}
