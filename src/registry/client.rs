//! The distribution API of one repository: manifests, blobs (verified downloads, monolithic
//! and chunked uploads, cross-repository mounts) and the referrers endpoint.

use std::io::{Read, Write};

use indicatif::ProgressBar;
use ureq::http::Method;

use super::transport::{Payload, Registry, header, percent_encode, status_error};
use super::{Desc, RegistryError};
use crate::digest::{Digest, Hasher};
use crate::oci::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST};
use crate::store::{MAX_JSON_BLOB, Store, StoreError};

/// The manifest media types cairn asks for.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A manifest or index as received, already checked against its digest.
#[derive(Clone, Debug)]
pub(crate) struct Manifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

impl Manifest {
    pub(crate) fn desc(&self) -> Desc {
        Desc::new(&self.media_type, self.digest, self.bytes.len() as u64)
    }

    pub(crate) fn is_index(&self) -> bool {
        self.media_type == MT_OCI_INDEX || self.media_type == MT_DOCKER_LIST
    }
}

/// One repository on one registry.
pub(crate) struct Repo<'r> {
    pub reg: &'r Registry,
    pub name: String,
    scope: String,
}

impl<'r> Repo<'r> {
    pub(crate) fn new(reg: &'r Registry, name: &str, push: bool) -> Repo<'r> {
        let actions = if push { "pull,push" } else { "pull" };
        Repo { reg, name: name.to_string(), scope: format!("repository:{name}:{actions}") }
    }

    fn url(&self, rest: &str) -> String {
        self.reg.url(&format!("/v2/{}/{rest}", self.name))
    }

    fn what(&self, what: impl std::fmt::Display) -> String {
        format!("{what} of {}/{}", self.reg.name, self.name)
    }

    fn verification(&self, what: impl std::fmt::Display, reason: String) -> RegistryError {
        RegistryError::Verification {
            registry: self.reg.name.clone(),
            what: self.what(what),
            reason,
        }
    }

    /// `GET /v2/<name>/<rest>` accepting `accept`; returns the URL and the response.
    fn get(
        &self,
        rest: &str,
        accept: &str,
    ) -> Result<(String, ureq::http::Response<ureq::Body>), RegistryError> {
        let url = self.url(rest);
        let resp =
            self.reg.send(Method::GET, &url, &[("accept", accept)], Payload::None, &self.scope)?;
        Ok((url, resp))
    }

    /// Fetches a manifest or index by tag or digest; `None` when the registry has none.
    /// By digest the content must hash to it; by tag, to the `Docker-Content-Digest` the
    /// registry announces (if it does).
    pub(crate) fn get_manifest(
        &self,
        reference: &str,
        expected: Option<&Desc>,
    ) -> Result<Option<Manifest>, RegistryError> {
        let (url, mut resp) = self.get(&format!("manifests/{reference}"), ACCEPT_MANIFESTS)?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(status_error("GET", &url, resp)),
        }
        let announced = header(&resp, "docker-content-digest").map(str::to_string);
        let content_type = header(&resp, "content-type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        let what = format!("manifest {reference}");
        let bytes = read_body(&mut resp, &url, MAX_JSON_BLOB)?;
        let digest = Digest::of(&bytes);
        let want = match expected {
            Some(d) => Some(d.digest),
            None => Digest::parse(reference).ok(),
        };
        if let Some(w) = want
            && w != digest
        {
            return Err(
                self.verification(&what, format!("expected {w}, the content hashes to {digest}"))
            );
        }
        if let Some(d) = expected
            && d.size != bytes.len() as u64
        {
            return Err(
                self.verification(&what, format!("expected {} bytes, got {}", d.size, bytes.len()))
            );
        }
        if let Some(a) = announced
            && a != digest.to_string()
        {
            return Err(self.verification(
                &what,
                format!("the registry announced {a}, the content hashes to {digest}"),
            ));
        }
        let sniffed = crate::oci::sniff_media_type(&bytes);
        let media_type = sniffed
            .or(content_type)
            .filter(|m| {
                [MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST]
                    .contains(&m.as_str())
            })
            .ok_or_else(|| {
                RegistryError::invalid(self.what(&what), "not an image manifest or index")
            })?;
        Ok(Some(Manifest { media_type, bytes, digest }))
    }

    /// Whether the registry has the manifest `reference` (`HEAD`).
    pub(crate) fn has_manifest(&self, reference: &str) -> Result<bool, RegistryError> {
        self.exists(&format!("manifests/{reference}"), Some(ACCEPT_MANIFESTS))
    }

    pub(crate) fn has_blob(&self, d: &Digest) -> Result<bool, RegistryError> {
        self.exists(&format!("blobs/{d}"), None)
    }

    fn exists(&self, rest: &str, accept: Option<&str>) -> Result<bool, RegistryError> {
        let url = self.url(rest);
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let resp = self.reg.send(Method::HEAD, &url, &headers, Payload::None, &self.scope)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error("HEAD", &url, resp)),
        }
    }

    /// Puts a manifest under a tag or its digest. Returns the `OCI-Subject` header, which a
    /// registry with the referrers API sends back for a manifest with a `subject`.
    pub(crate) fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Option<String>, RegistryError> {
        let url = self.url(&format!("manifests/{reference}"));
        let resp = self.reg.send(
            Method::PUT,
            &url,
            &[("content-type", media_type)],
            Payload::Bytes(bytes),
            &self.scope,
        )?;
        if resp.status().as_u16() != 201 && !resp.status().is_success() {
            return Err(status_error("PUT", &url, resp));
        }
        Ok(header(&resp, "oci-subject").map(str::to_string))
    }

    /// Downloads a blob into the store, verified. Nothing reaches the store unless the
    /// content has exactly `size` bytes hashing to `digest`. Bytes cut off by a broken
    /// connection are fetched again, a bounded number of times.
    pub(crate) fn pull_blob(
        &self,
        store: &Store,
        desc: &Desc,
        attempts: u32,
        bar: &ProgressBar,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("blobs/{}", desc.digest));
        let what = format!("blob {}", desc.digest);
        let mut attempt = 0;
        loop {
            attempt += 1;
            bar.set_position(0);
            let mut resp = self.reg.send(Method::GET, &url, &[], Payload::None, &self.scope)?;
            match resp.status().as_u16() {
                200 => {}
                404 => {
                    return Err(RegistryError::NotFound {
                        registry: self.reg.name.clone(),
                        what: self.what(&what),
                    });
                }
                _ => return Err(status_error("GET", &url, resp)),
            }
            let mut writer = store.blob_writer()?;
            // One byte more than announced is enough to know the registry sent too much.
            let mut reader = resp.body_mut().as_reader().take(desc.size.saturating_add(1));
            let mut buf = vec![0u8; 256 * 1024];
            let mut hasher = Hasher::new();
            let copied: Result<(), std::io::Error> = (|| loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                let chunk = buf.get(..n).unwrap_or_default();
                hasher.update(chunk);
                writer.write_all(chunk)?;
                bar.inc(n as u64);
            })();
            if let Err(e) = copied {
                if attempt < attempts {
                    continue;
                }
                return Err(RegistryError::Transport { method: "GET", url, reason: e.to_string() });
            }
            if hasher.len() != desc.size {
                return Err(self.verification(
                    &what,
                    format!(
                        "expected {} bytes, got {}{}",
                        desc.size,
                        hasher.len(),
                        if hasher.len() > desc.size { " or more" } else { "" }
                    ),
                ));
            }
            return match writer.finish(Some(&desc.digest), &what) {
                Ok(_) => Ok(()),
                Err(StoreError::Mismatch { expected, actual, .. }) => Err(self.verification(
                    &what,
                    format!("expected {expected}, the content hashes to {actual}"),
                )),
                Err(e) => Err(e.into()),
            };
        }
    }

    /// Downloads a small blob into memory, verified against `desc`.
    pub(crate) fn get_blob_bytes(&self, desc: &Desc, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let url = self.url(&format!("blobs/{}", desc.digest));
        let what = format!("blob {}", desc.digest);
        if desc.size > limit {
            return Err(RegistryError::invalid(
                self.what(&what),
                format!("larger than {limit} bytes"),
            ));
        }
        let mut resp = self.reg.send(Method::GET, &url, &[], Payload::None, &self.scope)?;
        if resp.status().as_u16() != 200 {
            return Err(status_error("GET", &url, resp));
        }
        let bytes = read_body(&mut resp, &url, desc.size.saturating_add(1))?;
        let actual = Digest::of(&bytes);
        if bytes.len() as u64 != desc.size || actual != desc.digest {
            return Err(self.verification(
                &what,
                format!(
                    "expected {} bytes hashing to {}, got {} bytes hashing to {actual}",
                    desc.size,
                    desc.digest,
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Uploads `data` as blob `desc` unless the repository has it. Tries a
    /// cross-repository mount from each of `mount_from` first. Files larger than `chunk`
    /// go up in `chunk`-sized `PATCH`es. Returns whether bytes were uploaded.
    pub(crate) fn push_blob(
        &self,
        data: Payload<'_>,
        desc: &Desc,
        chunk: u64,
        mount_from: &[String],
        bar: &ProgressBar,
    ) -> Result<bool, RegistryError> {
        if self.has_blob(&desc.digest)? {
            return Ok(false);
        }
        let start = self.url("blobs/uploads/");
        let mut location = None;
        for from in mount_from.iter().filter(|f| **f != self.name) {
            let url = format!("{start}?mount={}&from={}", desc.digest, percent_encode(from));
            let scope = format!("{} repository:{from}:pull", self.scope);
            let resp = self.reg.send(
                Method::POST,
                &url,
                &[("content-length", "0")],
                Payload::None,
                &scope,
            )?;
            match resp.status().as_u16() {
                201 => return Ok(false),
                202 => {
                    location = header(&resp, "location").map(str::to_string);
                    break;
                }
                _ => {}
            }
        }
        let mut location = match location {
            Some(l) => l,
            None => {
                let resp = self.reg.send(
                    Method::POST,
                    &start,
                    &[("content-length", "0")],
                    Payload::None,
                    &self.scope,
                )?;
                if resp.status().as_u16() != 202 {
                    return Err(status_error("POST", &start, resp));
                }
                header(&resp, "location").map(str::to_string).ok_or_else(|| {
                    RegistryError::invalid(self.what("upload session"), "no Location header")
                })?
            }
        };
        let with_digest = |loc: &str| {
            let sep = if loc.contains('?') { '&' } else { '?' };
            self.reg.url(&format!("{loc}{sep}digest={}", percent_encode(&desc.digest.to_string())))
        };
        let octets = ("content-type", "application/octet-stream");
        let resp = if let Payload::File(path) = data
            && desc.size > chunk
        {
            let mut file = std::fs::File::open(path).map_err(RegistryError::io("open", path))?;
            let mut offset = 0u64;
            let mut buf = Vec::new();
            while offset < desc.size {
                buf.clear();
                (&mut file)
                    .take(chunk)
                    .read_to_end(&mut buf)
                    .map_err(RegistryError::io("read", path))?;
                if buf.is_empty() {
                    return Err(RegistryError::invalid(
                        path.display().to_string(),
                        "shorter than its descriptor",
                    ));
                }
                let end = offset + buf.len() as u64 - 1;
                let range = format!("{offset}-{end}");
                let url = self.reg.url(&location);
                let resp = self.reg.send(
                    Method::PATCH,
                    &url,
                    &[octets, ("content-range", &range)],
                    Payload::Bytes(&buf),
                    &self.scope,
                )?;
                if resp.status().as_u16() != 202 {
                    return Err(status_error("PATCH", &url, resp));
                }
                location = header(&resp, "location").map(str::to_string).unwrap_or(location);
                offset = end + 1;
                bar.inc(buf.len() as u64);
            }
            let url = with_digest(&location);
            self.reg.send(
                Method::PUT,
                &url,
                &[("content-length", "0")],
                Payload::None,
                &self.scope,
            )?
        } else {
            let url = with_digest(&location);
            let resp = self.reg.send(Method::PUT, &url, &[octets], data, &self.scope)?;
            bar.inc(desc.size);
            resp
        };
        if !resp.status().is_success() {
            return Err(status_error("PUT", &self.url("blobs/uploads/…"), resp));
        }
        if let Some(a) = header(&resp, "docker-content-digest")
            && a != desc.digest.to_string()
        {
            return Err(self.verification(
                format!("upload of {}", desc.digest),
                format!("the registry stored {a}"),
            ));
        }
        Ok(true)
    }

    /// `GET /v2/<name>/referrers/<digest>`: the index of referrers, or `None` when the
    /// registry does not offer the API.
    pub(crate) fn referrers_api(&self, subject: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        let (url, mut resp) = self.get(&format!("referrers/{subject}"), MT_OCI_INDEX)?;
        let is_index = header(&resp, "content-type").is_some_and(|c| c.starts_with(MT_OCI_INDEX));
        match resp.status().as_u16() {
            200 if is_index => {}
            // Registries without the API answer 404 (or a page that is not an index).
            200 | 404 | 405 => return Ok(None),
            _ => return Err(status_error("GET", &url, resp)),
        }
        read_body(&mut resp, &url, MAX_JSON_BLOB).map(Some)
    }
}

/// The body of a response, at most `limit` bytes.
fn read_body(
    resp: &mut ureq::http::Response<ureq::Body>,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    resp.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| RegistryError::Transport {
        method: "GET",
        url: url.to_string(),
        reason: e.to_string(),
    })
}
