//! PodTopologySpread's soft constraints (`ScheduleAnyway`, and the
//! default constraints): PreScore counts matching pods per domain over all
//! nodes (only domains some feasible node is in); Score sums, per
//! constraint, the node's domain count weighted by log(#domains + 2) plus
//! `maxSkew - 1`; NormalizeScore reverses it so emptier domains win.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::framework::parallel::map_range;
use k8s_openapi::api::core::v1::Pod;

use super::{
    Constraint, Inclusion, LABEL_HOSTNAME, PodTopologySpread, SCHEDULE_ANYWAY, count_matching,
    node_has_all_keys,
};
use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, Snapshot, Status};

pub(super) const STATE_KEY: &str = "PreScorePodTopologySpread";

#[derive(Clone, Debug)]
pub(super) struct PreScoreState {
    pub constraints: Vec<Constraint>,
    /// Feasible nodes missing some topology key: scored 0.
    pub ignored: HashSet<String>,
    /// Per constraint: domain → matching pods (not for hostname
    /// constraints, whose counts are the node's own, taken in Score).
    pub counts: Vec<HashMap<String, i64>>,
    /// Per constraint: log(#domains + 2), so that counts in small
    /// topologies are not watered down by large ones.
    pub weights: Vec<f64>,
}

/// Upstream's `topologyNormalizingWeight`.
pub(super) fn topology_weight(size: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let size = size as f64;
    (size + 2.0).ln()
}

pub(super) fn pre_score(
    pl: &PodTopologySpread,
    state: &mut CycleState,
    pod: &Pod,
    snapshot: &Snapshot,
    feasible: &[Arc<NodeInfo>],
) -> Status {
    if feasible.is_empty() || snapshot.is_empty() {
        return Status::skip();
    }
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty());
    // Only the system defaults let a node without a zone label still be
    // spread by hostname.
    let require_all = own || !pl.system_defaulted;
    let constraints = pl.constraints(pod, SCHEDULE_ANYWAY);
    if constraints.is_empty() {
        return Status::skip();
    }
    let mut ignored = HashSet::new();
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    for info in feasible {
        let node = &info.node;
        if require_all && !node_has_all_keys(node, &constraints) {
            ignored.insert(info.name().to_owned());
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key == LABEL_HOSTNAME {
                continue;
            }
            // A missing key reads as "" (upstream): it sizes the topology
            // but no node without the key is ever scored by it.
            let value = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(&c.topology_key))
                .map_or("", String::as_str);
            if !counts[i].contains_key(value) {
                counts[i].insert(value.to_owned(), 0);
            }
        }
    }
    let weights = constraints
        .iter()
        .zip(&counts)
        .map(|(c, m)| {
            let size = if c.topology_key == LABEL_HOSTNAME {
                feasible.len() - ignored.len()
            } else {
                m.len()
            };
            topology_weight(size)
        })
        .collect();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let per_node: Vec<Vec<(usize, &str, i64)>> = map_range(0..snapshot.nodes.len(), |n| {
        let info = &snapshot.nodes[n];
        let node = &info.node;
        if require_all && !node_has_all_keys(node, &constraints) {
            return Vec::new();
        }
        let mut inclusion = Inclusion::new(pod, node);
        let mut found = Vec::new();
        for (i, c) in constraints.iter().enumerate() {
            if !inclusion.allows(c) {
                continue;
            }
            let value = node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(&c.topology_key))
                .map_or("", String::as_str);
            // Only domains of feasible nodes matter (never hostname).
            if !counts[i].contains_key(value) {
                continue;
            }
            found.push((i, value, count_matching(&info.pods, &c.selector, ns)));
        }
        found
    });
    for (i, value, n) in per_node.into_iter().flatten() {
        if let Some(c) = counts[i].get_mut(value) {
            *c += n;
        }
    }
    state.write(
        STATE_KEY,
        PreScoreState {
            constraints,
            ignored,
            counts,
            weights,
        },
    );
    Status::success()
}

pub(super) fn score(state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
    let Some(s) = state.read::<PreScoreState>(STATE_KEY) else {
        return Err(Status::error(format!(
            "error reading {STATE_KEY:?} from cycleState: not found"
        )));
    };
    if s.ignored.contains(node.name()) {
        return Ok(0);
    }
    let labels = node.node.metadata.labels.as_ref();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let mut score = 0.0;
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(value) = labels.and_then(|l| l.get(&c.topology_key)) else {
            continue;
        };
        let count = if c.topology_key == LABEL_HOSTNAME {
            count_matching(&node.pods, &c.selector, ns)
        } else {
            s.counts[i].get(value).copied().unwrap_or(0)
        };
        #[allow(clippy::cast_precision_loss)]
        let count = count as f64;
        score += count * s.weights[i] + f64::from(c.max_skew - 1);
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(score.round() as i64)
}

/// Upstream's NormalizeScore: `100 * (max + min - s) / max` over the
/// scored nodes (fewest matching pods → 100), ignored nodes 0.
pub(super) fn normalize_score(state: &CycleState, scores: &mut [NodeScore]) -> Status {
    let Some(s) = state.read::<PreScoreState>(STATE_KEY) else {
        return Status::success();
    };
    let mut min = i64::MAX;
    let mut max = 0;
    let mut ignored = vec![false; scores.len()];
    for (i, n) in scores.iter().enumerate() {
        if s.ignored.contains(&n.name) {
            ignored[i] = true;
            continue;
        }
        min = min.min(n.score);
        max = max.max(n.score);
    }
    for (n, ignored) in scores.iter_mut().zip(ignored) {
        n.score = if ignored {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - n.score) / max
        };
    }
    Status::success()
}
