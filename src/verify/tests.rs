use super::*;

#[test]
fn source_prefixes_match_at_boundaries() {
    assert!(source_matches("docker.io/linuxkit", "docker.io/linuxkit/init:v1"));
    assert!(source_matches("docker.io/linuxkit/", "docker.io/linuxkit/init:v1"));
    assert!(source_matches("docker.io/library/alpine", "docker.io/library/alpine:3.20"));
    assert!(source_matches("docker.io/library/alpine", "docker.io/library/alpine"));
    assert!(!source_matches("docker.io/linuxkit", "docker.io/linuxkit-evil/init:v1"));
    assert!(!source_matches("docker.io/library/alpine", "docker.io/library/alpine2:1"));
    assert!(!source_matches("ghcr.io/", "docker.io/ghcr.io/x"));
}

// ---- what verify reads: unknown fields (SECURITY.md) ---------------------------------

use serde_json::Value;

use super::checks::os_packages;
use super::statements::check_envelope;
use crate::attest::{provenance, sbom, sbom_statement, to_json_line};
use crate::sign::dsse::{self, IN_TOTO_PAYLOAD_TYPE};
use crate::sign::keys::{Algorithm, SigningKey};

/// A statement of the attest fixture as JSON, to be edited.
fn fixture_statement(sbom_not_provenance: bool) -> Value {
    let facts = crate::attest::tests::fixture();
    let st = if sbom_not_provenance {
        serde_json::to_value(sbom_statement(&facts, &sbom::spdx::document(&facts)))
    } else {
        serde_json::to_value(provenance::provenance_statement(&facts))
    };
    st.unwrap()
}

/// Signs `statement` and runs [`check_envelope`] on it: the accepted statement and the report.
fn check(statement: &Value) -> (Option<SignedStatement>, Report) {
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let trusted = [TrustedKey {
        name: "k".into(),
        id: key.public_key().key_id(),
        key: key.public_key().clone(),
        unusable: None,
    }];
    let env = dsse::sign(IN_TOTO_PAYLOAD_TYPE, &to_json_line(statement), &key).unwrap();
    let mut r = Report::default();
    let s = check_envelope("t#1", &env, &trusted, &mut r);
    (s, r)
}

fn failure(statement: &Value) -> String {
    let (s, r) = check(statement);
    assert!(s.is_none());
    r.first_failure().unwrap()
}

#[test]
fn unknown_fields_in_statement_subjects_and_predicates_are_ignored() {
    let mut p = fixture_statement(false);
    p["x-extension"] = "yes".into();
    p["subject"][0]["annotations"] = serde_json::json!({"k": "v"});
    p["subject"][0]["x-extension"] = 1.into();
    p["predicate"]["x-extension"] = true.into();
    p["predicate"]["buildDefinition"]["resolvedDependencies"][0]["x-extension"] = 1.into();
    p["predicate"]["runDetails"]["metadata"] = serde_json::json!({"invocationId": "i"});
    let (s, r) = check(&p);
    assert!(!r.has_failures(), "{r:?}");
    let s = s.unwrap();
    let prov = s.provenance().unwrap();
    assert_eq!(prov.image_name(), Some("hello"));
    assert_eq!(components_of(prov).len(), crate::attest::tests::fixture().components.len());
    // The unsigned copy must still equal the statement with every field.
    assert_eq!(s.json, p);

    let mut b = fixture_statement(true);
    b["predicate"]["files"] = serde_json::json!([{"fileName": "./x"}]);
    b["predicate"]["packages"][0]["x-extension"] = 1.into();
    let (s, r) = check(&b);
    assert!(!r.has_failures(), "{r:?}");
    let pkgs = os_packages(s.unwrap().sbom().unwrap());
    assert!(pkgs.iter().any(|(n, v)| n == "hello" && v.as_deref() == Some("2.10-3")), "{pkgs:?}");
}

#[test]
fn required_fields_and_subject_digests_are_enforced() {
    let mut p = fixture_statement(false);
    p["predicate"]["runDetails"]["builder"].as_object_mut().unwrap().remove("id");
    let why = failure(&p);
    assert!(why.starts_with("statement: t#1: the predicate is not a SLSA Provenance v1"), "{why}");

    let mut b = fixture_statement(true);
    b["predicate"].as_object_mut().unwrap().remove("spdxVersion");
    let why = failure(&b);
    assert!(why.starts_with("statement: t#1: the predicate is not an SPDX 2.3 document"), "{why}");

    let mut p = fixture_statement(false);
    p["subject"][0]["digest"]["sha512"] = "00".into();
    assert!(failure(&p).ends_with("has digest algorithms other than sha256"));
    let mut p = fixture_statement(false);
    p["subject"][0].as_object_mut().unwrap().remove("name");
    assert_eq!(failure(&p), "subjects: t#1: a subject has no name");
    let mut p = fixture_statement(false);
    p["subject"][1]["name"] = p["subject"][0]["name"].clone();
    assert!(failure(&p).starts_with("subjects: t#1: duplicate subject"));
}
