//! `GET pods/<name>/log`: validates the options, picks the container, finds
//! the pod's node and streams the kubelet's `/containerLogs/...` back
//! (upstream's `LogLocation` + `LocationStreamer`).

use axum::response::Response;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::{Query, Registry, Target};
use crate::status::ApiError;

/// The kubectl annotation naming the container `kubectl logs/exec` use when
/// none is given.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// How much of a kubelet's error body becomes the message (upstream's
/// `maxReadLength`).
const MAX_ERROR_BYTES: usize = 50_000;

/// `PodLogOptions` from the query, validated like upstream's
/// `ValidatePodLogOptions`; `params` is what the kubelet is sent.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct LogOptions {
    pub container: Option<String>,
    pub previous: bool,
    pub insecure_skip_tls_verify_backend: bool,
    /// `follow=true&previous=true&...` for the kubelet.
    pub params: String,
}

fn parse_bool(query: &Query, key: &str) -> Result<bool, ApiError> {
    match query.get(key).map(String::as_str) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key}: invalid value {other:?}: strconv.ParseBool: parsing {other:?}: invalid syntax"
        ))),
    }
}

fn parse_int(query: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match query.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "{key}: invalid value {v:?}: strconv.ParseInt: parsing {v:?}: invalid syntax"
            ))
        }),
    }
}

impl LogOptions {
    pub(crate) fn parse(query: &Query, pod: &str) -> Result<LogOptions, ApiError> {
        let follow = parse_bool(query, "follow")?;
        let previous = parse_bool(query, "previous")?;
        let timestamps = parse_bool(query, "timestamps")?;
        let insecure = parse_bool(query, "insecureSkipTLSVerifyBackend")?;
        let since_seconds = parse_int(query, "sinceSeconds")?;
        let tail_lines = parse_int(query, "tailLines")?;
        let limit_bytes = parse_int(query, "limitBytes")?;
        let since_time = match query.get("sinceTime").map(String::as_str) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<jiff::Timestamp>().map_err(|e| {
                ApiError::bad_request(format!("sinceTime: invalid value {v:?}: {e}"))
            })?),
        };
        let mut errors: Vec<(String, String)> = Vec::new();
        if let Some(n) = tail_lines.filter(|n| *n < 0) {
            errors.push((
                "tailLines".into(),
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            ));
        }
        if let Some(n) = limit_bytes.filter(|n| *n < 1) {
            errors.push((
                "limitBytes".into(),
                format!("Invalid value: {n}: must be greater than 0"),
            ));
        }
        if since_seconds.is_some() && since_time.is_some() {
            errors.push((
                String::new(),
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            ));
        }
        if let Some(n) = since_seconds.filter(|n| *n < 1) {
            errors.push((
                "sinceSeconds".into(),
                format!("Invalid value: {n}: must be greater than 0"),
            ));
        }
        if !errors.is_empty() {
            let text: Vec<String> = errors
                .iter()
                .map(|(field, e)| {
                    if field.is_empty() {
                        e.clone()
                    } else {
                        format!("{field}: {e}")
                    }
                })
                .collect();
            let message = if text.len() == 1 {
                format!("PodLogOptions \"{pod}\" is invalid: {}", text[0])
            } else {
                format!("PodLogOptions \"{pod}\" is invalid: [{}]", text.join(", "))
            };
            let causes = errors
                .iter()
                .map(|(field, e)| {
                    let reason = if e.starts_with("Forbidden") {
                        "FieldValueForbidden"
                    } else {
                        "FieldValueInvalid"
                    };
                    json!({"reason": reason, "message": e, "field": field})
                })
                .collect();
            return Err(ApiError::invalid("PodLogOptions", "", pod, message, causes));
        }
        // Upstream's order (url.Values.Encode sorts by key).
        let mut params: Vec<(&str, String)> = Vec::new();
        if follow {
            params.push(("follow", "true".into()));
        }
        if let Some(n) = limit_bytes {
            params.push(("limitBytes", n.to_string()));
        }
        if previous {
            params.push(("previous", "true".into()));
        }
        if let Some(n) = since_seconds {
            params.push(("sinceSeconds", n.to_string()));
        }
        if let Some(t) = since_time {
            // RFC3339 without fractions, as upstream formats it.
            let t = jiff::Timestamp::from_second(t.as_second()).unwrap_or(t);
            params.push(("sinceTime", t.to_string().replace(':', "%3A")));
        }
        if let Some(n) = tail_lines {
            params.push(("tailLines", n.to_string()));
        }
        if timestamps {
            params.push(("timestamps", "true".into()));
        }
        Ok(LogOptions {
            container: query.get("container").filter(|c| !c.is_empty()).cloned(),
            previous,
            insecure_skip_tls_verify_backend: insecure,
            params: params
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        })
    }
}

/// Every container name of a pod: init, regular, ephemeral (upstream's
/// `VisitContainers` order).
fn container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}"))?.as_array())
        .flatten()
        .filter_map(|c| c.get("name")?.as_str())
        .collect()
}

