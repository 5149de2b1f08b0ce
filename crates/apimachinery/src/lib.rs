//! Kubernetes API machinery for skiff, as pure functions on JSON objects:
//! label and field selectors, name/label validation, per-kind defaulting and
//! validation with field-path errors. No I/O; the API server calls in.
//!
//! Everything works on `serde_json::Value` objects exactly as they arrive in
//! requests, and never panics on malformed input: wrong JSON types become
//! field errors. Messages and reasons follow upstream Kubernetes so real
//! clients see familiar text.
//!
//! Where to start reading:
//! * [`field_error`] — the error type every validator returns, and the 422
//!   message builder.
//! * [`selectors`] — `labelSelector=` / `fieldSelector=` parsing and matching.
//! * [`names`] — DNS names, qualified names, label values (upstream messages).
//! * [`defaults`] — upstream defaulting per kind (`defaults::apply`).
//! * [`shape`] — what strategic merge and server-side apply know about
//!   each field (list types, merge keys), compiled from the schemas.
//! * [`validation`] — create/update validation per kind
//!   (`validation::validate_create`, `validation::validate_update`).
//!
//! How the API server uses it on a create (updates are the same with
//! `validate_update(group, kind, &new, &old)`):
//!
//! ```
//! use serde_json::json;
//! use skiff_apimachinery::{defaults, invalid_message, validation};
//!
//! let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
//!     "metadata": {"name": "web", "namespace": "default"},
//!     "spec": {"containers": [{"name": "web"}]}});
//! defaults::apply("", "Pod", &mut pod);
//! let errs = validation::validate_create("", "Pod", &pod);
//! // non-empty: answer 422 Invalid with this message and one
//! // `FieldError::cause()` per error in `details.causes`
//! assert_eq!(
//!     invalid_message("", "Pod", "web", &errs),
//!     "Pod \"web\" is invalid: spec.containers[0].image: Required value"
//! );
//! ```

pub mod defaults;
pub mod field_error;
mod go_quote;
pub mod names;
pub mod path;
pub mod quantity;
pub mod selectors;
pub mod shape;
pub mod validation;

pub use field_error::{FieldError, FieldErrorKind, invalid_message};
pub use go_quote::go_quote;
pub use path::Path;
