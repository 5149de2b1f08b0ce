//! The status a ReplicaSet or ReplicationController reports, as upstream's
//! calculateStatus: counts of the pods it owns and the `ReplicaFailure`
//! condition, which tells users why the count is not converging (a create
//! refused by admission, a delete that failed) without reading Events.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::owner::{Condition, ReplicaOwner, ReplicaStatus};
use super::pods;

/// The condition type set while creating or deleting pods fails.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Why the last attempt to reach `spec.replicas` failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The API's message for the failed request.
    pub message: String,
}

/// The status `owner` should report for the pods it owns (claimed before
/// acting, as upstream), given the outcome of this sync's creates/deletes.
pub fn desired<K: ReplicaOwner>(
    owner: &K,
    owned: &[Arc<Pod>],
    failure: Option<&Failure>,
    now: Timestamp,
) -> ReplicaStatus {
    let template_labels = owner
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = i64::from(owner.min_ready_seconds());
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let current = owner.replica_status();
    let mut conditions = current.conditions;
    let failing = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some(f) if !failing => {
            let diff = i64::try_from(owned.len()).unwrap_or(i64::MAX)
                - i64::from(owner.replicas().unwrap_or(1));
            let reason = match diff.signum() {
                -1 => "FailedCreate",
                1 => "FailedDelete",
                _ => "",
            };
            conditions.push(Condition {
                type_: REPLICA_FAILURE.to_owned(),
                status: "True".to_owned(),
                reason: Some(reason.to_owned()).filter(|r| !r.is_empty()),
                message: Some(f.message.clone()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if failing => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    ReplicaStatus {
        replicas: count(owned.len()),
        fully_labeled_replicas: count(fully_labeled),
        ready_replicas: count(owned.iter().filter(|p| pods::is_ready(p)).count()),
        available_replicas: count(
            owned
                .iter()
                .filter(|p| pods::is_available(p, min_ready, now))
                .count(),
        ),
        observed_generation: owner.meta().generation,
        conditions,
    }
}

/// The merge patch that writes `next` over `current`; `None` when nothing
/// changed (upstream skips the write too).
pub fn patch(current: &ReplicaStatus, next: &ReplicaStatus) -> Option<Value> {
    if current == next {
        return None;
    }
    let conditions = if next.conditions.is_empty() {
        Value::Null
    } else {
        serde_json::to_value(&next.conditions).unwrap_or(Value::Null)
    };
    Some(json!({"status": {
        "replicas": next.replicas,
        "fullyLabeledReplicas": next.fully_labeled_replicas,
        "readyReplicas": next.ready_replicas,
        "availableReplicas": next.available_replicas,
        "observedGeneration": next.observed_generation,
        "conditions": conditions,
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;

    fn rs(replicas: i32, status: Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "a", "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a", "tier": "web"}}},
            },
            "status": status,
        }))
        .unwrap_or_default()
    }

    fn pod(labels: Value, ready: bool) -> Arc<Pod> {
        let status = if ready {
            json!({"conditions": [{"type": "Ready", "status": "True"}]})
        } else {
            json!({})
        };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"labels": labels}, "status": status}))
                .unwrap_or_default(),
        )
    }

    #[test]
    fn counts_owned_pods() {
        let owner = rs(3, json!({"replicas": 0}));
        let owned = [
            pod(json!({"app": "a", "tier": "web"}), true),
            pod(json!({"app": "a"}), false),
        ];
        let s = desired(&owner, &owned, None, Timestamp::now());
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(s.observed_generation, Some(2));
        let p = patch(&owner.replica_status(), &s).unwrap_or_default();
        assert_eq!(p["status"]["fullyLabeledReplicas"], 1);
        assert_eq!(p["status"]["conditions"], Value::Null);
        assert_eq!(patch(&s, &s), None);
    }

    #[test]
    fn replica_failure_set_once_and_cleared() {
        let owner = rs(3, json!({"replicas": 1}));
        let failure = Failure {
            message: "forbidden".to_owned(),
        };
        let owned = [pod(json!({"app": "a"}), false)];
        let s = desired(&owner, &owned, Some(&failure), Timestamp::now());
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].type_, "ReplicaFailure");
        assert_eq!(s.conditions[0].reason.as_deref(), Some("FailedCreate"));
        assert_eq!(s.conditions[0].message.as_deref(), Some("forbidden"));
        let p = patch(&owner.replica_status(), &s).unwrap_or_default();
        assert_eq!(p["status"]["conditions"][0]["type"], "ReplicaFailure");

        // Already failing: kept as is (not re-stamped).
        let failing = rs(
            1,
            json!({"replicas": 1, "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "old"}]}),
        );
        let again = desired(&failing, &owned, Some(&failure), Timestamp::now());
        assert_eq!(again.conditions[0].message.as_deref(), Some("old"));
        // Success removes it.
        let cleared = desired(&failing, &owned, None, Timestamp::now());
        assert!(cleared.conditions.is_empty());

        let surplus = [pod(json!({}), false), pod(json!({}), false)];
        let s = desired(
            &rs(1, json!({})),
            &surplus,
            Some(&failure),
            Timestamp::now(),
        );
        assert_eq!(s.conditions[0].reason.as_deref(), Some("FailedDelete"));
    }
}
