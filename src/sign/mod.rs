//! Signing: keys, DSSE envelopes and Sigstore bundles.
//!
//! This module owns everything between a finished statement (bytes) and its signed forms:
//! - [`keys`]: Ed25519 and ECDSA P-256 keys, PEM files, key ids, raw signatures;
//! - [`dsse`]: DSSE v1 envelopes (`<name>.intoto.jsonl`, one envelope per line);
//! - [`bundle`]: Sigstore bundle v0.3 JSON around those envelopes (`<name>.sigstore.json`).
//!
//! Everything here is deterministic: the same key and payload give the same bytes, so signed
//! outputs are as reproducible as the image. Nothing here prints, reads the environment or
//! touches the network; the CLI passes passphrases in (from `CAIRN_KEY_PASSPHRASE`).

pub mod attestations;
pub mod authenticode;
pub mod bundle;
pub mod dsse;
pub mod keys;

#[cfg(test)]
mod external_tests;
