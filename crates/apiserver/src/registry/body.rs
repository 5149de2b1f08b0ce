//! Request bodies in, JSON responses out.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::status::ApiError;

/// Largest request body accepted (upstream: 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Parses a JSON request body into an object. YAML is accepted too when the
/// client says so (JSON is valid YAML, and clients send JSON in practice).
pub fn decode_object(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(
            "Request entity too large: limit is 3145728",
        ));
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if skiff_protobuf::is_protobuf(content_type) {
        return skiff_protobuf::decode(body).map_err(|e| match e {
            skiff_protobuf::ProtobufError::UnknownKind { .. } => ApiError::unsupported_media(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({e})"
            )),
            other => ApiError::bad_request(format!("the object provided is unrecognized or malformed protobuf: {other}")),
        });
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"
        )));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized or malformed JSON: {e}"
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized: expected a JSON object",
        ));
    }
    Ok(value)
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Whether the body is Kubernetes protobuf (which cannot carry unknown or
/// duplicate fields, so field validation has nothing to check).
pub fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(skiff_protobuf::is_protobuf)
}
