//! CustomResourceDefinitions as pure functions: what the API server calls
//! to serve `apiextensions.k8s.io/v1` CRDs and the custom objects they
//! define. No I/O; every function works on `serde_json::Value`s as they
//! arrive in requests and never panics on malformed or hostile input
//! (schemas deeper than [`schema::MAX_SCHEMA_DEPTH`] are refused, and every
//! walk over objects follows the schema).
//!
//! Where to start reading:
//! * [`schema`] — the compiled [`Structural`] schema: `prune`, `default`,
//!   `validate` for custom objects (upstream's order on writes).
//! * [`definition`] — [`default_definition`] then [`validate_definition`]:
//!   is this CRD acceptable (names, versions, structural schemas,
//!   subresources, printer columns, immutable fields)?
//! * [`naming`] — [`accepted_names`] / [`crd_status`]: the `NamesAccepted`
//!   and `Established` conditions and `storedVersions`.
//! * [`versions`] — per-version lookups (storage version, schema, printer
//!   columns, scale paths, status subresource).
//! * [`jsonpath`] — the JSONPath subset printer columns use.
//!
//! Field errors are `skiff_apimachinery::FieldError`s with upstream's paths
//! and messages, ready for a 422 response.

pub mod definition;
pub mod jsonpath;
pub mod naming;
pub mod schema;
pub mod versions;

pub use definition::{default_definition, validate_definition};
pub use jsonpath::{JsonPath, JsonPathError};
pub use naming::{Condition, NamesOutcome, accepted_names, crd_status};
pub use schema::{SchemaError, Structural};
pub use versions::{
    PrinterColumn, ScalePaths, has_status_subresource, printer_columns, scale_paths, schema_for,
    served_versions, storage_version,
};
