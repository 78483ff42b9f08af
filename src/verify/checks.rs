//! The checks over verified statements: the artifacts against the subjects (and, in
//! directory mode, the directory against the subjects and the unsigned copies against the
//! signed statements), and the policy's rules on provenance, packages and signers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::statements::{SignedStatement, file_label, list_dir, read_attestation_file};
use super::{
    ATTESTATION_SUFFIXES, ArtifactDigest, Report, Request, Target, TrustedKey, VerifyError,
    subject_digest, upstream,
};
use crate::attest::intoto::ResourceDescriptor;
use crate::attest::sbom::spdx;
use crate::attest::slsa::Provenance;
use crate::digest::Digest;
use crate::policy::Policy;

/// Hashes the artifacts and compares them with the subjects; in directory mode also
/// checks that the directory holds exactly the subjects (plus attestation files) and that
/// unsigned copies of the statements equal the signed ones.
pub(super) fn check_artifacts(
    req: &Request,
    subjects: &[(String, Digest)],
    provenances: &[&SignedStatement],
    sboms: &[&SignedStatement],
    r: &mut Report,
) -> Result<Vec<(String, Digest)>, VerifyError> {
    let wanted: BTreeMap<&str, &Digest> = subjects.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let mut checked = Vec::new();
    let mut hash_one = |name: &str, path: &Path, r: &mut Report| {
        let Some(want) = wanted.get(name) else {
            r.fail("artifact", format!("{name} is not a subject of the signed statements"));
            return;
        };
        match subject_digest(path) {
            Err(e) => r.fail("artifact", format!("{name}: {e}")),
            Ok(have) => {
                r.artifacts.push(ArtifactDigest { name: name.to_owned(), sha256: have.hex() });
                if have == **want {
                    r.pass("artifact", format!("{name}: {have}"));
                    checked.push((name.to_owned(), have));
                } else {
                    r.fail(
                        "artifact",
                        format!("{name} is {have}, but the signed statement says {want}"),
                    );
                }
            }
        }
    };
    match &req.target {
        Target::Files(files) => {
            for f in files {
                let name = file_label(f);
                hash_one(&name, f, r);
            }
        }
        Target::Dir(dir) => {
            let build_name = provenances
                .first()
                .and_then(|p| p.provenance())
                .and_then(|p| p.image_name())
                .map(str::to_owned);
            let is_attestation = |n: &str| {
                n.ends_with(".intoto.jsonl")
                    || n.ends_with(".sigstore.json")
                    || match &build_name {
                        Some(b) => [".spdx.json", ".cdx.json", ".provenance.json"]
                            .iter()
                            .any(|s| n == format!("{b}{s}")),
                        None => ATTESTATION_SUFFIXES.iter().any(|s| n.ends_with(s)),
                    }
            };
            let names = list_dir(dir)?;
            let mut extra = Vec::new();
            for n in &names {
                if is_attestation(n) {
                    continue;
                }
                if wanted.contains_key(n.as_str()) {
                    hash_one(n, &dir.join(n), r);
                } else {
                    extra.push(n.clone());
                }
            }
            let mut missing = Vec::new();
            for (n, _) in subjects {
                if !names.contains(n) {
                    if req.policy.artifacts.optional.contains(n) {
                        r.pass("artifacts", format!("{n} is absent, which the policy allows"));
                    } else {
                        missing.push(n.clone());
                    }
                }
            }
            if !extra.is_empty() {
                r.fail(
                    "artifacts",
                    format!(
                        "unexpected file(s) in {}: {} (not subjects of the signed statements)",
                        dir.display(),
                        extra.join(", ")
                    ),
                );
            }
            if !missing.is_empty() {
                r.fail("artifacts", format!("missing subject(s): {}", missing.join(", ")));
            }
            if extra.is_empty() && missing.is_empty() {
                r.pass("artifacts", "the directory holds exactly the subjects");
            }
            for n in names.iter().filter(|n| is_attestation(n)) {
                check_unsigned_copy(dir, n, provenances, sboms, r);
            }
        }
    }
    Ok(checked)
}

