//! Serving the OpenAPI documents kubectl needs before `create -f`/`apply -f`:
//! `/openapi/v3` (1.29+) and `/openapi/v2` as protobuf (1.27, 1.28) or JSON.

use std::sync::{Arc, RwLock};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use skiff_openapi::{OpenApi, V2_PROTOBUF_CONTENT_TYPE};

use crate::status::ApiError;

fn bytes(content_type: &'static str, body: &[u8], immutable: bool) -> Response {
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    (
        StatusCode::OK,
        [
            (http::header::CONTENT_TYPE, content_type),
            (http::header::CACHE_CONTROL, cache),
        ],
        Bytes::copy_from_slice(body),
    )
        .into_response()
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
                bytes(V2_PROTOBUF_CONTENT_TYPE, docs.v2_protobuf(), false)
            } else {
                bytes("application/json", docs.v2_json(), false)
            },
        )),
        "/openapi/v3" | "/openapi/v3/" => {
            Some(Ok(bytes("application/json", docs.v3_index(), false)))
        }
        _ => {
            let gv = path.strip_prefix("/openapi/v3/")?;
            Some(match docs.v3_document(gv) {
                Some(doc) => {
                    let hashed = query
                        .get("hash")
                        .is_some_and(|h| docs.v3_hash(gv) == Some(h.as_str()));
                    Ok(bytes("application/json", doc, hashed))
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