/// The container whose logs are asked for (upstream's `validateContainer`,
/// plus kubectl's default-container annotation).
pub(crate) fn choose_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let names = container_names(pod);
    if let Some(c) = requested {
        return if names.contains(&c) {
            Ok(c.to_owned())
        } else {
            Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {pod_name}"
            )))
        };
    }
    if let Some(c) = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DEFAULT_CONTAINER))
        .and_then(Value::as_str)
        .filter(|c| names.contains(c))
    {
        return Ok(c.to_owned());
    }
    let regular: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name")?.as_str()).collect())
        .unwrap_or_default();
    match regular.as_slice() {
        [only] => Ok((*only).to_owned()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// What the pod's status already tells about the container's logs, in
/// upstream kubelet's words (`validateContainerLogStatus`): a container
/// still waiting has none, and `previous` needs a terminated last state.
/// Without a status for the container the kubelet decides.
pub(crate) fn container_status_error(
    pod: &Value,
    pod_name: &str,
    container: &str,
    previous: bool,
) -> Option<ApiError> {
    let status = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|list| pod.pointer(&format!("/status/{list}"))?.as_array())
    .flatten()
    .find(|s| s.get("name").and_then(Value::as_str) == Some(container))?;
    let last_terminated = status
        .pointer("/lastState/terminated")
        .is_some_and(Value::is_object);
    if previous {
        return (!last_terminated).then(|| {
            ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            ))
        });
    }
    let state = |s: &str| {
        status
            .pointer(&format!("/state/{s}"))
            .filter(|v| v.is_object())
    };
    if state("running").is_some() || state("terminated").is_some() || last_terminated {
        return None;
    }
    let why = match state("waiting")
        .and_then(|w| w.get("reason"))
        .and_then(Value::as_str)
    {
        Some("ErrImagePull") => ": image can't be pulled".to_owned(),
        Some("ImagePullBackOff") => ": trying and failing to pull image".to_owned(),
        Some(reason) if state("waiting").is_some() => format!(": {reason}"),
        _ if state("waiting").is_some() => ": ".to_owned(),
        _ => " - no logs yet".to_owned(),
    };
    Some(ApiError::bad_request(format!(
        "container \"{container}\" in pod \"{pod_name}\" is waiting to start{why}"
    )))
}

/// Where a node's kubelet listens: its InternalIP (else Hostname, else
/// ExternalIP) and `daemonEndpoints.kubeletEndpoint.Port` (10250).
pub(crate) fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let addresses = node.pointer("/status/addresses")?.as_array()?;
    let host = ["InternalIP", "Hostname", "ExternalIP"]
        .iter()
        .find_map(|kind| {
            addresses.iter().find_map(|a| {
                (a.get("type")?.as_str()? == *kind)
                    .then(|| a.get("address")?.as_str())
                    .flatten()
                    .filter(|s| !s.is_empty())
            })
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    Some((host.to_owned(), port))
}

/// A kubelet's error answer, passed on with its code and text.
pub(super) fn kubelet_error(code: StatusCode, body: &[u8]) -> ApiError {
    let reason = match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };
    let text = String::from_utf8_lossy(body).trim().to_owned();
    let message = if text.is_empty() {
        format!(
            "the server responded with the status code {} but did not return more information",
            code.as_u16()
        )
    } else {
        text
    };
    ApiError::new(code.as_u16(), reason, message)
}

/// A kubelet's non-success answer as an error, with (the start of) its
/// body as the message.
pub(super) async fn kubelet_failure<B>(code: StatusCode, body: B) -> ApiError
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = http_body_util::Limited::new(body, MAX_ERROR_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    kubelet_error(code, &bytes)
}

