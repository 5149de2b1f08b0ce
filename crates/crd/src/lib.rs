//! CustomResourceDefinitions as pure functions: what the API server calls
//! to serve `apiextensions.k8s.io/v1` CRDs and the custom objects they
//! define. No I/O; every function works on `serde_json::Value`s as they
//! arrive in requests and never panics on malformed or hostile input.
//!
//! Where to start reading:
//! * [`schema`] — the compiled [`Structural`] schema: `validate`,
//!   `default`, `prune` for custom objects.
//! * [`definition`] — [`validate_definition`]: is this CRD acceptable
//!   (names, versions, structural schemas, subresources, columns)?
//! * [`naming`] — [`accepted_names`] / [`crd_status`]: the `NamesAccepted`
//!   and `Established` conditions the naming controller would set.
//! * [`versions`] — lookups the server needs per version (storage version,
//!   schema, printer columns, scale paths).
//! * [`jsonpath`] — the small JSONPath evaluator printer columns use.

pub mod schema;

pub use schema::{SchemaError, Structural};
