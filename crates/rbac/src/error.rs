//! Errors from feeding malformed RBAC objects into a [`crate::Policy`].

/// Why an object could not be added to the policy. The API server validates
/// objects before storing them, so these indicate a bug or a corrupt store;
/// the caller should log and skip the object.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("unsupported RBAC kind {0:?}")]
    UnsupportedKind(String),
    #[error("{kind} has no metadata.name")]
    MissingName { kind: &'static str },
    #[error("{kind} {name:?} has no metadata.namespace")]
    MissingNamespace { kind: &'static str, name: String },
    #[error("malformed {kind} {name:?}: {source}")]
    Malformed {
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}