impl Registry {
    /// Where the kubelet of the pod's node listens.
    pub(super) async fn kubelet_of(
        &self,
        pod: &Value,
        name: &str,
    ) -> Result<(String, u16), ApiError> {
        let node_name = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!("pod {name} does not have a host assigned"))
            })?;
        let nodes = self
            .resources
            .find("", "v1", "nodes")
            .ok_or_else(|| ApiError::internal("nodes are not served"))?;
        let node = self
            .read_object(&Target {
                r: &nodes,
                namespace: None,
                name: Some(node_name.to_owned()),
            })
            .await?;
        kubelet_address(&node).ok_or_else(|| {
            ApiError::internal(format!(
                "node {node_name} has no address to reach its kubelet (status.addresses is empty)"
            ))
        })
    }

    pub(super) async fn pod_log(
        &self,
        t: &Target<'_>,
        query: &Query,
    ) -> Result<Response, ApiError> {
        let pod = self.read_object(t).await?;
        let name = t.name.clone().unwrap_or_default();
        let namespace = t.namespace.clone().unwrap_or_default();
        let options = LogOptions::parse(query, &name)?;
        let container = choose_container(&pod, &name, options.container.as_deref())?;
        if let Some(e) = container_status_error(&pod, &name, &container, options.previous) {
            return Err(e);
        }
        let (host, port) = self.kubelet_of(&pod, &name).await?;
        let mut path = format!("/containerLogs/{namespace}/{name}/{container}");
        if !options.params.is_empty() {
            path.push('?');
            path.push_str(&options.params);
        }
        let response = self
            .kubelet
            .get(
                &host,
                port,
                &path,
                options.insecure_skip_tls_verify_backend,
                self.shutdown.clone(),
            )
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            return Err(kubelet_failure(parts.status, body).await);
        }
        http::Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .header(http::header::CACHE_CONTROL, "no-cache, private")
            .body(body)
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_become_the_kubelet_query_in_upstream_order() {
        let o = LogOptions::parse(
            &query(&[
                ("container", "c"),
                ("follow", "true"),
                ("timestamps", "1"),
                ("tailLines", "10"),
                ("limitBytes", "100"),
                ("previous", "false"),
                ("sinceTime", "2024-05-01T10:00:00.5Z"),
            ]),
            "p",
        )
        .unwrap();
        assert_eq!(o.container.as_deref(), Some("c"));
        assert_eq!(
            o.params,
            "follow=true&limitBytes=100&sinceTime=2024-05-01T10%3A00%3A00Z&tailLines=10&timestamps=true"
        );
        assert_eq!(LogOptions::parse(&query(&[]), "p").unwrap().params, "");
    }

    #[test]
    fn invalid_options_are_422_like_upstream() {
        let e = LogOptions::parse(&query(&[("tailLines", "-1")]), "p").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = LogOptions::parse(
            &query(&[("sinceSeconds", "5"), ("sinceTime", "2024-05-01T10:00:00Z")]),
            "p",
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        let e = LogOptions::parse(&query(&[("limitBytes", "0")]), "p").unwrap_err();
        assert!(
            e.message.contains("limitBytes: Invalid value: 0"),
            "{}",
            e.message
        );
        let e = LogOptions::parse(&query(&[("follow", "yes")]), "p").unwrap_err();
        assert_eq!(e.code, 400);
        let e = LogOptions::parse(&query(&[("tailLines", "x")]), "p").unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn the_container_defaults_like_upstream_and_kubectl() {
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(choose_container(&one, "p", None).unwrap(), "a");
        let e = choose_container(&one, "p", Some("x")).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "container x is not valid for pod p");
        let two = json!({"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        let e = choose_container(&two, "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        assert_eq!(choose_container(&two, "p", Some("init")).unwrap(), "init");
        let annotated = json!({
            "metadata": {"annotations": {DEFAULT_CONTAINER: "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        });
        assert_eq!(choose_container(&annotated, "p", None).unwrap(), "b");
        let none = json!({"spec": {"containers": []}});
        assert_eq!(
            choose_container(&none, "p", None).unwrap_err().message,
            "a container name must be specified for pod p"
        );
    }

    #[test]
    fn the_status_of_a_waiting_container_answers_like_the_kubelet() {
        let pod = |status: Value| json!({"status": {"containerStatuses": [status]}});
        let waiting =
            pod(json!({"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}));
        assert_eq!(
            container_status_error(&waiting, "p", "c", false)
                .unwrap()
                .message,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        assert_eq!(
            container_status_error(&waiting, "p", "c", true)
                .unwrap()
                .message,
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        let pulling =
            pod(json!({"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}));
        assert_eq!(
            container_status_error(&pulling, "p", "c", false)
                .unwrap()
                .message,
            "container \"c\" in pod \"p\" is waiting to start: trying and failing to pull image"
        );
        let restarting = pod(
            json!({"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1}}}),
        );
        assert!(container_status_error(&restarting, "p", "c", false).is_none());
        assert!(container_status_error(&restarting, "p", "c", true).is_none());
        let running = pod(json!({"name": "c", "state": {"running": {}}}));
        assert!(container_status_error(&running, "p", "c", false).is_none());
        assert!(container_status_error(&running, "p", "c", true).is_some());
        // No status for it: the kubelet decides.
        assert!(container_status_error(&running, "p", "other", true).is_none());
        assert!(container_status_error(&json!({}), "p", "c", false).is_none());
    }

    #[test]
    fn the_kubelet_is_reached_at_the_internal_ip_and_its_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}},
        }});
        assert_eq!(kubelet_address(&node), Some(("10.0.0.5".into(), 11250)));
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(kubelet_address(&node), Some(("n1".into(), 10250)));
        assert_eq!(kubelet_address(&json!({"status": {}})), None);
    }

    #[test]
    fn kubelet_errors_keep_their_code_and_text() {
        let e = kubelet_error(
            StatusCode::BAD_REQUEST,
            b"previous terminated container \"c\" in pod \"p\" not found\n",
        );
        assert_eq!(e.code, 400);
        assert_eq!(e.reason, "BadRequest");
        assert_eq!(
            e.message,
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        assert_eq!(kubelet_error(StatusCode::NOT_FOUND, b"").reason, "NotFound");
    }
}
