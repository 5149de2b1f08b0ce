//! The ReplicationController controller (`replicationcontroller-controller`),
//! as upstream's: the ReplicaSet controller's loop
//! ([`crate::replicaset::run_for`]) over ReplicationControllers, whose
//! selector is a plain label map (the API server defaults it to the
//! template's labels) and whose pods carry a `v1` controller reference.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use tokio_util::sync::CancellationToken;

use crate::replicaset::owner::{ReplicaOwner, ReplicaStatus};
use crate::replicaset::{Error, Settings};

/// Runs the controller until `shutdown` (upstream's
/// `--concurrent-rc-syncs` default of 5 syncs in parallel).
pub async fn run(client: kube::Client, shutdown: CancellationToken) -> Result<(), Error> {
    crate::replicaset::run_for::<ReplicationController>(client, Settings::default(), shutdown).await
}

impl ReplicaOwner for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";

    fn has_spec(&self) -> bool {
        self.spec.is_some()
    }

    /// Upstream's `labels.SelectorFromSet`: every pair must match; an
    /// empty (or missing) map selects nothing here, since validation
    /// never lets one through and adopting every pod would be harmful.
    fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let Some(selector) = self.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return false;
        };
        !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }

    fn replicas(&self) -> Option<i32> {
        self.spec.as_ref().and_then(|s| s.replicas)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn replica_status(&self) -> ReplicaStatus {
        ReplicaStatus::of(self.status.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rc(selector: serde_json::Value) -> ReplicationController {
        serde_json::from_value(json!({"metadata": {"name": "a"}, "spec": {"selector": selector}}))
            .unwrap_or_default()
    }

    #[test]
    fn map_selector() {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(json!({"app": "a", "tier": "web"})).unwrap_or_default();
        assert!(rc(json!({"app": "a"})).selects(Some(&labels)));
        assert!(rc(json!({"app": "a", "tier": "web"})).selects(Some(&labels)));
        assert!(!rc(json!({"app": "b"})).selects(Some(&labels)));
        assert!(!rc(json!({"app": "a"})).selects(None));
        assert!(!rc(json!({})).selects(Some(&labels)));
    }

    #[test]
    fn status_reads_as_the_shared_shape() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 3,
                       "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]},
        }))
        .unwrap_or_default();
        let s = rc.replica_status();
        assert_eq!(
            (s.replicas, s.ready_replicas, s.available_replicas),
            (2, 1, 0)
        );
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].reason.as_deref(), Some("FailedCreate"));
    }
}
