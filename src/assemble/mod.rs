//! TODO
pub mod bundle;
