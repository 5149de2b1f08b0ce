//! Errors of building the documents.

/// Why the documents could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A custom resource's schema is not a JSON object.
    #[error("schema of {kind} ({api_version}) must be a JSON object")]
    InvalidCustomSchema {
        /// The resource's `apiVersion`.
        api_version: String,
        /// The resource's kind.
        kind: String,
    },
    /// Two resources of the same group-version share a kind or plural.
    #[error("{api_version} {what} {name} is registered twice")]
    Duplicate {
        /// The resource's `apiVersion`.
        api_version: String,
        /// `"kind"` or `"resource"`.
        what: &'static str,
        /// The duplicated name.
        name: String,
    },
    /// Serializing a document failed (not expected for JSON values).
    #[error("serializing an OpenAPI document: {0}")]
    Serialize(#[from] serde_json::Error),
}
