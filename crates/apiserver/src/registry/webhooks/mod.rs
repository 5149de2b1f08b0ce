//! Dynamic admission (admissionregistration.k8s.io/v1): the webhooks of
//! MutatingWebhookConfigurations and ValidatingWebhookConfigurations are
//! sent an AdmissionReview (`admission.k8s.io/v1`) for the creates,
//! updates and deletes their rules select (a delete carries only
//! `oldObject`). A mutating webhook may answer with a
//! base64 JSONPatch; any webhook may deny (its status becomes the error,
//! `admission webhook "<name>" denied the request: <message>`) or add
//! warnings. A webhook that cannot be reached fails the request unless
//! its `failurePolicy` is `Ignore`.
//!
//! Mutating webhooks with `reinvocationPolicy: IfNeeded` are called once
//! more when later webhooks changed the object; dry runs reach only
//! webhooks declaring no side effects.
//!
//! Not built yet: connects, `matchConditions` (CEL; a webhook
//! with conditions is called as if they held), reinvocation after the
//! built-in plugins, `matchPolicy: Equivalent` across versions, and the
//! warnings of deletions. Configurations are read from
//! the watch cache as it is (like upstream's informer); webhook
//! configurations themselves are never sent to webhooks.

mod client;
mod matching;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::admission_chain::warning;
use super::{Query, Registry, Target};
use crate::object;
use crate::status::ApiError;

/// Which configurations to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Mutating,
    Validating,
}

impl Phase {
    fn plural(self) -> &'static str {
        match self {
            Phase::Mutating => "mutatingwebhookconfigurations",
            Phase::Validating => "validatingwebhookconfigurations",
        }
    }
}

/// One write as webhooks are told about it.
pub struct Call<'a> {
    pub operation: &'a str,
    pub old: Option<&'a Value>,
    pub dry_run: bool,
}

/// The reason of a denial, among those clients know (`""` otherwise).
fn known_reason(reason: &str) -> &'static str {
    const REASONS: [&str; 12] = [
        "Forbidden",
        "Invalid",
        "BadRequest",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "TooManyRequests",
        "Unauthorized",
        "InternalError",
        "Timeout",
        "ServiceUnavailable",
        "MethodNotAllowed",
    ];
    REASONS.into_iter().find(|r| *r == reason).unwrap_or("")
}

/// The error of a denial (upstream's `ToStatusErr`).
pub fn denial(webhook: &str, status: Option<&Value>) -> ApiError {
    let text = |k: &str| {
        status
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let message = text("message");
    let reason = text("reason");
    let full = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400 && *c < 600)
        .unwrap_or(403);
    let mut e = ApiError::new(code, known_reason(&reason), full);
    e.details = status.and_then(|s| s.get("details")).cloned();
    e
}

/// A dry run may only reach webhooks without side effects (upstream's
/// `sideEffects: None | NoneOnDryRun`).
fn check_dry_run(hook: &Value, call: &Call<'_>) -> Result<(), ApiError> {
    let safe = matches!(
        hook.get("sideEffects").and_then(Value::as_str),
        Some("None" | "NoneOnDryRun")
    );
    if call.dry_run && !safe {
        let name = hook.get("name").and_then(Value::as_str).unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "admission webhook {name:?} does not support dry run"
        )));
    }
    Ok(())
}

fn failed_calling(webhook: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!(
        "Internal error occurred: failed calling webhook {webhook:?}: {reason}"
    ))
}

