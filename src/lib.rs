//! cairn composes Linux OS images from components pinned by sha256 digest and produces
//! the same bytes on any machine.
//!
//! The pipeline runs one way, one module per stage:
//! [`spec`] (YAML) → [`lock`] (digests) → [`store`] (content-addressed blobs) →
//! [`assemble`] (a [`tree::Tree`]) → [`emit`] (tar, kernel+initrd, OCI layout) →
//! [`attest`] (SBOMs, provenance) → [`sign`]; [`build::build`] runs them for one spec and
//! [`verify`] checks the result. The [`cli`] module only converts arguments into a library
//! call and prints the result; nothing else imports it.
#![forbid(unsafe_code)]

pub mod assemble;
pub mod atomic;
pub mod attest;
pub mod build;
pub mod canonical_json;
pub mod cli;
pub mod diag;
pub mod digest;
pub mod emit;
pub mod init;
pub mod lock;
pub mod oci;
pub mod output_name;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod run;
pub mod sign;
pub mod sigstore;
pub mod source_date;
pub mod spec;
pub mod store;
#[doc(hidden)]
pub mod testkit;
pub mod tree;
pub mod verify;
pub mod yaml_diag;
