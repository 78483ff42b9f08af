//! cairn composes Linux OS images from components pinned by sha256 digest and produces
//! the same bytes on any machine.
//!
//! The pipeline runs one way, one module per stage:
//! [`spec`] (YAML) → [`lock`] (digests) → [`store`] (content-addressed blobs) →
//! [`assemble`] (a [`tree::Tree`]) → [`emit`] (tar, kernel+initrd, OCI layout).
//! The [`cli`] module only converts arguments into stage inputs.
#![forbid(unsafe_code)]

pub mod assemble;
pub mod atomic;
pub mod attest;
pub mod cli;
pub mod digest;
pub mod emit;
pub mod init;
pub mod lock;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod run;
pub mod sign;
pub mod sigstore;
pub mod source_date;
pub mod spec;
pub mod store;
pub mod tree;
pub mod vboot;
pub mod verify;
pub mod yaml_diag;
