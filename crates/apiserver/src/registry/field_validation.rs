//! `fieldValidation=Strict|Warn|Ignore`: unknown and duplicate fields in a
//! request body are an error, a warning header, or ignored (upstream's
//! default is Warn; kubectl sends Strict).

use axum::response::Response;
use http::HeaderValue;
use serde_json::Value;
use skiff_openapi::{FieldValidation, strict_error_message, warning_header_values};

use super::{Query, Registry, Target};
use crate::status::ApiError;

fn level(query: &Query) -> Result<FieldValidation, ApiError> {
    FieldValidation::from_query(query.get("fieldValidation").map(String::as_str))
        .map_err(|e| ApiError::bad_request(e.0))
}

impl Registry {
    /// Checks a JSON body; returns the warnings to send (Warn), or fails
    /// (Strict).
    pub(super) fn check_fields(
        &self,
        t: &Target<'_>,
        query: &Query,
        body: &[u8],
    ) -> Result<Vec<String>, ApiError> {
        let level = level(query)?;
        if level == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let problems =
            self.openapi
                .current()
                .field_problems(&t.r.group, &t.r.version, &t.r.kind, body);
        if problems.is_empty() {
            return Ok(Vec::new());
        }
        if level == FieldValidation::Strict {
            return Err(ApiError::bad_request(strict_error_message(
                &t.r.kind,
                &t.r.version,
                &problems,
            )));
        }
        Ok(warning_header_values(&problems))
    }

    /// Like [`Self::check_fields`] for a request body in any encoding
    /// (protobuf cannot carry unknown or duplicate fields).
    pub(super) fn check_body_fields(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Vec<String>, ApiError> {
        if super::body::is_protobuf(headers) {
            return Ok(Vec::new());
        }
        self.check_fields(t, query, body)
    }

    /// Strict checking of an object produced by a patch.
    pub(super) fn check_patched(
        &self,
        t: &Target<'_>,
        query: &Query,
        obj: &Value,
    ) -> Result<(), ApiError> {
        if level(query)? != FieldValidation::Strict {
            return Ok(());
        }
        let unknown =
            self.openapi
                .current()
                .unknown_fields(&t.r.group, &t.r.version, &t.r.kind, obj);
        if unknown.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            fields.join(", ")
        )))
    }
}

/// Adds `Warning: 299 - "..."` headers.
pub fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    let late = super::requester::take_warnings();
    let late = late.iter().filter(|w| !warnings.contains(w));
    for warning in warnings.iter().chain(late) {
        if let Ok(value) = HeaderValue::from_bytes(warning.as_bytes()) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    response
}
