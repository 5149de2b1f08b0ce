//! Structural schemas at run time: compiling a CRD version's
//! `openAPIV3Schema` once ([`Structural::from_schema`]) and then
//! validating, defaulting and pruning custom objects with it.
//!
//! The API server's order on a write is upstream's: prune (collecting the
//! unknown-field paths for `fieldValidation`), default, validate.

mod default;
mod format;
pub mod json;
mod pattern;
mod prune;
mod structural;
mod validate;

pub use pattern::Pattern;
pub use structural::{
    AdditionalProperties, MAX_SCHEMA_DEPTH, SchemaError, Structural, ValueValidation,
};
