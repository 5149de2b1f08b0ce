//! Subresources: status, scale, binding, eviction, namespace finalize, and
//! the streaming ones (log in `pod_logs.rs`; exec, attach, portforward not
//! yet) that need a kubelet.

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::body::decode_object;
use super::patch::apply;
use super::write::{Part, dry_run};
use super::{Query, Registry, Target, json_response};
use crate::object;
use crate::request::Verb;
use crate::status::ApiError;

/// `a=1,b=2` from a label map.
fn selector_string(labels: &serde_json::Map<String, Value>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `.spec.replicas`-style path (what CRDs declare) as a JSON pointer.
fn pointer(path: &str) -> String {
    path.split('.')
        .filter(|p| !p.is_empty())
        .fold(String::new(), |mut out, p| {
            out.push('/');
            out.push_str(p);
            out
        })
}

/// Where a resource keeps what its Scale shows: built-in kinds use
/// `spec.replicas`/`status.replicas` and their label selector; a custom
/// resource the paths its definition declares.
struct ScaleFields {
    spec_replicas: String,
    status_replicas: String,
    /// Custom resources: the path of the serialized selector string.
    selector: Option<String>,
}

impl ScaleFields {
    fn of(r: &crate::resources::ResourceInfo) -> ScaleFields {
        match r.custom.as_ref().and_then(|c| c.scale.as_ref()) {
            Some(paths) => ScaleFields {
                spec_replicas: pointer(&paths.spec_replicas),
                status_replicas: pointer(&paths.status_replicas),
                selector: Some(
                    paths
                        .label_selector
                        .as_deref()
                        .map(pointer)
                        .unwrap_or_default(),
                ),
            },
            None => ScaleFields {
                spec_replicas: "/spec/replicas".into(),
                status_replicas: "/status/replicas".into(),
                selector: None,
            },
        }
    }

    fn selector(&self, obj: &Value) -> String {
        if let Some(path) = &self.selector {
            return match path.as_str() {
                "" => String::new(),
                p => obj
                    .pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            };
        }
        match obj.pointer("/spec/selector") {
            Some(Value::Object(s))
                if s.contains_key("matchLabels") || s.contains_key("matchExpressions") =>
            {
                s.get("matchLabels")
                    .and_then(Value::as_object)
                    .map(selector_string)
                    .unwrap_or_default()
            }
            // ReplicationControllers: a plain map.
            Some(Value::Object(m)) => selector_string(m),
            _ => String::new(),
        }
    }

    /// The `autoscaling/v1` Scale view of a scalable object.
    fn scale_of(&self, obj: &Value) -> Value {
        let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
                "creationTimestamp": meta.get("creationTimestamp"),
            },
            "spec": {"replicas": obj.pointer(&self.spec_replicas).and_then(Value::as_i64).unwrap_or(if self.selector.is_some() { 0 } else { 1 })},
            "status": {
                "replicas": obj.pointer(&self.status_replicas).and_then(Value::as_i64).unwrap_or(0),
                "selector": self.selector(obj),
            },
        })
    }

    /// Sets the desired replicas, making the path's objects as needed.
    fn set_replicas(&self, obj: &mut Value, replicas: i64) {
        let mut at = obj;
        let parts: Vec<&str> = self.spec_replicas.split('/').skip(1).collect();
        for (i, part) in parts.iter().enumerate() {
            if !at.is_object() {
                *at = json!({});
            }
            let Value::Object(map) = at else { return };
            if i + 1 == parts.len() {
                map.insert((*part).to_owned(), json!(replicas));
                return;
            }
            at = map.entry((*part).to_owned()).or_insert_with(|| json!({}));
        }
    }
}

fn not_proxied(sub: &str) -> ApiError {
    ApiError::bad_request(format!("{sub} is not supported by skiff yet"))
}

