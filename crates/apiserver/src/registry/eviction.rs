//! `pods/eviction` (policy/v1 Eviction), as upstream: a pod covered by a
//! PodDisruptionBudget is deleted only while the budget allows a
//! disruption — the budget's `disruptionsAllowed` is decremented and the
//! pod recorded in `disruptedPods` in the same step — otherwise the answer
//! is 429, which `kubectl drain` retries. Pods that are not running
//! (pending, finished, already deleting) are deleted without a budget.

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use skiff_apimachinery::selectors::LabelSelector;

use super::body::decode_object;
use super::write::{Part, dry_run};
use super::{Query, Registry, Target, json_response};
use crate::object;
use crate::status::ApiError;

fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Pods a budget does not protect (upstream's canIgnorePDB).
fn ignores_budgets(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed" | "Pending")
        )
}

/// Whether a budget's selector covers the pod (in policy/v1 an empty
/// selector covers every pod of the namespace, a missing one none).
fn covers(pdb: &Value, pod_labels: &std::collections::BTreeMap<String, String>) -> bool {
    let Some(selector) = pdb.pointer("/spec/selector") else {
        return false;
    };
    LabelSelector::from_json(selector).is_ok_and(|s| s.matches(pod_labels))
}

fn int(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn too_many_requests(message: &str, cause: String) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", message);
    e.details = Some(json!({
        "causes": [{"reason": "DisruptionBudget", "message": cause}],
        "retryAfterSeconds": 10,
    }));
    e
}

/// The budget after one more disruption of `pod`, or why there is none.
fn take_disruption(pdb: &Value, pod: &Value, pod_name: &str) -> Result<Value, ApiError> {
    let name = object::name(pdb).unwrap_or_default();
    if int(pdb, "/status/observedGeneration") < int(pdb, "/metadata/generation") {
        return Err(too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            format!("The disruption budget {name} is still being processed by the server."),
        ));
    }
    let allowed = int(pdb, "/status/disruptionsAllowed");
    let healthy = int(pdb, "/status/currentHealthy");
    let desired = int(pdb, "/status/desiredHealthy");
    if !is_ready(pod) {
        // An unhealthy pod does not count toward the budget: evicting it
        // costs nothing if the budget is met (IfHealthyBudget) or always
        // (AlwaysAllow).
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
            .unwrap_or("IfHealthyBudget");
        if policy == "AlwaysAllow" || healthy >= desired {
            return Ok(pdb.clone());
        }
    }
    if allowed < 0 {
        return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            format!(
                "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
            ),
        ));
    }
    let mut next = pdb.clone();
    next["status"]["disruptionsAllowed"] = json!(allowed - 1);
    let disrupted = next["status"]
        .as_object_mut()
        .map(|s| s.entry("disruptedPods").or_insert_with(|| json!({})));
    if let Some(map) = disrupted.and_then(Value::as_object_mut) {
        map.insert(pod_name.to_owned(), json!(object::now_rfc3339()));
    }
    Ok(next)
}

impl Registry {
    /// `pods/eviction`: delete the pod if its disruption budget allows.
    pub(super) async fn evict(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let eviction = if body.is_empty() {
            json!({})
        } else {
            decode_object(headers, &body)?
        };
        let pod = self.read_object(t).await?;
        super::node_restriction::admit_delete(t.r, &pod)?;
        let pod_name = t.name.clone().unwrap_or_default();
        let dry = dry_run(query)
            || eviction
                .pointer("/deleteOptions/dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| !d.is_empty());
        if !ignores_budgets(&pod) {
            let pdbs = self
                .resources
                .find("policy", "v1", "poddisruptionbudgets")
                .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))?;
            let all = Target {
                r: &pdbs,
                namespace: t.namespace.clone(),
                name: None,
            };
            let pod_labels = labels(&pod);
            let matching: Vec<Value> = self
                .list_page(&all, &Query::new())
                .await?
                .items
                .into_iter()
                .filter(|pdb| covers(pdb, &pod_labels))
                .collect();
            if matching.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = matching.first() {
                let target = Target {
                    r: &pdbs,
                    namespace: t.namespace.clone(),
                    name: object::name(pdb).map(str::to_owned),
                };
                self.update_object(&target, None, dry, Part::Status, |cur| {
                    take_disruption(cur, &pod, &pod_name)
                })
                .await?;
            }
        }
        let options = eviction
            .get("deleteOptions")
            .filter(|o| o.is_object())
            .map(|o| Bytes::from(o.to_string()))
            .unwrap_or_default();
        self.delete(t, query, options).await?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(allowed: i64, healthy: i64, desired: i64) -> Value {
        json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 1, "disruptionsAllowed": allowed,
                "currentHealthy": healthy, "desiredHealthy": desired},
        })
    }

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn a_budget_allows_what_it_has() {
        let next = take_disruption(&pdb(1, 3, 2), &pod(true), "web-1").unwrap_or_default();
        assert_eq!(next["status"]["disruptionsAllowed"], 0);
        assert!(next["status"]["disruptedPods"]["web-1"].is_string());
        let e = take_disruption(&pdb(0, 2, 2), &pod(true), "web-1").err();
        assert_eq!(e.as_ref().map(|e| e.code), Some(429));
        assert_eq!(
            e.and_then(|e| e.details)
                .map(|d| d["causes"][0]["message"].clone()),
            Some(json!(
                "The disruption budget web needs 2 healthy pods and has 2 currently"
            ))
        );
        // An unready pod of a satisfied budget goes for free.
        let free = take_disruption(&pdb(0, 2, 2), &pod(false), "web-1").unwrap_or_default();
        assert_eq!(free["status"]["disruptionsAllowed"], 0);
        // A budget not yet processed refuses.
        let mut stale = pdb(1, 3, 2);
        stale["metadata"]["generation"] = json!(2);
        assert_eq!(
            take_disruption(&stale, &pod(true), "p")
                .err()
                .map(|e| e.code),
            Some(429)
        );
        assert!(covers(&pdb(1, 1, 1), &labels(&pod(true))));
        assert!(!covers(&json!({"spec": {}}), &labels(&pod(true))));
        assert!(ignores_budgets(&json!({"status": {"phase": "Pending"}})));
    }
}
