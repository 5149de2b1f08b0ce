//! What the replica-keeping loop needs from the object that owns the pods,
//! so one loop serves both ReplicaSets and ReplicationControllers (upstream
//! also runs the ReplicationController controller as the ReplicaSet one
//! over a conversion layer).

use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::pods;

/// A workload that keeps `replicas` pods from a template: ReplicaSet or
/// ReplicationController.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The Events source (upstream's component name for this controller).
    const COMPONENT: &'static str;

    /// Whether the owner has a spec at all (nothing to do otherwise).
    fn has_spec(&self) -> bool;

    /// Whether pods with `labels` fall under the owner's selector.
    fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool;

    /// `spec.replicas` (the API server defaults it to 1).
    fn replicas(&self) -> Option<i32>;

    fn template(&self) -> Option<&PodTemplateSpec>;

    fn min_ready_seconds(&self) -> i32;

    /// The status as last written, in the shape both kinds share.
    fn replica_status(&self) -> ReplicaStatus;
}

/// The status fields ReplicaSets and ReplicationControllers share (their
/// JSON is the same, which is how both kinds are read: [`ReplicaStatus::of`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub replicas: i32,
    pub fully_labeled_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
}

/// A status condition (same fields in both kinds).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl ReplicaStatus {
    /// Either kind's `status` (absent or unreadable: all zero).
    pub fn of<S: serde::Serialize>(status: Option<&S>) -> ReplicaStatus {
        status
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }
}

/// The controller reference pods of `owner` carry.
pub fn controller_ref<K: ReplicaOwner>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether an ownerReference names an object of kind `K` (any version of
/// its group, as upstream resolves controller references).
pub fn refers_to<K: ReplicaOwner>(r: &OwnerReference) -> bool {
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    r.kind == K::kind(&()) && group == K::group(&())
}

impl ReplicaOwner for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";

    fn has_spec(&self) -> bool {
        self.spec.is_some()
    }

    fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.spec
            .as_ref()
            .is_some_and(|s| pods::selector_matches(&s.selector, labels))
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
    use k8s_openapi::api::core::v1::ReplicationController;

    fn reference(api_version: &str, kind: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn references_match_by_group_and_kind() {
        assert!(refers_to::<ReplicaSet>(&reference(
            "apps/v1beta2",
            "ReplicaSet"
        )));
        assert!(!refers_to::<ReplicaSet>(&reference("v1", "ReplicaSet")));
        assert!(refers_to::<ReplicationController>(&reference(
            "v1",
            "ReplicationController"
        )));
        assert!(!refers_to::<ReplicationController>(&reference(
            "apps/v1",
            "ReplicationController"
        )));
    }
}
