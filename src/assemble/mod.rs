//! Assembly: the locked spec's components placed into one filesystem [`Tree`].
pub mod layer;
