//! Serving the OpenAPI documents kubectl needs before `create -f`/`apply -f`:
//! `/openapi/v3` (1.29+) and `/openapi/v2` as protobuf (1.27, 1.28) or JSON.

use std::sync::{Arc, RwLock};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use skiff_openapi::{OpenApi, V2_PROTOBUF_CONTENT_TYPE};

use crate::status::ApiError;

/// A document with its caching headers: `ETag` from the content hash, and
/// `304 Not Modified` when the client already holds that version (kubectl
/// keeps the documents in its disk cache).
fn document(
    headers: &HeaderMap,
    content_type: &'static str,
    body: &[u8],
    etag: Option<&str>,
    immutable: bool,
) -> Response {
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let etag = etag.map(|e| format!("\"{e}\""));
    let unchanged = etag.as_deref().is_some_and(|tag| {
        headers
            .get(http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|candidate| candidate.trim() == tag))
    });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, content_type)],
            Bytes::copy_from_slice(body),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(cache),
    );
    if let Some(tag) = etag.and_then(|t| http::HeaderValue::from_str(&t).ok()) {
        h.insert(http::header::ETAG, tag);
    }
    response
}

/// The current documents. Requests take the `Arc` and keep serving from
/// it while a CustomResourceDefinition change swaps in a rebuilt set.
pub struct Documents(RwLock<Arc<OpenApi>>);

impl Documents {
    pub fn new(docs: OpenApi) -> Documents {
        Documents(RwLock::new(Arc::new(docs)))
    }

    pub fn current(&self) -> Arc<OpenApi> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, docs: OpenApi) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(docs);
    }
}

/// Answers `/openapi/...` paths, or `None` if `path` is not one.
pub fn serve(
    docs: &OpenApi,
    path: &str,
    query: &std::collections::HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match path {
        "/openapi/v2" | "/swagger-2.0.0.pb-v1" | "/swagger.json" => Some(Ok(
            if accept.contains("protobuf") || path == "/swagger-2.0.0.pb-v1" {
                document(
                    headers,
                    V2_PROTOBUF_CONTENT_TYPE,
                    docs.v2_protobuf(),
                    Some(docs.v2_etag()),
                    false,
                )
            } else {
                document(
                    headers,
                    "application/json",
                    docs.v2_json(),
                    Some(docs.v2_etag()),
                    false,
                )
            },
        )),
        "/openapi/v3" | "/openapi/v3/" => Some(Ok(document(
            headers,
            "application/json",
            docs.v3_index(),
            None,
            false,
        ))),
        _ => {
            let gv = path.strip_prefix("/openapi/v3/")?;
            Some(match docs.v3_document(gv) {
                Some(doc) => {
                    let hashed = query
                        .get("hash")
                        .is_some_and(|h| docs.v3_hash(gv) == Some(h.as_str()));
                    Ok(document(
                        headers,
                        "application/json",
                        doc,
                        docs.v3_hash(gv),
                        hashed,
                    ))
                }
                None => Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_etags_and_answer_304_when_unchanged() {
        let fresh = document(
            &HeaderMap::new(),
            "application/json",
            b"{}",
            Some("AB"),
            false,
        );
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[http::header::ETAG], "\"AB\"");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_static("\"AB\""),
        );
        let cached = document(&headers, "application/json", b"{}", Some("AB"), false);
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        headers.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_static("\"old\""),
        );
        let changed = document(&headers, "application/json", b"{}", Some("AB"), false);
        assert_eq!(changed.status(), StatusCode::OK);
    }
}
