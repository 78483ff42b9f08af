//! Package URLs (<https://github.com/package-url/purl-spec>) for the packages and images an
//! SBOM lists.
//!
//! Encoding: name and version are percent-encoded except for the unreserved characters
//! `A-Z a-z 0-9 . - _ ~` (so `1:2.3` becomes `1%3A2.3` and `+` becomes `%2B`); qualifier
//! values additionally keep `/` (the purl spec's own `repository_url=docker.io/library/debian`
//! example); qualifiers are sorted by key and empty ones are left out.
//!
//! Why not the `packageurl` crate: it leaves `:` unencoded in versions (`1:2.3`,
//! `sha256:…`) where the purl spec's own examples write `%3A`
//! (`pkg:oci/debian@sha256%3A244fd47e07d10`), so switching would change every SBOM and
//! provenance document cairn writes (and their golden digests).

use crate::digest::Digest;
use crate::reference::ImageRef;

use super::os_release::OsRelease;
use super::packages::{OsPackage, PackageKind};

/// Percent-encodes a purl name, namespace segment or version.
pub fn encode(s: &str) -> String {
    encode_keeping(s, b"")
}

/// Percent-encodes a path for a URI, keeping its `/` separators.
pub fn encode_path(s: &str) -> String {
    encode_keeping(s, b"/")
}

fn encode_keeping(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn build(ty: &str, namespace: &str, name: &str, version: &str, quals: &[(&str, &str)]) -> String {
    let mut out = format!("pkg:{ty}/");
    for seg in namespace.split('/').filter(|s| !s.is_empty()) {
        out.push_str(&encode(seg));
        out.push('/');
    }
    out.push_str(&encode(name));
    if !version.is_empty() {
        out.push('@');
        out.push_str(&encode(version));
    }
    let mut quals: Vec<&(&str, &str)> = quals.iter().filter(|(_, v)| !v.is_empty()).collect();
    quals.sort();
    for (i, (k, v)) in quals.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode_keeping(v, b"/"));
    }
    out
}

/// The purl of an OS package, qualified by the distribution from os-release when known:
/// `pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12`,
/// `pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3`.
pub fn os_package(pkg: &OsPackage, os: Option<&OsRelease>) -> String {
    let (ty, default_ns) = match pkg.kind {
        PackageKind::Deb => ("deb", "debian"),
        PackageKind::Apk => ("apk", "alpine"),
    };
    let namespace = os.map_or(default_ns, |o| o.id.as_str());
    let distro = match os {
        Some(o) => match &o.version_id {
            Some(v) => format!("{}-{v}", o.id),
            None => o.id.clone(),
        },
        None => String::new(),
    };
    build(
        ty,
        &namespace.to_ascii_lowercase(),
        &pkg.name.to_ascii_lowercase(),
        &pkg.version,
        &[("arch", &pkg.arch), ("distro", &distro)],
    )
}

/// The purl of a component image: `pkg:oci/<last path segment>@sha256%3A<hex>?repository_url=
/// <registry>/<repository>&tag=<tag>`. `reference` is the normalized reference without digest.
pub fn oci(reference: &str, digest: &Digest) -> String {
    let version = digest.to_string();
    match ImageRef::parse(reference) {
        Ok(r) => {
            let name = r.repository().rsplit('/').next().unwrap_or(r.repository());
            let repo_url = r.name();
            build(
                "oci",
                "",
                &name.to_ascii_lowercase(),
                &version,
                &[("repository_url", &repo_url), ("tag", r.tag().unwrap_or(""))],
            )
        }
        // Not a reference cairn could have locked; still name the digest.
        Err(_) => build("oci", "", "unknown", &version, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kind: PackageKind, name: &str, version: &str, arch: &str) -> OsPackage {
        OsPackage {
            kind,
            name: name.to_string(),
            version: version.to_string(),
            arch: arch.to_string(),
            ..OsPackage::default()
        }
    }

    #[test]
    fn encoding_known_answers() {
        for (raw, encoded) in [
            ("1:2.3", "1%3A2.3"),
            ("5.2.15-2+b7", "5.2.15-2%2Bb7"),
            ("a b/c@d?e#f%", "a%20b%2Fc%40d%3Fe%23f%25"),
            ("ok.-_~AZaz09", "ok.-_~AZaz09"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(encode(raw), encoded, "{raw:?}");
        }
    }

    fn os(id: &str, version_id: Option<&str>) -> OsRelease {
        OsRelease { id: id.into(), version_id: version_id.map(Into::into), ..OsRelease::default() }
    }

    #[test]
    fn os_package_purls() {
        use PackageKind::{Apk, Deb};
        let debian = os("debian", Some("12"));
        let ubuntu = os("ubuntu", None);
        let alpine = os("alpine", Some("3.20.3"));
        let cases = [
            (
                (Deb, "libc6", "2.36-9+deb12u7", "amd64", Some(&debian)),
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12",
            ),
            ((Deb, "hello", "1:2.10-3", "all", None), "pkg:deb/debian/hello@1%3A2.10-3?arch=all"),
            ((Deb, "Foo", "1", "", Some(&ubuntu)), "pkg:deb/ubuntu/foo@1?distro=ubuntu"),
            (
                (Apk, "musl", "1.2.5-r0", "x86_64", Some(&alpine)),
                "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3",
            ),
            ((Apk, "musl", "1.2.5-r0", "x86_64", None), "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64"),
        ];
        for ((kind, name, version, arch, os), want) in cases {
            assert_eq!(os_package(&pkg(kind, name, version, arch), os), want);
        }
    }

    #[test]
    fn oci_purls() {
        let d = Digest::of(b"x");
        assert_eq!(
            oci("docker.io/library/alpine:3.20", &d),
            format!(
                "pkg:oci/alpine@sha256%3A{}?repository_url=docker.io/library/alpine&tag=3.20",
                d.hex()
            )
        );
        assert_eq!(
            oci("localhost:5000/team/app:v1", &d),
            format!(
                "pkg:oci/app@sha256%3A{}?repository_url=localhost%3A5000/team/app&tag=v1",
                d.hex()
            )
        );
        assert_eq!(oci("", &d), format!("pkg:oci/unknown@sha256%3A{}", d.hex()));
    }
}