/// `NAME.spdx.json` and `NAME.provenance.json` on disk must equal a signed statement's
/// content (they are unsigned copies a consumer may read instead of the envelopes).
fn check_unsigned_copy(
    dir: &Path,
    name: &str,
    provenances: &[&SignedStatement],
    sboms: &[&SignedStatement],
    r: &mut Report,
) {
    let (check, signed): (&str, Vec<&Value>) = if name.ends_with(".spdx.json") {
        ("sbom-file", sboms.iter().filter_map(|s| s.json.get("predicate")).collect())
    } else if name.ends_with(".provenance.json") {
        ("provenance-file", provenances.iter().map(|s| &s.json).collect())
    } else {
        return;
    };
    let parsed = read_attestation_file(&dir.join(name))
        .and_then(|b| Ok(serde_json::from_slice::<Value>(&b)?));
    match parsed {
        Err(e) => r.fail(check, format!("{name}: {e}")),
        Ok(v) if signed.contains(&&v) => {
            r.pass(check, format!("{name} equals the signed statement"))
        }
        Ok(_) if signed.is_empty() => r.fail(
            check,
            format!("{name} is present but no signed statement of its kind covers it"),
        ),
        Ok(_) => r.fail(check, format!("{name} differs from the signed statement")),
    }
}

fn dep_label(d: &ResourceDescriptor) -> String {
    d.name.clone().or_else(|| d.uri.clone()).unwrap_or_else(|| "(unnamed)".into())
}

/// The component images among the resolved dependencies: those with `role` and `reference`
/// annotations, a name and a sha256.
pub(super) fn components_of(p: &Provenance) -> Vec<upstream::UpstreamComponent> {
    p.build_definition
        .resolved_dependencies
        .iter()
        .filter_map(|d| {
            d.annotation("role")?;
            Some(upstream::UpstreamComponent {
                name: d.name.clone()?,
                reference: d.annotation("reference")?.to_owned(),
                digest: d.sha256()?,
            })
        })
        .collect()
}

/// Whether `reference` starts with `prefix` at a boundary (`/`, `:`, `@` or the end), so
/// that `docker.io/linuxkit` does not admit `docker.io/linuxkit-evil/x`.
pub fn source_matches(prefix: &str, reference: &str) -> bool {
    let Some(rest) = reference.strip_prefix(prefix) else { return false };
    rest.is_empty() || prefix.ends_with(['/', ':', '@']) || rest.starts_with(['/', ':', '@'])
}

/// Builder id, build type, pinned dependencies and component rules of one provenance.
pub(super) fn check_provenance(p: &SignedStatement, policy: &Policy, r: &mut Report) {
    let label = p.labels.join(", ");
    let Some(prov) = p.provenance() else { return };
    let builder = &prov.run_details.builder.id;
    let build_type = &prov.build_definition.build_type;
    for (check, value, allowed, what) in [
        ("builder", builder, &policy.builders, "builder id"),
        ("build-type", build_type, &policy.build_types, "build type"),
    ] {
        match allowed {
            Some(list) if !list.iter().any(|a| a == value) => r.fail(
                check,
                format!(
                    "{label}: {what} {value} is not allowed by the policy ({})",
                    list.join(", ")
                ),
            ),
            Some(_) => r.pass(check, format!("{what} {value} is allowed")),
            None => r.pass(check, format!("{what} {value} (any allowed)")),
        }
    }
    let deps = &prov.build_definition.resolved_dependencies;
    let mut unpinned = Vec::new();
    for (i, d) in deps.iter().enumerate() {
        if d.sha256().is_some() {
            if d.digest.as_ref().is_some_and(|m| m.len() != 1) {
                unpinned.push(format!("{} (digest algorithms other than sha256)", dep_label(d)));
            }
            continue;
        }
        if d.digest.as_ref().is_some_and(|m| m.contains_key("sha256")) {
            unpinned.push(format!("{} (malformed sha256)", dep_label(d)));
            continue;
        }
        // A Debian package an imported .deb brought is described by, and pinned through,
        // its component entry earlier in the list.
        let described = d.uri.as_deref().is_some_and(|u| u.starts_with("pkg:deb/"))
            && d.annotation("component").is_some_and(|c| {
                d.name.as_deref().is_some_and(|n| n.starts_with(&format!("{c}/deb/")))
                    && deps
                        .iter()
                        .take(i)
                        .any(|e| e.name.as_deref() == Some(c) && e.sha256().is_some())
            });
        if !described {
            unpinned.push(dep_label(d));
        }
    }
    if unpinned.is_empty() {
        r.pass(
            "dependencies",
            format!("{} resolved dependencies, all pinned by sha256", deps.len()),
        );
    } else {
        r.fail(
            "dependencies",
            format!("{label}: not pinned by a sha256 digest: {}", unpinned.join(", ")),
        );
    }
    let rules = &policy.components;
    let denied: Vec<String> = deps
        .iter()
        .filter_map(|d| d.sha256().filter(|g| rules.denied_digests.contains(g)).map(|g| (d, g)))
        .map(|(d, g)| format!("{} ({g})", dep_label(d)))
        .collect();
    if !rules.denied_digests.is_empty() {
        if denied.is_empty() {
            r.pass("denied-digests", "no denied digest among the dependencies");
        } else {
            r.fail("denied-digests", format!("{label}: denied digest: {}", denied.join(", ")));
        }
    }
    if let Some(sources) = &rules.allowed_sources {
        let mut bad = Vec::new();
        for c in components_of(prov) {
            let ok = sources.as_slice().iter().any(|s| source_matches(s, &c.reference))
                || rules.allowed_digests.contains(&c.digest);
            if !ok {
                bad.push(format!("{} from {}", c.name, c.reference));
            }
        }
        if bad.is_empty() {
            r.pass("component-sources", "every component comes from an allowed source");
        } else {
            r.fail(
                "component-sources",
                format!("{label}: component source not allowed by the policy: {}", bad.join(", ")),
            );
        }
    }
}

