//! InterPodAffinity's required terms: PreFilter builds three topology
//! pair counts once, Filter reads the node's pairs (O(terms + node
//! labels) per node), AddPod/RemovePod keep the counts right for
//! nominated pods and preemption.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::framework::parallel::map_range;
use k8s_openapi::api::core::v1::Pod;

use super::{
    AffinityTerm, ERR_REASON_AFFINITY_RULES_NOT_MATCH, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
    ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH, TopologyCounts, existing_terms, matches_all,
    namespace_labels, owned_terms, required_affinity_terms, required_anti_affinity_terms,
};
use crate::framework::{CycleState, NodeInfo, PodInfo, PreFilterResult, Snapshot, Status};
use crate::plugins::selector::NO_LABELS;

pub(super) const STATE_KEY: &str = "PreFilterInterPodAffinity";

#[derive(Clone, Debug)]
pub(super) struct PreFilterState {
    /// Pairs where an existing pod's required anti-affinity matches the
    /// incoming pod (the incoming pod may not go there).
    pub existing_anti_affinity: TopologyCounts,
    /// Pairs with existing pods matching all the incoming pod's required
    /// affinity terms.
    pub affinity: TopologyCounts,
    /// Pairs with existing pods matching one of the incoming pod's
    /// required anti-affinity terms.
    pub anti_affinity: TopologyCounts,
    pub affinity_terms: Arc<Vec<AffinityTerm<'static>>>,
    pub anti_affinity_terms: Arc<Vec<AffinityTerm<'static>>>,
    /// The incoming pod's namespace's labels.
    pub namespace_labels: Arc<BTreeMap<String, String>>,
}

pub(super) fn pre_filter(
    state: &mut CycleState,
    pod: &Pod,
    snapshot: &Snapshot,
) -> Result<PreFilterResult, Status> {
    let affinity_terms = owned_terms(required_affinity_terms(pod), snapshot);
    let anti_affinity_terms = owned_terms(required_anti_affinity_terms(pod), snapshot);
    let ns_labels = namespace_labels(pod, snapshot);

    // Existing pods' required anti-affinity: only nodes holding such pods.
    let holders: Vec<&Arc<NodeInfo>> = snapshot.with_required_anti_affinity_pods().collect();
    let existing_anti_affinity = map_range(0..holders.len(), |i| {
        let info = holders[i];
        let mut counts = TopologyCounts::default();
        for existing in &info.pods_with_required_anti_affinity {
            for t in &existing_terms(existing).required_anti_affinity {
                if t.matches(pod, &ns_labels) {
                    counts.update(&info.node, &t.topology_key, 1);
                }
            }
        }
        counts
    })
    .into_iter()
    .fold(TopologyCounts::default(), |mut a, b| {
        a.merge(b);
        a
    });

    // The incoming pod's required terms: every pod of every node.
    let (affinity, anti_affinity) = if affinity_terms.is_empty() && anti_affinity_terms.is_empty() {
        (TopologyCounts::default(), TopologyCounts::default())
    } else {
        map_range(0..snapshot.nodes.len(), |i| {
            let info = &snapshot.nodes[i];
            let mut affinity = TopologyCounts::default();
            let mut anti = TopologyCounts::default();
            for existing in &info.pods {
                if matches_all(&affinity_terms, &existing.pod) {
                    for t in affinity_terms.iter() {
                        affinity.update(&info.node, &t.topology_key, 1);
                    }
                }
                for t in anti_affinity_terms.iter() {
                    if t.matches(&existing.pod, &NO_LABELS) {
                        anti.update(&info.node, &t.topology_key, 1);
                    }
                }
            }
            (affinity, anti)
        })
        .into_iter()
        .fold(
            (TopologyCounts::default(), TopologyCounts::default()),
            |mut a, b| {
                a.0.merge(b.0);
                a.1.merge(b.1);
                a
            },
        )
    };

    if existing_anti_affinity.is_empty()
        && affinity_terms.is_empty()
        && anti_affinity_terms.is_empty()
    {
        return Err(Status::skip());
    }
    state.write(
        STATE_KEY,
        PreFilterState {
            existing_anti_affinity,
            affinity,
            anti_affinity,
            affinity_terms: Arc::new(affinity_terms),
            anti_affinity_terms: Arc::new(anti_affinity_terms),
            namespace_labels: Arc::new(ns_labels),
        },
    );
    Ok(None)
}

