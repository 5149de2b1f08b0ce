//! NodeResourcesBalancedAllocation: prefer nodes whose resources would be
//! used evenly with the pod (1 − the standard deviation of the used
//! fractions), so cpu-heavy and memory-heavy pods pair up.

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::node_resources_fit::{ResourceSpec, allocatable_and_requested, default_resources};
use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, MAX_NODE_SCORE, NodeInfo, Plugin, Snapshot, Status,
};
use crate::resources::{Resources, pod_requests};

pub const NAME: &str = "NodeResourcesBalancedAllocation";
const STATE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Args {
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            resources: default_resources(),
        }
    }
}

pub struct BalancedAllocation {
    args: Args,
}

impl BalancedAllocation {
    pub fn new(args: Args) -> Self {
        BalancedAllocation { args }
    }

    /// Upstream's `balancedResourceScorer` over the configured resources.
    pub fn score_node(&self, want: &Resources, node: &NodeInfo) -> i64 {
        let fractions: Vec<f64> = self
            .args
            .resources
            .iter()
            .filter_map(|r| allocatable_and_requested(node, &r.name, want.get(&r.name), true))
            .map(|(alloc, req)| (req as f64 / alloc as f64).min(1.0))
            .collect();
        let std = match fractions.as_slice() {
            [] | [_] => 0.0,
            [a, b] => ((a - b) / 2.0).abs(),
            many => {
                let mean = many.iter().sum::<f64>() / many.len() as f64;
                (many.iter().map(|f| (f - mean) * (f - mean)).sum::<f64>() / many.len() as f64)
                    .sqrt()
            }
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::PreScore, ExtensionPoint::Score]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
        _nodes: &[std::sync::Arc<NodeInfo>],
    ) -> Status {
        let want = pod_requests(pod, false);
        // A best-effort pod (no requests of the scored resources) has
        // nothing to balance.
        if self.args.resources.iter().all(|r| want.get(&r.name) == 0) {
            return Status::skip();
        }
        state.write(STATE_KEY, want);
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let owned;
        let want = match state.read::<Resources>(STATE_KEY) {
            Some(w) => w,
            None => {
                owned = pod_requests(pod, false);
                &owned
            }
        };
        Ok(self.score_node(want, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, pod_with, scores, with_pods};
    use serde_json::json;

    #[test]
    fn even_use_scores_higher() {
        let plugin = BalancedAllocation::new(Args::default());
        let nodes = vec![
            // cpu 3/4 = .75, memory 2/8 = .25 → std .25 → 75
            with_pods(node("a", json!({})), vec![pod_with("x", "2", "0")]),
            // cpu 1/4, memory 2/8 → 100
            node("b", json!({})),
        ];
        assert_eq!(
            scores(&plugin, &pod_with("p", "1", "2Gi"), nodes),
            vec![75, 100]
        );
        // Fractions above 1 count as 1.
        let over = vec![with_pods(
            node("a", json!({})),
            vec![pod_with("x", "8", "0")],
        )];
        assert_eq!(scores(&plugin, &pod_with("p", "1", "2Gi"), over), vec![62]);
        // A best-effort pod skips the plugin.
        assert_eq!(
            scores(&plugin, &pod("p", json!({})), vec![node("a", json!({}))]),
            vec![0]
        );
    }
}
