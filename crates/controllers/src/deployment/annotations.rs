//! The annotations a Deployment keeps on its ReplicaSets (upstream's
//! deployment util): the revision and its history (`kubectl rollout
//! history`), the Deployment's own annotations such as
//! `kubernetes.io/change-cause`, and the desired/max replica counts that
//! proportional scaling reads back.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;

/// Revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a reused ReplicaSet had, comma-separated.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment at that moment.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Upstream caps the revision history annotation at this many characters.
const MAX_HISTORY_CHARS: usize = 2000;

/// Deployment annotations never copied onto ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The revision number recorded on an object (0 when absent or garbled).
pub fn revision(annotations: &BTreeMap<String, String>) -> i64 {
    annotations
        .get(REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet's annotations as the new ReplicaSet of `d` at
/// `new_revision` should carry them (upstream's
/// SetNewReplicaSetAnnotations): the Deployment's copyable annotations,
/// the revision, and the revision it had before in the history.
pub fn new_replicaset_annotations(
    d: &Deployment,
    rs: &ReplicaSet,
    new_revision: i64,
) -> BTreeMap<String, String> {
    let mut out = rs.annotations().clone();
    for (k, v) in d.annotations() {
        if !NOT_COPIED.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    let old = revision(rs.annotations());
    if old < new_revision {
        out.insert(REVISION.to_owned(), new_revision.to_string());
        if old > 0 {
            let mut history = out.get(REVISION_HISTORY).cloned().unwrap_or_default();
            if !history.is_empty() {
                history.push(',');
            }
            history.push_str(&old.to_string());
            while history.len() > MAX_HISTORY_CHARS {
                match history.split_once(',') {
                    Some((_, rest)) => history = rest.to_owned(),
                    None => history.clear(),
                }
            }
            out.insert(REVISION_HISTORY.to_owned(), history);
        }
    }
    out
}

/// Sets the desired/max replica annotations; whether anything changed.
pub fn set_replicas_annotations(
    annotations: &mut BTreeMap<String, String>,
    desired: i32,
    max: i32,
) -> bool {
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_owned(), value);
            changed = true;
        }
    }
    changed
}

/// A recorded replica count annotation, if present and valid.
pub fn replicas_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(annotations: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d", "annotations": annotations}}))
            .unwrap_or_default()
    }

    #[test]
    fn copies_change_cause_but_not_apply_state() {
        let d = deployment(json!({
            "kubernetes.io/change-cause": "kubectl set image",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            REVISION: "7",
        }));
        let a = new_replicaset_annotations(&d, &ReplicaSet::default(), 3);
        assert_eq!(
            a.get("kubernetes.io/change-cause").map(String::as_str),
            Some("kubectl set image")
        );
        assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert!(!a.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn a_reused_replicaset_remembers_its_revisions() {
        let d = deployment(json!({}));
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {
            "annotations": {REVISION: "1", REVISION_HISTORY: "0"},
        }}))
        .unwrap_or_default();
        let a = new_replicaset_annotations(&d, &rs, 3);
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("0,1"));
    }

    #[test]
    fn replicas_annotations_report_changes() {
        let mut a = BTreeMap::new();
        assert!(set_replicas_annotations(&mut a, 3, 4));
        assert!(!set_replicas_annotations(&mut a, 3, 4));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    }
}