/// Upstream's `preFilterState.updateWithPod`: `pod_info` now counts
/// (`delta` 1) or no longer counts (-1) on `node`.
pub(super) fn update_with_pod(
    state: &mut CycleState,
    pod: &Pod,
    pod_info: &PodInfo,
    node: &NodeInfo,
    delta: i64,
) -> Status {
    // No state: PreFilter said Skip, nothing to keep up to date.
    let Some(s) = state.read_mut::<PreFilterState>(STATE_KEY) else {
        return Status::success();
    };
    let node = &node.node;
    let other = &pod_info.pod;
    for t in &existing_terms(pod_info).required_anti_affinity {
        if t.matches(pod, &s.namespace_labels) {
            s.existing_anti_affinity
                .update(node, &t.topology_key, delta);
        }
    }
    if matches_all(&s.affinity_terms, other) {
        let terms = s.affinity_terms.clone();
        for t in terms.iter() {
            s.affinity.update(node, &t.topology_key, delta);
        }
    }
    let terms = s.anti_affinity_terms.clone();
    for t in terms.iter() {
        if t.matches(other, &NO_LABELS) {
            s.anti_affinity.update(node, &t.topology_key, delta);
        }
    }
    Status::success()
}

/// Upstream's `satisfyPodAffinity`: every term's pair on this node has a
/// matching pod — or no pod anywhere matches and the pod matches its own
/// terms (the first pod of a group that wants to be together).
fn satisfies_affinity(s: &PreFilterState, pod: &Pod, node: &NodeInfo) -> bool {
    let mut pods_exist = true;
    for t in s.affinity_terms.iter() {
        let Some(value) = t.topology_value(&node.node) else {
            // All topology labels must exist on the node.
            return false;
        };
        if s.affinity.get(&t.topology_key, value) <= 0 {
            pods_exist = false;
        }
    }
    pods_exist || (s.affinity.is_empty() && matches_all(&s.affinity_terms, pod))
}

/// Upstream's `satisfyPodAntiAffinity`.
fn satisfies_anti_affinity(s: &PreFilterState, node: &NodeInfo) -> bool {
    s.anti_affinity.is_empty()
        || !s.anti_affinity_terms.iter().any(|t| {
            t.topology_value(&node.node)
                .is_some_and(|v| s.anti_affinity.get(&t.topology_key, v) > 0)
        })
}

/// Upstream's `satisfyExistingPodsAntiAffinity`: none of the node's
/// pairs is forbidden by an existing pod.
fn satisfies_existing_anti_affinity(s: &PreFilterState, node: &NodeInfo) -> bool {
    s.existing_anti_affinity.is_empty()
        || !node
            .node
            .metadata
            .labels
            .iter()
            .flatten()
            .any(|(k, v)| s.existing_anti_affinity.get(k, v) > 0)
}

pub(super) fn filter(state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
    let Some(s) = state.read::<PreFilterState>(STATE_KEY) else {
        return Status::error(format!(
            "error reading {STATE_KEY:?} from cycleState: not found"
        ));
    };
    if !satisfies_affinity(s, pod, node) {
        // Preempting pods cannot create a pod to be near.
        return Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH);
    }
    if !satisfies_anti_affinity(s, node) {
        return Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH);
    }
    if !satisfies_existing_anti_affinity(s, node) {
        return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH);
    }
    Status::success()
}
