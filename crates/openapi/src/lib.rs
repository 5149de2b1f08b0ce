//! OpenAPI documents of the API skiff serves, generated from the types.
//!
//! kubectl downloads these before `create -f` / `apply -f`: 1.29 and newer
//! read the OpenAPI v3 index (`/openapi/v3`) and one JSON document per
//! group-version; 1.27 and 1.28 read OpenAPI v2 as protobuf. From them
//! kubectl learns the schemas (for client-side validation), that the server
//! takes `fieldValidation` (then it leaves validation to the server), and
//! the strategic-merge keys `apply` needs.
//!
//! Because every write operation here lists `fieldValidation`, kubectl
//! (all versions) skips its own schema check for single objects and sends
//! `fieldValidation=Strict`: the API server must reject unknown fields
//! itself. kubectl still checks `kind: List` files on the client, with the
//! v2 schemas.
//!
//! [`OpenApi::field_problems`] (and [`OpenApi::unknown_fields`]) do that
//! check against the same schemas, precompiled at build time; see
//! `field_validation` for the three levels and upstream's messages.
//!
//! Start reading at [`builtin`] (which resources) and [`OpenApiBuilder`]
//! (how documents are put together). Schemas come from k8s-openapi's
//! `schemars` implementations; `extensions` adds upstream's
//! `x-kubernetes-*` metadata that those lack; `operations` describes the
//! REST paths once, and `v2` / `v3` render them; `v2_proto` turns the
//! v2 document into the [`gnostic`] protobuf messages.
//!
//! ```no_run
//! let api = skiff_openapi::builtin().build()?;
//! let index: &[u8] = api.v3_index(); // GET /openapi/v3
//! let core = api.v3_document("api/v1"); // GET /openapi/v3/api/v1
//! let pb: &[u8] = api.v2_protobuf(); // GET /openapi/v2 (protobuf)
//! # Ok::<(), skiff_openapi::Error>(())
//! ```

mod builder;
mod builtin;
mod definitions;
mod error;
mod extensions;
mod field_scan;
mod field_validation;
pub mod gnostic;
mod hash;
mod operations;
mod resource;
mod schema_tree;
mod shapes;
mod v2;
mod v2_proto;
mod v3;

pub use builder::{OpenApi, OpenApiBuilder, Scope, V2_PROTOBUF_ACCEPT, V2_PROTOBUF_CONTENT_TYPE};
pub use builtin::builtin;
pub use error::Error;
pub use field_validation::{
    FieldProblem, FieldValidation, InvalidFieldValidation, duplicate_fields, strict_error_message,
    strict_message, warning_header_values,
};
pub use resource::{ResourceSpec, Subresource};