/// OS packages of an SPDX document: (name, version) of packages with a `pkg:deb`,
/// `pkg:apk` or `pkg:rpm` purl.
pub(super) fn os_packages(spdx: &spdx::Document) -> Vec<(String, Option<String>)> {
    spdx.packages
        .iter()
        .filter(|p| {
            p.purls().any(|l| ["pkg:deb/", "pkg:apk/", "pkg:rpm/"].iter().any(|t| l.starts_with(t)))
        })
        .map(|p| (p.name.clone(), p.version_info.clone()))
        .collect()
}

pub(super) fn check_packages(policy: &Policy, sboms: &[&SignedStatement], r: &mut Report) {
    let rules = &policy.packages.deny;
    if rules.is_empty() {
        return;
    }
    if sboms.is_empty() {
        r.fail("packages", "the policy denies packages, but no signed SBOM lists the packages");
        return;
    }
    let mut hits = Vec::new();
    let mut count = 0;
    for s in sboms {
        let pkgs = s.sbom().map(os_packages).unwrap_or_default();
        count += pkgs.len();
        for (name, version) in &pkgs {
            for rule in rules.iter().filter(|rule| &rule.name == name) {
                let parsed = version.as_deref().map(crate::policy::Version::parse);
                let hit = match parsed {
                    Some(Ok(v)) => rule.versions.contains(&v),
                    // A version that cannot be compared is denied unless every version is.
                    _ => true,
                };
                if hit {
                    hits.push(format!(
                        "{name} {} (denied: {})",
                        version.as_deref().unwrap_or("(no version)"),
                        rule.versions
                    ));
                }
            }
        }
    }
    hits.sort();
    hits.dedup();
    if hits.is_empty() {
        r.pass("packages", format!("{count} OS packages, none denied"));
    } else {
        r.fail("packages", format!("denied package present: {}", hits.join(", ")));
    }
}

pub(super) fn check_threshold(
    policy: &Policy,
    statements: &[&SignedStatement],
    trusted: &[TrustedKey],
    r: &mut Report,
) -> bool {
    let signed: BTreeSet<&String> = statements.iter().flat_map(|s| s.signers.iter()).collect();
    match &policy.require.signatures {
        None => {
            let names: Vec<&str> = trusted
                .iter()
                .filter(|k| signed.contains(&k.id))
                .map(|k| k.name.as_str())
                .collect();
            if names.is_empty() {
                r.fail(
                    "threshold",
                    "no usable trusted key signed the statements naming the artifacts",
                );
                return false;
            }
            r.pass("threshold", format!("signed by {} (1 required)", names.join(", ")));
            true
        }
        Some(rule) => {
            let mut have = Vec::new();
            let mut notes = Vec::new();
            for n in &rule.keys {
                let Some(k) = trusted.iter().find(|k| &k.name == n) else {
                    notes.push(format!("{n}: unknown key"));
                    continue;
                };
                if let Some(why) = &k.unusable {
                    notes.push(why.clone());
                } else if signed.contains(&k.id) {
                    have.push(n.as_str());
                } else {
                    notes.push(format!("{n}: no valid signature"));
                }
            }
            let detail = format!(
                "{} of {} required keys signed the provenance over these subjects (signed: {}{}{})",
                have.len(),
                rule.threshold,
                if have.is_empty() { "none".into() } else { have.join(", ") },
                if notes.is_empty() { "" } else { "; " },
                notes.join("; ")
            );
            if have.len() >= rule.threshold {
                r.pass("threshold", detail);
                true
            } else {
                r.fail("threshold", detail);
                false
            }
        }
    }
}
