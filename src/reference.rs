//! Image references as LinuxKit and Docker write them (`alpine`, `linuxkit/init:v1.0`,
//! `registry.example.com:5000/team/app:2@sha256:…`), normalized so that one image has one name.
//!
//! Normalization follows the Docker convention: no registry means `docker.io`, a single
//! path component on `docker.io` gets `library/`, and no tag and no digest means `latest`.

use std::fmt;

use crate::digest::{Digest, DigestError};

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("image reference {reference:?} {kind}")]
pub struct ReferenceError {
    /// The string as given.
    pub reference: String,
    #[source]
    pub kind: ReferenceErrorKind,
}

/// What is wrong with a [`ReferenceError`]'s string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceErrorKind {
    #[error("is empty")]
    Empty,
    /// The `registry/repository` path.
    #[error("has an invalid repository path {0:?} (lowercase letters, digits and . _ - / only)")]
    Path(String),
    #[error("has an invalid tag {0:?}")]
    Tag(String),
    #[error("has an invalid digest: {0}")]
    Digest(#[source] DigestError),
}

/// A normalized image reference: registry, repository, and a tag, a digest, or both.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        let error = |kind| ReferenceError { reference: input.to_string(), kind };
        let s = input.trim();
        if s.is_empty() {
            return Err(error(ReferenceErrorKind::Empty));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                (n, Some(Digest::parse(d).map_err(|e| error(ReferenceErrorKind::Digest(e)))?))
            }
            None => (s, None),
        };
        // A tag follows the last ':' only if no '/' comes after it (else it is a port).
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i..].contains('/') => {
                (&name_tag[..i], Some(name_tag[i + 1..].to_string()))
            }
            _ => (name_tag, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(error(ReferenceErrorKind::Tag(t.clone())));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let registry =
            if registry == "index.docker.io" { "docker.io".to_string() } else { registry };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let path_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    })
                    && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            });
        if !path_ok || registry.is_empty() {
            return Err(error(ReferenceErrorKind::Path(format!("{registry}/{repository}"))));
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        Ok(ImageRef { registry, repository, tag, digest })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the part a store tag and a purl are keyed on.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same reference without its digest: what a store tag records.
    pub fn without_digest(&self) -> ImageRef {
        ImageRef {
            tag: self.tag.clone().or_else(|| Some("latest".to_string())),
            digest: None,
            ..self.clone()
        }
    }

    /// The same reference pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef { digest: Some(digest), ..self.clone() }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("linuxkit/init:v1.0"), "docker.io/linuxkit/init:v1.0");
        assert_eq!(norm("index.docker.io/linuxkit/init:v1"), "docker.io/linuxkit/init:v1");
        assert_eq!(norm("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(norm("ghcr.io/x/y:1.2"), "ghcr.io/x/y:1.2");
        let d = Digest::of(b"x");
        assert_eq!(norm(&format!("alpine@{d}")), format!("docker.io/library/alpine@{d}"));
        assert_eq!(norm(&format!("alpine:3@{d}")), format!("docker.io/library/alpine:3@{d}"));
    }

    #[test]
    fn rejects_malformed() {
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("Alpine").is_err());
        assert!(ImageRef::parse("alpine:").is_err());
        assert!(ImageRef::parse("alpine@sha256:zz").is_err());
        assert!(ImageRef::parse("a//b").is_err());
    }
}
