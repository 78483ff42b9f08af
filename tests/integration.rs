//! Integration tests: each runs the real `cairn` binary on real files in its own directory.
//!
//! `util` holds the machinery; the other modules group tests by what they prove. Try not to
//! add more modules: put a new test in the module whose promise it checks.

mod util;

mod cache;
mod cli;
mod concurrency;
mod crash;
mod determinism;
mod golden;
mod hostile;
mod init;
mod qemu;
mod registry;
mod secure_boot;
mod signing;
mod sigstore;
mod vboot;
mod verify;
