//! Errors of this crate. Malformed stored state (managedFields) is reported
//! with [`FieldsError`] / [`ManagedFieldsError`] so callers can reset it
//! instead of failing writes; bad apply requests with [`ApplyError`].

use thiserror::Error;

use crate::conflict::{Conflict, conflict_message};

/// A fieldsV1 document or one of its keys could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldsError {
    #[error("invalid path element {element:?}: {reason}")]
    PathElement { element: String, reason: String },
    #[error("fieldsV1 at {at:?} is not a JSON object")]
    NotAnObject { at: String },
    #[error("fieldsV1 is not valid JSON: {0}")]
    Json(String),
}

/// `metadata.managedFields` could not be decoded (upstream:
/// `DecodeManagedFields`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManagedFieldsError {
    #[error("managedFields must be a list")]
    NotAList,
    #[error("managed fields entry {index} is not an object")]
    NotAnObject { index: usize },
    #[error("managed fields entry {index}: field {field} must be a string")]
    NotAString { index: usize, field: &'static str },
    #[error("operation must be `Apply` or `Update`")]
    Operation { index: usize },
    #[error("apiVersion must not be empty")]
    ApiVersion { index: usize },
    #[error("missing fieldsType in managed fields entry {index}")]
    MissingFieldsType { index: usize },
    #[error("invalid fieldsType {value:?} in managed fields entry {index}")]
    FieldsType { index: usize, value: String },
    #[error("error decoding versioned set from entry {index}: {source}")]
    Fields { index: usize, source: FieldsError },
}

/// An object (apply configuration) does not fit its schema in a way that
/// prevents tracking its fields (upstream: a typed-conversion error).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {message}")]
pub struct InvalidObject {
    /// Human form of the path (`.spec.containers[0]`).
    pub path: String,
    pub message: String,
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ApplyError {
    /// Fields in the configuration are owned by other managers with other
    /// values; retry with `force` to take them. 409 Conflict.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration sets `metadata.managedFields`. 400 BadRequest.
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInConfig,
    /// The configuration is not a JSON object. 400 BadRequest.
    #[error("apply configuration must be a JSON object")]
    NotAnObject,
    /// The configuration does not fit its schema (missing list-map keys,
    /// duplicate items, maps in sets). 422/400 upstream.
    #[error("failed to create typed patch object: {0}")]
    Invalid(#[from] InvalidObject),
}
