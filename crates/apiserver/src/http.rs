//! The HTTP surface: health, version, discovery, and every resource path
//! handed to the registry. Errors leave as `metav1.Status`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use crate::discovery::{self, Aggregated};
use crate::registry::{Registry, json_response};
use crate::request;
use crate::status::ApiError;
use crate::tls::UserInfo;

/// Paths anyone may read, credentials or not.
const PUBLIC_PATHS: [&str; 4] = ["/livez", "/readyz", "/healthz", "/version"];

/// Shared state of all requests.
pub struct App {
    pub registry: Registry,
    /// `host:port` clients should use (discovery's serverAddress).
    pub server_address: String,
    /// Bearer tokens (certificates are checked at the TLS layer).
    pub authenticator: crate::auth::Authenticator,
    /// RBAC (and `system:masters`), fed by `auth::authorize::follow`.
    pub authorizer: crate::auth::authorize::Authorizer,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(dispatch).with_state(app)
}

fn text(code: StatusCode, body: &'static str) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What `/version` reports: Kubernetes 1.33, built by skiff.
pub fn version_info() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0+skiff-", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rustc",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", other => other }),
    })
}

async fn ready(app: &App) -> bool {
    app.registry.store.current_revision().await.is_ok()
        && crate::bootstrap::present(app.registry.store.as_ref()).await
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, crate::registry::MAX_BODY_BYTES + 1);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(
            "Request entity too large: limit is 3145728",
        )),
        Err(e) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
    }
}

async fn dispatch(
    State(app): State<Arc<App>>,
    user: Option<Extension<UserInfo>>,
    Query(query): Query<HashMap<String, String>>,
    mut request: axum::extract::Request,
) -> Response {
    // exec, attach and port-forward take over the connection.
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let path = uri.path().to_owned();
    // A certificate wins; else a bearer token; a token naming nobody is
    // refused even where anonymous requests would pass.
    let user = match user.map(|Extension(u)| u) {
        Some(u) if !u.is_anonymous() => u,
        _ => match crate::auth::Authenticator::bearer_token(&headers) {
            None => UserInfo::anonymous(),
            Some(token) => match app.authenticator.token(&app.registry, token, None).await {
                Ok((u, _)) => u,
                // Health and version need no identity: they answer
                // whatever the token (probes often carry a stale one).
                Err(e) if !PUBLIC_PATHS.contains(&path.as_str()) => {
                    tracing::debug!(%path, reason = %e.0, "unauthorized bearer token");
                    return ApiError::unauthorized().into_response();
                }
                Err(_) => UserInfo::anonymous(),
            },
        },
    };
    let started = std::time::Instant::now();
    let request = Incoming {
        method: &method,
        path: &path,
        query: &query,
        raw_query: uri.query().unwrap_or(""),
        headers: &headers,
        on_upgrade,
    };
    let response = match serve(&app, &user, request, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    let code = response.status().as_u16();
    if method == Method::GET {
        tracing::debug!(%method, %path, code, user = %user.name, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    } else {
        tracing::info!(%method, %path, code, user = %user.name, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    }
    response
}

/// One request's head, as [`serve`] needs it.
struct Incoming<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a HashMap<String, String>,
    /// Repeated parameters (exec's `command`) survive only here.
    raw_query: &'a str,
    headers: &'a HeaderMap,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

async fn serve(
    app: &App,
    user: &UserInfo,
    request: Incoming<'_>,
    body: Body,
) -> Result<Response, ApiError> {
    let Incoming {
        method,
        path,
        query,
        raw_query,
        headers,
        on_upgrade,
    } = request;
    match path {
        "/livez" | "/healthz" => return Ok(text(StatusCode::OK, "ok")),
        "/readyz" => {
            return Ok(if ready(app).await {
                text(StatusCode::OK, "ok")
            } else {
                text(StatusCode::INTERNAL_SERVER_ERROR, "readyz check failed")
            });
        }
        "/version" => return Ok(json_response(StatusCode::OK, &version_info())),
        _ => {}
    }
    // Anonymous requests get only what joining nodes need before they
    // trust the server: the signed cluster-info (authorized by RBAC).
    if user.is_anonymous() && !(method == Method::GET && path == crate::auth::CLUSTER_INFO_PATH) {
        return Err(ApiError::unauthorized());
    }
    let parsed = request::parse(method, path, query);
    let user = &crate::auth::admit(
        &app.authorizer,
        &app.registry,
        user,
        headers,
        method,
        path,
        parsed.as_ref(),
    )?;
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(answer) =
        crate::openapi::serve(&app.registry.openapi.current(), path, query, headers)
    {
        return answer;
    }
    let resources = &*app.registry.resources.snapshot();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let discovery = match parts.as_slice() {
        ["api"] => Some(match Aggregated::from_accept(accept) {
            Some(v) => return Ok(aggregated(discovery::aggregated(resources, true, v), v)),
            None => discovery::api_versions(&app.server_address),
        }),
        ["apis"] => Some(match Aggregated::from_accept(accept) {
            Some(v) => return Ok(aggregated(discovery::aggregated(resources, false, v), v)),
            None => discovery::api_group_list(resources),
        }),
        ["api", version] => {
            discovery::api_resource_list(resources, "", version).or(Some(json!(null)))
        }
        ["apis", group] => discovery::api_group(resources, group).or(Some(json!(null))),
        ["apis", group, version] => {
            discovery::api_resource_list(resources, group, version).or(Some(json!(null)))
        }
        _ => None,
    };
    if let Some(doc) = discovery {
        if doc.is_null() {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        return Ok(json_response(StatusCode::OK, &doc));
    }
    let Some(info) = parsed else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if let Some(review) = crate::auth::reviews::Review::of(&info) {
        let body = read_body(body).await?;
        let answer = crate::auth::reviews::serve(review, &info, user, app, headers, &body).await?;
        return Ok(json_response(StatusCode::CREATED, &answer));
    }
    if crate::registry::is_pod_stream(&info) {
        return app
            .registry
            .pod_stream(&info, method, query, raw_query, headers, on_upgrade)
            .await;
    }
    let body = read_body(body).await?;
    let as_user = crate::auth::authorize::rbac_user(user);
    crate::registry::as_user(as_user, app.registry.handle(info, query, headers, body)).await
}

fn aggregated(doc: serde_json::Value, variant: Aggregated) -> Response {
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, variant.content_type())],
        doc.to_string(),
    )
        .into_response()
}
