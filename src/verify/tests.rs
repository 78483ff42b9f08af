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
