//! Errors as clients see them: a `metav1.Status` with upstream's code,
//! reason, message and details.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};
use skiff_store::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The group/kind/name a Status is about (`details`).
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    pub group: &'a str,
    /// Plural resource, as upstream puts in `details.kind` for most errors.
    pub resource: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    /// `configmaps` or `deployments.apps`: how upstream names a resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({"name": self.name, "kind": self.resource});
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// The same error with another message (e.g. upstream's wording for a
    /// precondition or binding failure).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(s: &Subject<'_>) -> Self {
        ApiError {
            details: Some(s.details()),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", s.qualified(), s.name),
            )
        }
    }

    pub fn already_exists(s: &Subject<'_>) -> Self {
        ApiError {
            details: Some(s.details()),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", s.qualified(), s.name),
            )
        }
    }

    pub fn conflict(s: &Subject<'_>) -> Self {
        ApiError {
            details: Some(s.details()),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    s.qualified(),
                    s.name
                ),
            )
        }
    }

    /// 422 with one cause per field error.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        message: String,
        causes: Vec<Value>,
    ) -> Self {
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        ApiError {
            details: Some(details),
            ..Self::new(422, "Invalid", message)
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Maps a store failure for the object `s`.
    pub fn from_store(e: StoreError, s: &Subject<'_>) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(s),
            StoreError::AlreadyExists { .. } => Self::already_exists(s),
            StoreError::Conflict { .. } => Self::conflict(s),
            StoreError::Compacted { .. } => {
                Self::gone("The resourceVersion for the provided list is too old.")
            }
            StoreError::FutureRevision { .. } => Self::timeout("Too large resource version"),
            StoreError::ValueTooLarge { .. } => Self::too_large("etcdserver: request is too large"),
            other => Self::internal(other.to_string()),
        }
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_status().to_string();
        (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The Status a successful immediate delete answers with.
pub fn success_status(s: &Subject<'_>, uid: &str) -> Value {
    let mut details = s.details();
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
