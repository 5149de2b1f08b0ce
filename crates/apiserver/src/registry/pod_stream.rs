//! `pods/exec`, `pods/attach` and `pods/portforward`: the API server checks
//! the pod, dials the kubelet of its node with the client's upgrade
//! request, and once the kubelet switches protocols, joins the two
//! connections byte for byte (upstream's `UpgradeAwareHandler`). The
//! protocol itself (SPDY or WebSocket, which version) is between kubectl
//! and the kubelet.

use axum::response::Response;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::pod_logs::{choose_container, kubelet_failure};
use super::{Query, Registry, Target};
use crate::request::RequestInfo;
use crate::status::ApiError;

/// The headers of an upgrade that travel on to the kubelet (not the
/// client's credentials).
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Whether a request is for one of the streaming subresources of pods.
pub(crate) fn is_pod_stream(info: &RequestInfo) -> bool {
    info.group.is_empty()
        && info.resource == "pods"
        && matches!(
            info.subresource.as_deref(),
            Some("exec" | "attach" | "portforward")
        )
}

fn upgrade_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in UPGRADE_HEADERS {
        let name = HeaderName::from_static(name);
        for value in headers.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        && headers.contains_key(http::header::UPGRADE)
}

/// The kubelet path for the subresource.
fn kubelet_path(
    sub: &str,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    raw_query: &str,
) -> String {
    let mut path = match (sub, container) {
        ("portforward", _) => format!("/portForward/{namespace}/{pod}"),
        (sub, Some(c)) => format!("/{sub}/{namespace}/{pod}/{c}"),
        (sub, None) => format!("/{sub}/{namespace}/{pod}"),
    };
    if !raw_query.is_empty() {
        path.push('?');
        path.push_str(raw_query);
    }
    path
}

impl Registry {
    pub(crate) async fn pod_stream(
        &self,
        info: &RequestInfo,
        method: &Method,
        query: &Query,
        raw_query: &str,
        headers: &HeaderMap,
        on_upgrade: Option<OnUpgrade>,
    ) -> Result<Response, ApiError> {
        let sub = info.subresource.as_deref().unwrap_or("");
        if !matches!(*method, Method::GET | Method::POST) {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on pods/{sub}"
            )));
        }
        let pods = self
            .resources
            .find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let target = Target {
            r: &pods,
            namespace: info.namespace.clone(),
            name: info.name.clone(),
        };
        let pod = self.read_object(&target).await?;
        let name = info.name.clone().unwrap_or_default();
        let namespace = info.namespace.clone().unwrap_or_default();
        let container = if sub == "portforward" {
            None
        } else {
            let requested = query.get("container").filter(|c| !c.is_empty());
            Some(choose_container(
                &pod,
                &name,
                requested.map(String::as_str),
            )?)
        };
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if matches!(phase, "Succeeded" | "Failed") {
            let verb = if sub == "portforward" {
                "port-forward to"
            } else {
                sub
            };
            return Err(ApiError::bad_request(format!(
                "cannot {verb} into a container in a completed pod; current phase is {phase}"
            )));
        }
        let (host, port) = self.kubelet_of(&pod, &name).await?;
        let Some(on_upgrade) = on_upgrade.filter(|_| wants_upgrade(headers)) else {
            return Err(ApiError::bad_request("Upgrade request required"));
        };
        let path = kubelet_path(sub, &namespace, &name, container.as_deref(), raw_query);
        let mut response = self
            .kubelet
            .upgrade(
                &host,
                port,
                method.clone(),
                &path,
                &upgrade_headers(headers),
            )
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            return Err(kubelet_failure(status, response.into_body()).await);
        }
        let kubelet_upgrade = hyper::upgrade::on(&mut response);
        let mut answer = http::Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let (client, kubelet) = match tokio::join!(on_upgrade, kubelet_upgrade) {
                (Ok(c), Ok(k)) => (c, k),
                (c, k) => {
                    tracing::debug!(
                        client_ok = c.is_ok(),
                        kubelet_ok = k.is_ok(),
                        "stream upgrade did not complete"
                    );
                    return;
                }
            };
            let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
            tokio::select! {
                copied = tokio::io::copy_bidirectional(&mut client, &mut kubelet) => {
                    if let Err(e) = copied {
                        tracing::debug!(error = %e, "stream relay ended");
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
        answer
            .body(axum::body::Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths() {
        assert_eq!(
            kubelet_path(
                "exec",
                "default",
                "web",
                Some("c"),
                "command=ls&command=-l&stdout=true"
            ),
            "/exec/default/web/c?command=ls&command=-l&stdout=true"
        );
        assert_eq!(
            kubelet_path("attach", "ns", "p", Some("c"), ""),
            "/attach/ns/p/c"
        );
        assert_eq!(
            kubelet_path("portforward", "ns", "p", None, "ports=80"),
            "/portForward/ns/p?ports=80"
        );
    }

    #[test]
    fn only_upgrade_headers_travel() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "SPDY/3.1".parse().unwrap());
        h.append(
            "x-stream-protocol-version",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        h.append(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        h.insert("authorization", "Bearer secret".parse().unwrap());
        assert!(wants_upgrade(&h));
        let out = upgrade_headers(&h);
        assert_eq!(out.get_all("x-stream-protocol-version").iter().count(), 2);
        assert!(!out.contains_key("authorization"));
        assert!(!wants_upgrade(&HeaderMap::new()));
    }
}