impl Registry {
    pub(super) async fn subresource(
        &self,
        t: &Target<'_>,
        sub: &str,
        verb: Verb,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        match (sub, verb) {
            ("status", Verb::Get) => self.get(t, query, headers).await,
            ("status", Verb::Update) => self.replace(t, query, headers, body, Part::Status).await,
            ("status", Verb::Patch) => self.patch(t, query, headers, body, Part::Status).await,
            ("scale", Verb::Get) => Ok(json_response(
                StatusCode::OK,
                &ScaleFields::of(t.r).scale_of(&self.read_object(t).await?),
            )),
            ("scale", Verb::Update | Verb::Patch) => {
                self.scale(t, verb, query, headers, body).await
            }
            ("binding", Verb::Create) => self.bind(t, query, headers, body).await,
            ("eviction", Verb::Create) => self.evict(t, query, headers, body).await,
            ("token", Verb::Create) => self.token_request(t, headers, body).await,
            ("approval", Verb::Get) => self.get(t, query, headers).await,
            ("approval", Verb::Update) => {
                self.replace(t, query, headers, body, Part::Approval).await
            }
            ("approval", Verb::Patch) => self.patch(t, query, headers, body, Part::Approval).await,
            ("finalize", Verb::Update) => {
                self.replace(t, query, headers, body, Part::Finalize).await
            }
            ("log", Verb::Get) => self.pod_log(t, query).await,
            // exec, attach and portforward of pods never get here
            // (`pod_stream`); proxy is not implemented.
            ("exec" | "attach" | "portforward" | "proxy", _) => {
                self.read_object(t).await?;
                Err(not_proxied(sub))
            }
            _ => Err(ApiError::method_not_allowed(format!(
                "{} is not supported on {}/{sub}",
                verb.as_str(),
                t.r.plural
            ))),
        }
    }

    async fn scale(
        &self,
        t: &Target<'_>,
        verb: Verb,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let fields = ScaleFields::of(t.r);
        let current = self.read_object(t).await?;
        let requested = if verb == Verb::Patch {
            let (kind, patch) = super::patch::decode(headers, &body)?;
            apply(kind, &fields.scale_of(&current), &patch)?
        } else {
            decode_object(headers, &body)?
        };
        let replicas = requested
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .filter(|r| *r >= 0 && *r <= i64::from(i32::MAX))
            .ok_or_else(|| {
                let message = format!("Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: must be greater than or equal to 0", t.name.as_deref().unwrap_or_default());
                ApiError::invalid("Scale", "autoscaling", t.name.as_deref().unwrap_or_default(), message, vec![json!({"reason": "FieldValueInvalid", "field": "spec.replicas"})])
            })?;
        let expected = match requested
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(rv) if !rv.is_empty() && verb == Verb::Update => Some(object::parse_revision(rv)?),
            _ => None,
        };
        let obj = self
            .update_object(t, expected, dry_run(query), Part::Main, |cur| {
                let mut next = cur.clone();
                fields.set_replicas(&mut next, replicas);
                Ok(next)
            })
            .await?;
        Ok(json_response(StatusCode::OK, &fields.scale_of(&obj)))
    }

    /// `POST .../bindings`: the same as `pods/<name>/binding`, naming the
    /// pod in the body.
    pub(super) async fn create_binding(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let binding = decode_object(headers, &body)?;
        let name = object::name(&binding)
            .ok_or_else(|| ApiError::bad_request("binding metadata.name (the pod) is required"))?
            .to_owned();
        let pods = self
            .resources
            .find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let pod = Target {
            r: &pods,
            namespace: t.namespace.clone(),
            name: Some(name),
        };
        self.bind(&pod, query, headers, body).await
    }

    /// `pods/binding`: the scheduler assigns a node, once.
    async fn bind(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let binding = decode_object(headers, &body)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("binding target name is required"))?
            .to_owned();
        let name = t.name.clone().unwrap_or_default();
        self.update_object(t, None, dry_run(query), Part::Bind, |cur| {
                if let Some(existing) = cur.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                    return Err(ApiError::conflict(&t.subject()).with_message(format!(
                        "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{existing}\""
                    )));
                }
                if object::is_deleting(cur) {
                    return Err(ApiError::conflict(&t.subject()).with_message(format!("pod {name} is being deleted, cannot be assigned to a host")));
                }
                let mut next = cur.clone();
                next["spec"]["nodeName"] = json!(node);
                Ok(next)
            })
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }
}
