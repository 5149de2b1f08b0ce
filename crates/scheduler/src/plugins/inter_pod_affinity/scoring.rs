//! InterPodAffinity's soft side: PreScore sums, per topology pair, the
//! weights of the preferred terms (the incoming pod's over existing pods,
//! and existing pods' over the incoming pod) and existing pods' required
//! affinity terms the incoming pod matches (`hardPodAffinityWeight`);
//! Score adds up the node's pairs; NormalizeScore maps min..max to
//! 0..100.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::framework::parallel::map_range;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::{
    AffinityTerm, Args, TopologyCounts, existing_terms, namespace_labels, owned_weighted,
    preferred_affinity_terms, preferred_anti_affinity_terms,
};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, PodInfo, Snapshot, Status,
};
use crate::plugins::selector::NO_LABELS;

pub(super) const STATE_KEY: &str = "PreScoreInterPodAffinity";

#[derive(Clone, Debug)]
pub(super) struct PreScoreState {
    pub topology_score: TopologyCounts,
}

/// The incoming pod's side of PreScore.
struct Incoming<'a> {
    pod: &'a Pod,
    preferred_affinity: Vec<(AffinityTerm<'static>, i64)>,
    preferred_anti_affinity: Vec<(AffinityTerm<'static>, i64)>,
    namespace_labels: BTreeMap<String, String>,
    hard_weight: i64,
}

/// Upstream's `scoreMap.processTerm`: `weight × multiplier` on the
/// node's pair when `pod` matches the term. Zero sums stay (a pair that
/// was considered still makes the plugin score).
fn process_term(
    scores: &mut TopologyCounts,
    term: &AffinityTerm<'_>,
    weight: i64,
    pod: &Pod,
    ns_labels: &BTreeMap<String, String>,
    node: &Node,
    multiplier: i64,
) {
    if !term.matches(pod, ns_labels) {
        return;
    }
    if let Some(value) = term.topology_value(node) {
        scores.add(&term.topology_key, value, weight * multiplier, false);
    }
}

/// Upstream's `processExistingPod`.
fn process_existing_pod(
    scores: &mut TopologyCounts,
    incoming: &Incoming<'_>,
    existing: &PodInfo,
    node: &Node,
) {
    if node.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        return;
    }
    let other = &existing.pod;
    // The incoming pod's terms have their namespaceSelector merged.
    for (t, w) in &incoming.preferred_affinity {
        process_term(scores, t, *w, other, &NO_LABELS, node, 1);
    }
    for (t, w) in &incoming.preferred_anti_affinity {
        process_term(scores, t, *w, other, &NO_LABELS, node, -1);
    }
    if incoming.hard_weight > 0 {
        for t in &existing_terms(existing).required_affinity {
            process_term(
                scores,
                t,
                incoming.hard_weight,
                incoming.pod,
                &incoming.namespace_labels,
                node,
                1,
            );
        }
    }
    for (t, w) in &existing_terms(existing).preferred_affinity {
        process_term(
            scores,
            t,
            *w,
            incoming.pod,
            &incoming.namespace_labels,
            node,
            1,
        );
    }
    for (t, w) in &existing_terms(existing).preferred_anti_affinity {
        process_term(
            scores,
            t,
            *w,
            incoming.pod,
            &incoming.namespace_labels,
            node,
            -1,
        );
    }
}

pub(super) fn pre_score(
    args: &Args,
    state: &mut CycleState,
    pod: &Pod,
    snapshot: &Snapshot,
    feasible: &[Arc<NodeInfo>],
) -> Status {
    if feasible.is_empty() {
        return Status::skip();
    }
    let preferred_affinity = owned_weighted(preferred_affinity_terms(pod), snapshot);
    let preferred_anti_affinity = owned_weighted(preferred_anti_affinity_terms(pod), snapshot);
    let has_constraints = !preferred_affinity.is_empty() || !preferred_anti_affinity.is_empty();
    if args.ignore_preferred_terms_of_existing_pods && !has_constraints {
        return Status::skip();
    }
    // Without preferred terms of its own, only pods with affinity can
    // say anything about the incoming pod.
    let nodes: Vec<&Arc<NodeInfo>> = if has_constraints {
        snapshot.nodes.iter().collect()
    } else {
        snapshot.with_affinity_pods().collect()
    };
    if nodes.is_empty() {
        return Status::skip();
    }
    let incoming = Incoming {
        pod,
        preferred_affinity,
        preferred_anti_affinity,
        namespace_labels: namespace_labels(pod, snapshot),
        hard_weight: i64::from(args.hard_pod_affinity_weight),
    };
    let topology_score = map_range(0..nodes.len(), |i| {
        let info = &nodes[i];
        let mut scores = TopologyCounts::default();
        let pods = if has_constraints {
            &info.pods
        } else {
            &info.pods_with_affinity
        };
        for existing in pods {
            process_existing_pod(&mut scores, &incoming, existing, &info.node);
        }
        scores
    })
    .into_iter()
    .fold(TopologyCounts::default(), |mut a, b| {
        a.merge(b);
        a
    });
    if topology_score.is_empty() {
        return Status::skip();
    }
    state.write(STATE_KEY, PreScoreState { topology_score });
    Status::success()
}

/// The sum of the node's pairs' weights.
pub(super) fn score(state: &CycleState, node: &NodeInfo) -> Result<i64, Status> {
    let Some(s) = state.read::<PreScoreState>(STATE_KEY) else {
        return Err(Status::error(format!(
            "error reading {STATE_KEY:?} from cycleState: not found"
        )));
    };
    let Some(labels) = node.node.metadata.labels.as_ref() else {
        return Ok(0);
    };
    Ok(s.topology_score
        .0
        .iter()
        .filter_map(|(key, values)| values.get(labels.get(key)?).copied())
        .sum())
}

/// Upstream's NormalizeScore: `100 × (s − min) / (max − min)`, all 0
/// when every node scored the same.
pub(super) fn normalize_score(state: &CycleState, scores: &mut [NodeScore]) -> Status {
    if state
        .read::<PreScoreState>(STATE_KEY)
        .is_none_or(|s| s.topology_score.is_empty())
    {
        return Status::success();
    }
    let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
    let diff = max - min;
    for s in scores.iter_mut() {
        s.score = if diff > 0 {
            scale(s.score - min, diff)
        } else {
            0
        };
    }
    Status::success()
}

/// `100 × part / whole`, truncated as upstream's float conversion.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn scale(part: i64, whole: i64) -> i64 {
    (MAX_NODE_SCORE as f64 * (part as f64 / whole as f64)) as i64
}
