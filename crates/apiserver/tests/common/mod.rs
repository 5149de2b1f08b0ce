//! An API server in this process (`skiff_apiserver::testing`).
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub use skiff_apiserver::testing::{Running, start};
