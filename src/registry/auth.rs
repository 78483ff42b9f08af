//! Registry credentials and `WWW-Authenticate` challenges.
//!
//! Credentials come from, in order of precedence:
//! 1. `$CAIRN_REGISTRY_AUTH`: `HOST=USER:PASSWORD` entries separated by commas or newlines
//!    (for CI secrets; the password may contain `:` and `=` but not `,` or a newline);
//! 2. the Docker `config.json` the user already has: `$DOCKER_CONFIG/config.json`, else
//!    `~/.docker/config.json`, its `auths` entries with an `auth` field (base64 `user:password`).
//!    Credential helpers (`credsStore`, `credHelpers`) are not run.
//!
//! A password is held in a [`Login`] whose `Debug` hides it, and no error message, log line or
//! attestation is ever built from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use zeroize::Zeroizing;

use super::RegistryError;

/// The environment variable holding CI credentials.
pub const AUTH_ENV: &str = "CAIRN_REGISTRY_AUTH";

/// A user name and password for one registry.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({:?}, <password hidden>)", self.user)
    }
}

impl Login {
    /// The value of an `Authorization: Basic` header.
    pub(crate) fn basic_header(&self) -> Zeroizing<String> {
        let raw = Zeroizing::new(format!("{}:{}", self.user, self.password.as_str()));
        Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
        ))
    }
}

/// Credentials by registry host (`docker.io` for Docker Hub).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    by_host: BTreeMap<String, Login>,
}

impl Credentials {
    /// No credentials: anonymous access only.
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Reads `$CAIRN_REGISTRY_AUTH` and the Docker config (see the module docs).
    pub fn from_environment() -> Result<Credentials, RegistryError> {
        let mut creds = Credentials::default();
        let config = match std::env::var_os("DOCKER_CONFIG") {
            Some(d) if !d.is_empty() => Some(PathBuf::from(d).join("config.json")),
            _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
        };
        if let Some(path) = config {
            match std::fs::read(&path) {
                Ok(bytes) => creds.add_docker_config(&path, &bytes)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RegistryError::io("read", &path)(e)),
            }
        }
        match std::env::var(AUTH_ENV) {
            Ok(v) => creds.add_env(&v)?,
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(RegistryError::Config {
                    what: format!("${AUTH_ENV}"),
                    reason: "it is not valid UTF-8".into(),
                });
            }
        }
        Ok(creds)
    }

    /// Adds `HOST=USER:PASSWORD[,HOST=USER:PASSWORD…]`; later entries win.
    pub fn add_env(&mut self, value: &str) -> Result<(), RegistryError> {
        for (n, entry) in value.split([',', '\n']).map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            // The message names the entry's position and host only: never its secret.
            let bad = |host: &str| RegistryError::Config {
                what: format!("${AUTH_ENV} entry {}", n + 1),
                reason: format!(
                    "expected HOST=USER:PASSWORD (host {host:?}), entries separated by commas"
                ),
            };
            let (host, login) = entry.split_once('=').ok_or_else(|| bad(""))?;
            let (user, password) = login.split_once(':').ok_or_else(|| bad(host))?;
            if host.is_empty() || user.is_empty() {
                return Err(bad(host));
            }
            self.by_host.insert(
                normalize_host(host),
                Login { user: user.to_string(), password: Zeroizing::new(password.to_string()) },
            );
        }
        Ok(())
    }

    /// Adds the `auths` entries of a Docker `config.json`.
    pub fn add_docker_config(&mut self, path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(default)]
            auths: BTreeMap<String, Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            auth: Option<String>,
        }
        let bad = |reason: String| RegistryError::Config {
            what: format!("Docker config {}", path.display()),
            reason,
        };
        // serde_json's error names a position, never the content.
        let config: Config =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        for (host, entry) in config.auths {
            let Some(auth) = entry.auth.map(Zeroizing::new) else { continue };
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| bad(format!("the auth of {host:?} is not base64")))?,
            );
            let text = std::str::from_utf8(&decoded)
                .map_err(|_| bad(format!("the auth of {host:?} is not UTF-8")))?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| bad(format!("the auth of {host:?} is not user:password")))?;
            self.by_host.insert(
                normalize_host(&host),
                Login { user: user.to_string(), password: Zeroizing::new(password.to_string()) },
            );
        }
        Ok(())
    }

    /// The login for a registry host as a reference names it (`docker.io`, `host:port`).
    pub fn get(&self, registry: &str) -> Option<&Login> {
        self.by_host.get(&normalize_host(registry))
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `host:5000/` → `host:5000`.
fn normalize_host(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

impl Challenge {
    /// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `key="value", key=value` pairs; quoted values may contain commas and `\"`.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn reads_env_and_docker_config_without_showing_secrets() {
        let mut c = Credentials::none();
        c.add_env("127.0.0.1:5000=alice:s3cr=t:x, index.docker.io=bob:pw").unwrap();
        assert_eq!(c.get("127.0.0.1:5000").unwrap().password.as_str(), "s3cr=t:x");
        assert_eq!(c.get("docker.io").unwrap().user, "bob");
        assert!(!format!("{c:?}").contains("s3cr"));
        let err = Credentials::none().add_env("host=nopassword-s3cr").unwrap_err().to_string();
        assert!(!err.contains("s3cr"), "{err}");

        let auth = base64::engine::general_purpose::STANDARD.encode("carol:hunter2");
        let cfg = format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#);
        let mut d = Credentials::none();
        d.add_docker_config(Path::new("config.json"), cfg.as_bytes()).unwrap();
        let login = d.get("docker.io").unwrap();
        assert_eq!((login.user.as_str(), login.password.as_str()), ("carol", "hunter2"));
        assert!(login.basic_header().starts_with("Basic "));
        let bad = br#"{"auths":{"h":{"auth":"hunter2!!"}}}"#;
        let err = d.add_docker_config(Path::new("c"), bad).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
