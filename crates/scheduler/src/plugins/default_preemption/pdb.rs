//! Which victims would violate a PodDisruptionBudget (upstream's
//! `filterPodsWithPDBViolation`): preemption honours budgets on a best
//! effort basis — it reprieves such pods first and prefers nodes where
//! fewer budgets break, but evicts them when nothing else makes room.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use skiff_apimachinery::selectors::LabelSelector;

use crate::framework::PodInfo;

/// A budget with its selector compiled once per preemption attempt
/// (every candidate node reuses it).
pub struct Budget {
    namespace: String,
    selector: LabelSelector,
    disruptions_allowed: i32,
    /// `status.disruptedPods`: evictions the API server already counted.
    disrupted: Vec<String>,
}

/// The budgets that can match a pod: an invalid, null or empty selector
/// matches nothing (upstream).
pub fn compile(pdbs: &[Arc<PodDisruptionBudget>]) -> Vec<Budget> {
    pdbs.iter()
        .filter_map(|pdb| {
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref())?;
            let selector = serde_json::to_value(selector)
                .ok()
                .and_then(|v| LabelSelector::from_json(&v).ok())
                .filter(|s| !s.is_empty())?;
            let status = pdb.status.as_ref();
            Some(Budget {
                namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
                selector,
                disruptions_allowed: status.map_or(0, |s| s.disruptions_allowed),
                disrupted: status
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .map(|d| d.keys().cloned().collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Splits `pods` into (violating, non-violating), keeping their order:
/// a pod violates when taking it (after the pods before it) leaves a
/// matching budget below zero.
pub fn split_by_violation(
    pods: Vec<Arc<PodInfo>>,
    budgets: &[Budget],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = budgets.iter().map(|b| b.disruptions_allowed).collect();
    let mut violating = Vec::new();
    let mut fine = Vec::new();
    let empty = BTreeMap::new();
    for info in pods {
        let meta = &info.pod.metadata;
        let labels = meta.labels.as_ref().unwrap_or(&empty);
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let mut violated = false;
        // A pod without labels matches no budget.
        if !labels.is_empty() {
            for (b, left) in budgets.iter().zip(allowed.iter_mut()) {
                if b.namespace != namespace
                    || !b.selector.matches(labels)
                    // Already counted by the API server: taking it again
                    // would count it twice.
                    || b.disrupted.iter().any(|d| d == name)
                {
                    continue;
                }
                *left -= 1;
                if *left < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(info);
        } else {
            fine.push(info);
        }
    }
    (violating, fine)
}
