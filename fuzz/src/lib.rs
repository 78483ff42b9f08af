//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use cairn::sign::keys::PublicKey;

/// The public keys the checked-in seeds were signed with (throwaway keys; their private
/// halves were never kept). Signed seeds let the targets reach signature verification.
pub const ED25519_PUB: &str = include_str!("../keys/ed25519.pub");
pub const P256_PUB: &str = include_str!("../keys/p256.pub");

/// The trusted keys for DSSE and bundle verification.
pub fn trusted_keys() -> Vec<PublicKey> {
    [ED25519_PUB, P256_PUB]
        .iter()
        .map(|pem| PublicKey::from_spki_pem(pem).expect("checked-in fuzz key"))
        .collect()
}

/// Splits off the first byte, which targets with several entry points use to pick one.
pub fn selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}
