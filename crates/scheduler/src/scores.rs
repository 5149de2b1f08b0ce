//! Score plugins with upstream's formulas and default weights, and the
//! choice of a node: filter every node, score the feasible ones, pick the
//! highest weighted sum (ties at random).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::filters::{prefer_no_schedule_count, preferred_affinity_weight, run_filters};
use crate::resources::{NodeInfo, pod_requests};

pub const MAX_NODE_SCORE: i64 = 100;
/// Upstream's default plugin weights.
pub const WEIGHT_FIT: i64 = 1;
pub const WEIGHT_TAINT: i64 = 3;
pub const WEIGHT_AFFINITY: i64 = 2;

/// NodeResourcesFit's `LeastAllocated` strategy, cpu and memory weighted
/// 1: the mean over resources of `(allocatable - requested) * 100 /
/// allocatable`, counting the pod and upstream's non-zero defaults.
pub fn least_allocated(pod: &Pod, node: &NodeInfo) -> i64 {
    let want = pod_requests(pod, true);
    let part = |requested: i128, capacity: i128| -> i128 {
        if capacity <= 0 || requested > capacity {
            0
        } else {
            (capacity - requested) * i128::from(MAX_NODE_SCORE) / capacity
        }
    };
    let cpu = part(node.non_zero_requested.cpu + want.cpu, node.allocatable.cpu);
    let memory = part(
        node.non_zero_requested.memory + want.memory,
        node.allocatable.memory,
    );
    i64::try_from((cpu + memory) / 2).unwrap_or(0)
}

/// Upstream's `DefaultNormalizeScore`: scale to 0..=100 by the maximum,
/// reversed when `reverse` (all-zero scores become 100 when reversed).
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        if max == 0 {
            if reverse {
                *s = MAX_NODE_SCORE;
            }
            continue;
        }
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// Why no node fits: per node the reasons of the filter that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl std::fmt::Display for FitError {
    /// Upstream's FitError message: `0/3 nodes are available: 1 node(s)
    /// had untolerated taint {k: v}, 2 Insufficient cpu.`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.num_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.num_nodes,
            parts.join(", ")
        )
    }
}

/// Every feasible node's total score, in the order of `nodes`.
pub fn score_nodes(pod: &Pod, feasible: &[&NodeInfo]) -> Vec<i64> {
    let fit: Vec<i64> = feasible.iter().map(|n| least_allocated(pod, n)).collect();
    let mut taint: Vec<i64> = feasible
        .iter()
        .map(|n| prefer_no_schedule_count(pod, &n.node))
        .collect();
    normalize(&mut taint, true);
    let mut affinity: Vec<i64> = feasible
        .iter()
        .map(|n| preferred_affinity_weight(pod, &n.node))
        .collect();
    normalize(&mut affinity, false);
    (0..feasible.len())
        .map(|i| fit[i] * WEIGHT_FIT + taint[i] * WEIGHT_TAINT + affinity[i] * WEIGHT_AFFINITY)
        .collect()
}

/// The node for `pod`: filter, score, highest wins, ties at random.
pub fn select_node<'a>(pod: &Pod, nodes: &'a [NodeInfo]) -> Result<&'a NodeInfo, FitError> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut feasible = Vec::new();
    for n in nodes {
        match run_filters(pod, n) {
            Ok(()) => feasible.push(n),
            Err(rs) => {
                for r in rs {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    if feasible.is_empty() {
        return Err(FitError {
            num_nodes: nodes.len(),
            reasons,
        });
    }
    let scores = score_nodes(pod, &feasible);
    let best = scores.iter().copied().max().unwrap_or(0);
    let top: Vec<usize> = (0..feasible.len()).filter(|&i| scores[i] == best).collect();
    let pick = top[rand::random_range(0..top.len())];
    Ok(feasible[pick])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;
    use std::sync::Arc;

    fn node(name: &str, cpu: &str, mem: &str, taints: serde_json::Value) -> NodeInfo {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"zone": name}},
            "spec": {"taints": taints},
            "status": {
                "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .expect("node");
        NodeInfo::new(Arc::new(n))
    }

    fn pod(cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}}))
        .expect("pod")
    }

    #[test]
    fn least_allocated_formula() {
        let mut n = node("a", "4", "8Gi", json!([]));
        // cpu (4000-1000)*100/4000 = 75, memory (8-2)*100/8 = 75
        assert_eq!(least_allocated(&pod("1", "2Gi"), &n), 75);
        n.add_pod(&pod("2", "2Gi"));
        // cpu (4000-3000)/4000 = 25, memory (8-4)/8 = 50 → 37
        assert_eq!(least_allocated(&pod("1", "2Gi"), &n), 37);
        // a pod without requests counts 100m and 200Mi
        let empty: Pod =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "c"}]}})).expect("pod");
        let fresh = node("b", "1", "1000Mi", json!([]));
        assert_eq!(least_allocated(&empty, &fresh), (90 + 80) / 2);
    }

    #[test]
    fn normalizing() {
        let mut s = vec![0, 1, 2];
        normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
        let mut s = vec![5, 10];
        normalize(&mut s, false);
        assert_eq!(s, vec![50, 100]);
    }

    #[test]
    fn picks_least_allocated_and_avoids_soft_taints() {
        let mut busy = node("busy", "4", "8Gi", json!([]));
        busy.add_pod(&pod("2", "4Gi"));
        let nodes = vec![busy, node("idle", "4", "8Gi", json!([]))];
        let chosen = select_node(&pod("100m", "100Mi"), &nodes).expect("fits");
        assert_eq!(chosen.name(), "idle");
        let nodes = vec![
            node(
                "soft",
                "4",
                "8Gi",
                json!([{"key": "k", "effect": "PreferNoSchedule"}]),
            ),
            node("plain", "4", "8Gi", json!([])),
        ];
        assert_eq!(
            select_node(&pod("1", "1Gi"), &nodes).expect("fits").name(),
            "plain"
        );
    }

    #[test]
    fn fit_error_message_as_upstream() {
        let nodes = vec![
            node(
                "a",
                "1",
                "1Gi",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            ),
            node("b", "1", "1Gi", json!([])),
            node("c", "500m", "1Gi", json!([])),
        ];
        let err = select_node(&pod("2", "100Mi"), &nodes).expect_err("nothing fits");
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
        );
        let err = select_node(&pod("2", "100Mi"), &[]).expect_err("no nodes");
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }
}