impl Registry {
    /// Calls the webhooks of `phase` interested in this write of `obj`
    /// (mutating ones may change it); their warnings join `warnings`.
    pub(super) async fn call_webhooks(
        &self,
        phase: Phase,
        t: &Target<'_>,
        call: &Call<'_>,
        obj: &mut Value,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if t.r.group == "admissionregistration.k8s.io" {
            return Ok(());
        }
        let Some(r) = self
            .resources
            .find("admissionregistration.k8s.io", "v1", phase.plural())
        else {
            return Ok(());
        };
        let all = Target {
            r: &r,
            namespace: None,
            name: None,
        };
        let cached: Query = [("resourceVersion".to_owned(), "0".to_owned())].into();
        let mut configs = self.list_page(&all, &cached).await?.items;
        if configs.is_empty() {
            return Ok(());
        }
        configs.sort_by(|a, b| object::name(a).cmp(&object::name(b)));
        let request = matching::Request {
            operation: call.operation,
            group: &t.r.group,
            version: &t.r.version,
            resource: &t.r.plural,
            subresource: "",
            namespaced: t.r.namespaced,
        };
        // Mutating webhooks with `reinvocationPolicy: IfNeeded`, and the
        // object as they left it.
        let mut reinvocable: Vec<(&Value, Value)> = Vec::new();
        for config in &configs {
            for hook in config
                .get("webhooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !self.interested(hook, &request, t, obj, call.old).await {
                    continue;
                }
                check_dry_run(hook, call)?;
                self.call_one(phase, hook, t, call, obj, warnings).await?;
                if phase == Phase::Mutating
                    && hook.get("reinvocationPolicy").and_then(Value::as_str) == Some("IfNeeded")
                {
                    reinvocable.push((hook, obj.clone()));
                }
            }
        }
        // As upstream: a webhook that asked for it is called once more
        // when later webhooks changed the object after it.
        for (hook, left) in reinvocable {
            if *obj != left {
                self.call_one(phase, hook, t, call, obj, warnings).await?;
            }
        }
        Ok(())
    }

    async fn interested(
        &self,
        hook: &Value,
        request: &matching::Request<'_>,
        t: &Target<'_>,
        obj: &Value,
        old: Option<&Value>,
    ) -> bool {
        if !matching::rules_match(hook.get("rules").unwrap_or(&Value::Null), request) {
            return false;
        }
        let object_selector = hook.get("objectSelector");
        let selected = matching::selects(object_selector, &matching::labels(obj))
            || old.is_some_and(|o| matching::selects(object_selector, &matching::labels(o)));
        if !selected {
            return false;
        }
        let namespace_selector = hook.get("namespaceSelector");
        if t.r.group.is_empty() && t.r.kind == "Namespace" {
            let ns = if obj.is_null() {
                old.unwrap_or(obj)
            } else {
                obj
            };
            return matching::selects(namespace_selector, &matching::labels(ns));
        }
        let Some(ns) = t.namespace.as_deref().filter(|_| t.r.namespaced) else {
            return true;
        };
        let ns_labels = self
            .lookup("namespaces", None, ns)
            .await
            .map(|n| matching::labels(&n))
            .unwrap_or_default();
        matching::selects(namespace_selector, &ns_labels)
    }

    async fn endpoint(&self, hook: &Value) -> Result<client::Endpoint, client::CallError> {
        let config = hook.get("clientConfig").unwrap_or(&Value::Null);
        if let Some(url) = config.get("url").and_then(Value::as_str) {
            return client::url_endpoint(url);
        }
        let service = config.get("service").unwrap_or(&Value::Null);
        let text = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or_default();
        let (ns, name) = (text("namespace"), text("name"));
        let port = service.get("port").and_then(Value::as_u64).unwrap_or(443);
        let path = Some(text("path")).filter(|p| !p.is_empty()).unwrap_or("/");
        let host = format!("{name}.{ns}.svc");
        let ip = self
            .lookup("services", Some(ns), name)
            .await
            .and_then(|s| {
                s.pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .filter(|ip| !ip.is_empty() && *ip != "None")
                    .map(str::to_owned)
            })
            .ok_or_else(|| client::CallError::NoService(format!("{ns}/{name}")))?;
        let addr = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        Ok(client::Endpoint {
            addr,
            url: format!("https://{host}:{port}{path}"),
            server_name: host,
            path: path.to_owned(),
        })
    }

    fn review(&self, t: &Target<'_>, call: &Call<'_>, obj: &Value, uid: &str) -> Value {
        let user = super::requester::current();
        let kind = json!({"group": t.r.group, "version": t.r.version, "kind": t.r.kind});
        let resource = json!({"group": t.r.group, "version": t.r.version, "resource": t.r.plural});
        let options_kind = match call.operation {
            "CREATE" => "CreateOptions",
            "DELETE" => "DeleteOptions",
            _ => "UpdateOptions",
        };
        let mut request = json!({
            "uid": uid,
            "kind": kind, "resource": resource,
            "requestKind": kind, "requestResource": resource,
            "name": t.name.clone().unwrap_or_default(),
            "operation": call.operation,
            "userInfo": {
                "username": user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
                "uid": user.as_ref().map(|u| u.uid.clone()).unwrap_or_default(),
                "groups": user.as_ref().map(|u| u.groups.clone()).unwrap_or_default(),
            },
            "object": obj,
            "oldObject": call.old,
            "dryRun": call.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
        });
        if let Some(ns) = t.namespace.as_deref().filter(|_| t.r.namespaced) {
            request["namespace"] = json!(ns);
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    }

    async fn call_one(
        &self,
        phase: Phase,
        hook: &Value,
        t: &Target<'_>,
        call: &Call<'_>,
        obj: &mut Value,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let name = hook.get("name").and_then(Value::as_str).unwrap_or_default();
        let ignore = hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore");
        let seconds = hook
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 30);
        let uid = uuid::Uuid::new_v4().to_string();
        let review = self.review(t, call, obj, &uid);
        let ca = hook
            .pointer("/clientConfig/caBundle")
            .and_then(Value::as_str);
        let answer = match self.endpoint(hook).await {
            Ok(endpoint) => {
                client::post(&endpoint, ca, &review, Duration::from_secs(seconds)).await
            }
            Err(e) => Err(e),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) if ignore => {
                tracing::warn!(webhook = name, error = %e, "failed calling webhook; ignored (failurePolicy Ignore)");
                return Ok(());
            }
            Err(e) => return Err(failed_calling(name, e)),
        };
        let Some(response) = answer.get("response") else {
            return Err(failed_calling(
                name,
                "received invalid webhook response: no response",
            ));
        };
        if response.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
            return Err(failed_calling(
                name,
                format!(
                    "expected response.uid={uid:?}, got {:?}",
                    response
                        .get("uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
            ));
        }
        warnings.extend(
            response
                .get("warnings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(warning),
        );
        if response.get("allowed").and_then(Value::as_bool) != Some(true) {
            return Err(denial(name, response.get("status")));
        }
        let Some(patch) = response.get("patch").and_then(Value::as_str) else {
            return Ok(());
        };
        // A deletion has no object to patch.
        if phase == Phase::Validating || call.operation == "DELETE" {
            return Ok(());
        }
        let ops = STANDARD
            .decode(patch)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<json_patch::Patch>(&bytes).ok())
            .ok_or_else(|| {
                failed_calling(name, "received invalid webhook response: bad JSONPatch")
            })?;
        let mut patched = obj.clone();
        json_patch::patch(&mut patched, &ops)
            .map_err(|e| failed_calling(name, format!("applying its patch: {e}")))?;
        *obj = patched;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_read_as_upstream() {
        let e = denial(
            "deny.example.com",
            Some(&json!({"code": 400, "message": "no thanks"})),
        );
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"deny.example.com\" denied the request: no thanks"
        );
        let e = denial("d", None);
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request without explanation"
        );
    }
}
