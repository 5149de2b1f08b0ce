//! PodTopologySpread's hard constraints (`DoNotSchedule`): PreFilter
//! counts the matching pods of every domain once over all nodes, so that
//! Filter is O(constraints) per node; AddPod/RemovePod keep the counts
//! right for nominated pods and preemption's "what if".

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::parallel::map_range;
use k8s_openapi::api::core::v1::Pod;

use super::{
    Constraint, DO_NOT_SCHEDULE, ERR_REASON_CONSTRAINTS_NOT_MATCH, ERR_REASON_NODE_LABEL_NOT_MATCH,
    Inclusion, PodTopologySpread, count_matching, node_has_all_keys,
};
use crate::framework::{CycleState, NodeInfo, PodInfo, PreFilterResult, Snapshot, Status};
use crate::plugins::selector::pod_labels;

pub(super) const STATE_KEY: &str = "PreFilterPodTopologySpread";

/// Upstream's `criticalPaths`: the two domains with the fewest matching
/// pods, `[0]` always the minimum. Two are enough because preemption
/// only changes one node at a time on its own copy of the state.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct CriticalPaths([(String, i64); 2]);

impl CriticalPaths {
    fn new() -> Self {
        let none = (String::new(), i64::from(i32::MAX));
        CriticalPaths([none.clone(), none])
    }

    /// Upstream's `criticalPaths.update`, quirks included.
    fn update(&mut self, value: &str, num: i64) {
        let p = &mut self.0;
        let at = if value == p[0].0 {
            Some(0)
        } else if value == p[1].0 {
            Some(1)
        } else {
            None
        };
        match at {
            Some(i) => {
                p[i].1 = num;
                if p[0].1 > p[1].1 {
                    p.swap(0, 1);
                }
            }
            None => {
                if num < p[0].1 {
                    p[1] = p[0].clone();
                    p[0] = (value.to_owned(), num);
                } else if num < p[1].1 {
                    p[1] = (value.to_owned(), num);
                }
            }
        }
    }

    pub(super) fn min(&self) -> i64 {
        self.0[0].1
    }
}

/// What Filter needs, per constraint: matching pods per domain (every
/// eligible domain is present, possibly with 0) and the critical paths.
#[derive(Clone, Debug)]
pub(super) struct PreFilterState {
    pub constraints: Arc<Vec<Constraint>>,
    pub paths: Vec<CriticalPaths>,
    pub counts: Vec<HashMap<String, i64>>,
}

impl PreFilterState {
    /// Upstream's `minMatchNum`: the global minimum, 0 while fewer
    /// domains than `minDomains` exist.
    fn min_match(&self, i: usize, min_domains: i32) -> i64 {
        let domains = self.counts[i].len();
        if i64::try_from(domains).unwrap_or(i64::MAX) < i64::from(min_domains) {
            0
        } else {
            self.paths[i].min()
        }
    }
}

