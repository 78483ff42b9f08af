use super::*;

const DEFAULT: &str = include_str!("../../policies/default.yaml");
const PRODUCTION: &str = include_str!("../../policies/production.yaml");

fn err(yaml: &str) -> String {
    parse("p.yaml", yaml).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn shipped_policies_parse() {
    let d = parse("default.yaml", DEFAULT).unwrap();
    assert!(d.require.provenance && !d.require.sbom && d.require.signatures.is_none());
    let p = parse("production.yaml", PRODUCTION).unwrap();
    assert_eq!(p.keys.len(), 3);
    assert_eq!(p.require.signatures.as_ref().unwrap().threshold, 2);
    assert_eq!(p.packages.deny.len(), 3);
    assert!(p.keys[2].validity.revoked);
    // Its key files are not shipped: resolving names the missing one.
    let e = p.resolve("production.yaml", Path::new("/nonexistent")).unwrap_err().to_string();
    assert!(e.contains("key `release`") && e.contains("release.pub"), "{e}");
}

#[test]
fn unknown_fields_are_errors_with_position_and_hint() {
    let e = err("require:\n  provenance: true\n  sbomm: true\n");
    assert!(e.starts_with("p.yaml:3:3: "), "{e}");
    assert!(e.contains("did you mean `sbom`?"), "{e}");
    let e = err("buildTypes: [x]\nbuilder: [y]\n");
    assert!(e.contains("p.yaml:2:1") && e.contains("did you mean `builders`?"), "{e}");
    let e = err("keys:\n  - name: a\n    pem: x\n    notafter: 2026-01-01T00:00:00Z\n");
    assert!(e.contains("notafter") && e.contains("p.yaml:"), "{e}");
    assert!(
        err("upstream:\n  - reference: a/\n    publicKey: {pem: x}\n    extra: 1\n")
            .contains("unknown field `extra`")
    );
}

#[test]
fn bad_values_are_errors() {
    for (yaml, needle) in [
        ("builders: []\n", "would allow nothing"),
        ("packages:\n  deny:\n    - name: a\n      versions: '1.0'\n", "must start with"),
        ("components:\n  deniedDigests: [sha256:abc]\n", "64 lowercase hex"),
        ("keys:\n  - name: a\n", "needs `pem`"),
        ("keys:\n  - name: a\n    pem: x\n    path: y\n", "both `pem` and `path`"),
        ("keys:\n  - name: a\n    path: y\n    notBefore: 2026-01-01\n", "RFC 3339"),
        ("keys:\n  - name: a\n    path: y\n    notBefore: 2026-01-01T00:00:00+01:00\n", "UTC"),
        (
            "keys:\n  - name: a\n    path: y\n    notBefore: 2027-01-01T00:00:00Z\n    notAfter: 2026-01-01T00:00:00Z\n",
            "is not before",
        ),
        ("keys:\n  - name: a\n    path: y\n  - name: a\n    path: z\n", "used twice"),
        ("require:\n  signatures: {threshold: 1, keys: [nobody]}\n", "not in `keys`"),
        (
            "keys:\n  - {name: a, path: y}\nrequire:\n  signatures: {threshold: 2, keys: [a]}\n",
            "only 1 keys",
        ),
        (
            "keys:\n  - {name: a, path: y}\nrequire:\n  signatures: {threshold: 0, keys: [a]}\n",
            "at least 1",
        ),
        ("require:\n  provenance: maybe\n", "p.yaml:2:15"),
        ("upstream:\n  - reference: a/\n", "exactly one of `publicKey` and `keyless`"),
        ("keys: {}\n", "p.yaml:1:7"),
        ("- a\n", "p.yaml:1:1"),
    ] {
        let e = err(yaml);
        assert!(e.contains(needle), "{yaml:?}: {e}");
    }
}

#[test]
fn key_windows() {
    let pem = crate::sign::keys::SigningKey::generate(crate::sign::keys::Algorithm::Ed25519)
        .unwrap()
        .public_key()
        .to_spki_pem();
    let yaml = format!(
        "keys:\n  - name: k\n    notBefore: 2026-01-01T00:00:00Z\n    notAfter: 2027-01-01T00:00:00Z\n    pem: |\n{}",
        pem.lines().map(|l| format!("      {l}\n")).collect::<String>()
    );
    let p = parse("p.yaml", &yaml).unwrap().resolve("p.yaml", Path::new(".")).unwrap();
    let k = &p.keys[0];
    let t = |s| Timestamp::parse_utc(s).unwrap();
    assert!(k.unusable_at(t("2026-06-01T00:00:00Z")).is_none());
    assert!(k.unusable_at(t("2025-12-31T23:59:59Z")).unwrap().contains("not valid before"));
    assert!(k.unusable_at(t("2027-01-01T00:00:00Z")).unwrap().contains("expired"));
}

#[test]
fn internal_errors_say_they_are_bugs() {
    let e = PolicyError::Internal {
        source_name: "p.yaml".into(),
        what: "an upstream rule has no signer",
    };
    assert_eq!(
        e.to_string(),
        "p.yaml: internal error: an upstream rule has no signer; please report this as a bug"
    );
}

#[test]
fn value_errors_keep_their_position() {
    let e =
        parse("p.yaml", "require:\n  signatures:\n    threshold: 0\n    keys: []\n").unwrap_err();
    let PolicyError::Invalid(invalid) = &e else { panic!("{e:?}") };
    assert_eq!((invalid.line, invalid.column), (Some(2), Some(3)), "{e}");
    assert!(invalid.message.contains(&ValueError::ThresholdZero.to_string()), "{e}");
    let e = parse("p.yaml", &"#\n".repeat(MAX_POLICY_LEN)).unwrap_err();
    assert!(matches!(&e, PolicyError::TooLarge(t) if t.what == "policy"), "{e:?}");
}

/// An upstream key path naming an endless file is refused, not read until memory runs out.
#[test]
fn endless_key_files_are_refused() {
    let doc = parse("p.yaml", "upstream:\n  - reference: a/b\n    publicKey: {path: /dev/zero}\n")
        .unwrap();
    let e = doc.resolve("p.yaml", Path::new("/")).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

/// A keyless rule may leave out `trustedRoot`: verify then uses the refreshed or built-in
/// public-good root (see SECURITY.md, "Sigstore trusted roots").
#[test]
fn keyless_rules_default_to_the_public_good_root() {
    let yaml = "upstream:\n  - reference: a/\n    keyless: {certificateIdentity: i, certificateOidcIssuer: u}\n";
    let policy = parse("p.yaml", yaml).unwrap().resolve("p.yaml", Path::new("/")).unwrap();
    assert_eq!(policy.upstream.len(), 1);
    assert!(policy.upstream[0].trusted_root.is_none());
}