pub(super) fn pre_filter(
    pl: &PodTopologySpread,
    state: &mut CycleState,
    pod: &Pod,
    snapshot: &Snapshot,
) -> Result<PreFilterResult, Status> {
    let constraints = pl.constraints(pod, DO_NOT_SCHEDULE);
    if constraints.is_empty() {
        return Err(Status::skip());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    // Counts remembered from earlier attempts, per constraint.
    let keys: Vec<String> = constraints
        .iter()
        .map(|c| format!("{ns}\u{0}{:?}", c.selector))
        .collect();
    let memos: Vec<_> = keys.iter().map(|k| pl.memo.get(k)).collect();
    // Per node: (constraint, domain, matching pods, counted afresh) for
    // the constraints the node counts for.
    let per_node: Vec<Vec<(usize, &str, i64, bool)>> = map_range(0..snapshot.nodes.len(), |n| {
        let info = &snapshot.nodes[n];
        let node = &info.node;
        if !node_has_all_keys(node, &constraints) {
            return Vec::new();
        }
        let labels = node.metadata.labels.as_ref();
        let mut inclusion = Inclusion::new(pod, node);
        constraints
            .iter()
            .enumerate()
            .filter(|(_, c)| inclusion.allows(c))
            .filter_map(|(i, c)| {
                let value = labels?.get(&c.topology_key)?;
                let (n, fresh) = match memos[i].get(info.name()) {
                    Some(&(generation, n)) if generation == info.generation => (n, false),
                    _ => (count_matching(&info.pods, &c.selector, ns), true),
                };
                Some((i, value.as_str(), n, fresh))
            })
            .collect()
    });
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    let mut fresh: Vec<Vec<(String, u64, i64)>> = vec![Vec::new(); constraints.len()];
    for (n, found) in per_node.into_iter().enumerate() {
        for (i, value, matching, new) in found {
            if new && let Some(info) = snapshot.nodes.get(n) {
                fresh[i].push((info.name().to_owned(), info.generation, matching));
            }
            match counts[i].get_mut(value) {
                Some(c) => *c += matching,
                None => {
                    counts[i].insert(value.to_owned(), matching);
                }
            }
        }
    }
    // Let go of the old entries first, so storing does not copy them.
    drop(memos);
    for (key, fresh) in keys.iter().zip(fresh) {
        pl.memo.put(key, fresh);
    }
    let paths = counts
        .iter()
        .map(|m| {
            let mut p = CriticalPaths::new();
            for (value, &n) in m {
                p.update(value, n);
            }
            p
        })
        .collect();
    state.write(
        STATE_KEY,
        PreFilterState {
            constraints: Arc::new(constraints),
            paths,
            counts,
        },
    );
    Ok(None)
}

/// Upstream's `updateWithPod`: `pod_info` (in `pod`'s namespace) now
/// counts (`delta` 1) or no longer counts (-1) on `node`.
pub(super) fn update_with_pod(
    state: &mut CycleState,
    pod: &Pod,
    pod_info: &PodInfo,
    node: &NodeInfo,
    delta: i64,
) -> Status {
    // No state: PreFilter said Skip (no hard constraints), nothing to do.
    let Some(s) = state.read_mut::<PreFilterState>(STATE_KEY) else {
        return Status::success();
    };
    if pod_info.pod.metadata.namespace != pod.metadata.namespace {
        return Status::success();
    }
    let node = &node.node;
    if !node_has_all_keys(node, &s.constraints) {
        return Status::success();
    }
    let labels = pod_labels(&pod_info.pod);
    let node_labels = node.metadata.labels.as_ref();
    let mut inclusion = Inclusion::new(pod, node);
    let constraints = s.constraints.clone();
    for (i, c) in constraints.iter().enumerate() {
        if !c.selector.matches(labels) || !inclusion.allows(c) {
            continue;
        }
        let Some(value) = node_labels.and_then(|l| l.get(&c.topology_key)) else {
            continue;
        };
        let n = s.counts[i].entry(value.clone()).or_insert(0);
        *n += delta;
        let n = *n;
        s.paths[i].update(value, n);
    }
    Status::success()
}

pub(super) fn filter(state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
    let Some(s) = state.read::<PreFilterState>(STATE_KEY) else {
        return Status::error(format!("reading {STATE_KEY:?} from cycleState: not found"));
    };
    let labels = pod_labels(pod);
    let node_labels = node.node.metadata.labels.as_ref();
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(value) = node_labels.and_then(|l| l.get(&c.topology_key)) else {
            return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
        };
        let min = s.min_match(i, c.min_domains);
        let self_match = i64::from(c.selector.matches(labels));
        let matching = s.counts[i].get(value).copied().unwrap_or(0);
        let skew = matching + self_match - min;
        if skew > i64::from(c.max_skew) {
            return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
        }
    }
    Status::success()
}

#[cfg(test)]
mod tests {
    use super::CriticalPaths;

    #[test]
    fn critical_paths_keep_the_minimum_first() {
        let mut p = CriticalPaths::new();
        for (v, n) in [("a", 3), ("b", 1), ("c", 2)] {
            p.update(v, n);
        }
        assert_eq!(p.0[0], ("b".to_owned(), 1));
        assert_eq!(p.0[1], ("c".to_owned(), 2));
        // b grows past c: they swap.
        p.update("b", 5);
        assert_eq!(p.0[0], ("c".to_owned(), 2));
        assert_eq!(p.min(), 2);
    }
}
