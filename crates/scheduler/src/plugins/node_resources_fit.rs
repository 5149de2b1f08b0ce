//! NodeResourcesFit: the pod's requests (cpu, memory, ephemeral-storage,
//! extended resources) and one more pod fit in what the node has left
//! (Filter); nodes scored by a configurable strategy (Score):
//! `LeastAllocated` (default), `MostAllocated` or
//! `RequestedToCapacityRatio`, each over weighted resources.

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, MAX_NODE_SCORE, NodeInfo, Plugin, PreFilterResult,
    Snapshot, Status,
};
use crate::resources::{Resources, pod_requests};

pub const NAME: &str = "NodeResourcesFit";
const STATE_KEY: &str = "PreFilterNodeResourcesFit";
/// Upstream's `MaxCustomPriorityScore`: shape scores are 0..=10.
const MAX_CUSTOM_SCORE: i64 = 10;

/// A resource and its weight in the score.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct UtilizationShapePoint {
    pub utilization: i64,
    pub score: i64,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestedToCapacityRatio {
    #[serde(default)]
    pub shape: Vec<UtilizationShapePoint>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScoringStrategy {
    #[serde(rename = "type", default = "least_allocated")]
    pub type_: String,
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatio>,
}

fn least_allocated() -> String {
    "LeastAllocated".to_owned()
}

pub fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: "cpu".into(),
            weight: 1,
        },
        ResourceSpec {
            name: "memory".into(),
            weight: 1,
        },
    ]
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy {
            type_: least_allocated(),
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

/// `NodeResourcesFitArgs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    #[serde(default)]
    pub scoring_strategy: Option<ScoringStrategy>,
}

pub struct NodeResourcesFit {
    args: Args,
    strategy: ScoringStrategy,
}

impl NodeResourcesFit {
    pub fn new(args: Args) -> Result<Self, String> {
        let strategy = args.scoring_strategy.clone().unwrap_or_default();
        match strategy.type_.as_str() {
            "LeastAllocated" | "MostAllocated" => {}
            "RequestedToCapacityRatio" => {
                let shape = strategy
                    .requested_to_capacity_ratio
                    .as_ref()
                    .map(|r| r.shape.as_slice())
                    .unwrap_or_default();
                if shape.is_empty() {
                    return Err("scoringStrategy.requestedToCapacityRatio.shape: Required value: at least one point must be specified".into());
                }
                for w in shape.windows(2) {
                    if w[1].utilization <= w[0].utilization {
                        return Err("scoringStrategy.requestedToCapacityRatio.shape: Invalid value: utilization values must be sorted in increasing order".into());
                    }
                }
                if shape
                    .iter()
                    .any(|p| !(0..=100).contains(&p.utilization) || !(0..=10).contains(&p.score))
                {
                    return Err("scoringStrategy.requestedToCapacityRatio.shape: Invalid value: utilization must be in 0..100 and score in 0..10".into());
                }
            }
            other => {
                return Err(format!(
                    "scoringStrategy.type: Unsupported value: {other:?}: supported values: \"LeastAllocated\", \"MostAllocated\", \"RequestedToCapacityRatio\""
                ));
            }
        }
        if strategy
            .resources
            .iter()
            .any(|r| r.weight <= 0 || r.weight > 100)
        {
            return Err(
                "scoringStrategy.resources.weight: Invalid value: must be in the range [1, 100]"
                    .into(),
            );
        }
        Ok(NodeResourcesFit { args, strategy })
    }

    fn ignored(&self, name: &str) -> bool {
        self.args.ignored_resources.iter().any(|r| r == name)
            || name.split_once('/').is_some_and(|(group, _)| {
                self.args.ignored_resource_groups.iter().any(|g| g == group)
            })
    }
}

/// What the pod asks for, once per attempt.
#[derive(Clone)]
struct Requests {
    exact: Resources,
    non_zero: Resources,
}

fn requests<'a>(state: &'a CycleState, pod: &Pod, owned: &'a mut Option<Requests>) -> &'a Requests {
    if let Some(r) = state.read::<Requests>(STATE_KEY) {
        return r;
    }
    owned.insert(Requests {
        exact: pod_requests(pod, false),
        non_zero: pod_requests(pod, true),
    })
}

/// Upstream's `fitsRequest`: the reasons the pod does not fit, and
/// whether it could never fit (asks more than the node's allocatable).
pub fn insufficient(
    want: &Resources,
    node: &NodeInfo,
    ignored: impl Fn(&str) -> bool,
) -> (Vec<String>, bool) {
    let have = &node.allocatable;
    let used = &node.requested;
    let mut reasons = Vec::new();
    let mut unresolvable = false;
    if i128::try_from(node.pods.len()).unwrap_or(i128::MAX) + 1 > have.pods {
        reasons.push("Too many pods".to_owned());
        unresolvable |= have.pods < 1;
    }
    let mut check = |name: &str, w: i128, h: i128, u: i128| {
        if w > 0 && w > h - u {
            reasons.push(format!("Insufficient {name}"));
            unresolvable |= w > h;
        }
    };
    check("cpu", want.cpu, have.cpu, used.cpu);
    check("memory", want.memory, have.memory, used.memory);
    check(
        "ephemeral-storage",
        want.ephemeral_storage,
        have.ephemeral_storage,
        used.ephemeral_storage,
    );
    for (name, &w) in &want.scalar {
        if ignored(name) {
            continue;
        }
        check(name, w, have.get(name), used.get(name));
    }
    (reasons, unresolvable)
}

/// `(allocatable, requested-with-the-pod)` of one resource for scoring,
/// as upstream's `calculateResourceAllocatableRequest`; `None` skips it.
pub fn allocatable_and_requested(
    node: &NodeInfo,
    resource: &str,
    pod_request: i128,
    use_requested: bool,
) -> Option<(i128, i128)> {
    let scalar = !matches!(resource, "cpu" | "memory" | "ephemeral-storage" | "pods");
    if scalar && pod_request == 0 {
        return None;
    }
    let requested = if use_requested || !matches!(resource, "cpu" | "memory") {
        node.requested.get(resource)
    } else {
        node.non_zero_requested.get(resource)
    };
    let alloc = node.allocatable.get(resource);
    if alloc == 0 {
        return None;
    }
    Some((alloc, requested + pod_request))
}

fn least_requested(requested: i128, capacity: i128) -> i128 {
    if capacity == 0 || requested > capacity {
        0
    } else {
        (capacity - requested) * i128::from(MAX_NODE_SCORE) / capacity
    }
}

fn most_requested(requested: i128, capacity: i128) -> i128 {
    if capacity == 0 {
        0
    } else {
        requested.min(capacity) * i128::from(MAX_NODE_SCORE) / capacity
    }
}

/// Upstream's piecewise-linear `buildBrokenLinearFunction` over the
/// shape (scores scaled from 0..=10 to 0..=100).
fn shaped(shape: &[UtilizationShapePoint], utilization: i64) -> i64 {
    let points: Vec<(i64, i64)> = shape
        .iter()
        .map(|p| (p.utilization, p.score * (MAX_NODE_SCORE / MAX_CUSTOM_SCORE)))
        .collect();
    let Some(&(first_u, first_s)) = points.first() else {
        return 0;
    };
    if utilization <= first_u {
        return first_s;
    }
    for w in points.windows(2) {
        let ((u0, s0), (u1, s1)) = (w[0], w[1]);
        if utilization <= u1 {
            return s0 + (s1 - s0) * (utilization - u0) / (u1 - u0);
        }
    }
    points.last().map_or(0, |&(_, s)| s)
}

impl NodeResourcesFit {
    /// The node's score for a pod requesting `want` (non-zero defaults).
    pub fn score_node(&self, want: &Resources, node: &NodeInfo) -> i64 {
        let mut total = 0i128;
        let mut weights = 0i128;
        for r in &self.strategy.resources {
            let Some((alloc, req)) =
                allocatable_and_requested(node, &r.name, want.get(&r.name), false)
            else {
                continue;
            };
            let score = match self.strategy.type_.as_str() {
                "MostAllocated" => most_requested(req, alloc),
                "RequestedToCapacityRatio" => {
                    let shape = self
                        .strategy
                        .requested_to_capacity_ratio
                        .as_ref()
                        .map(|r| r.shape.as_slice())
                        .unwrap_or_default();
                    let utilization = i64::try_from(req.min(alloc) * 100 / alloc).unwrap_or(100);
                    i128::from(shaped(shape, utilization))
                }
                _ => least_requested(req, alloc),
            };
            total += score * i128::from(r.weight);
            weights += i128::from(r.weight);
        }
        if weights == 0 {
            0
        } else {
            i64::try_from(total / weights).unwrap_or(0)
        }
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[
            ExtensionPoint::PreFilter,
            ExtensionPoint::Filter,
            ExtensionPoint::PreScore,
            ExtensionPoint::Score,
        ]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUpdate,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::AssignedPodUpdate,
        ]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
    ) -> Result<PreFilterResult, Status> {
        state.write(
            STATE_KEY,
            Requests {
                exact: pod_requests(pod, false),
                non_zero: pod_requests(pod, true),
            },
        );
        Ok(None)
    }

    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let mut owned = None;
        let want = &requests(state, pod, &mut owned).exact;
        let (reasons, unresolvable) = insufficient(want, node, |n| self.ignored(n));
        if reasons.is_empty() {
            return Status::success();
        }
        Status {
            code: if unresolvable {
                crate::framework::Code::UnschedulableAndUnresolvable
            } else {
                crate::framework::Code::Unschedulable
            },
            reasons,
            plugin: NAME,
        }
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
        _nodes: &[std::sync::Arc<NodeInfo>],
    ) -> Status {
        if state.read::<Requests>(STATE_KEY).is_none() {
            state.write(
                STATE_KEY,
                Requests {
                    exact: pod_requests(pod, false),
                    non_zero: pod_requests(pod, true),
                },
            );
        }
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let mut owned = None;
        let want = &requests(state, pod, &mut owned).non_zero;
        Ok(self.score_node(want, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::{filter, node, pod, pod_with, scores, with_pods};
    use serde_json::json;

    fn fit(args: serde_json::Value) -> NodeResourcesFit {
        NodeResourcesFit::new(serde_json::from_value(args).expect("args")).expect("valid")
    }

    #[test]
    fn filter_reasons() {
        let n = with_pods(
            node(
                "a",
                json!({"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "2",
                    "ephemeral-storage": "10Gi", "example.com/gpu": "1"}}}),
            ),
            vec![pod_with("old", "1500m", "1Gi")],
        );
        let plugin = fit(json!({}));
        let cases: Vec<(Pod, Vec<&str>, Code)> = vec![
            (pod_with("p", "500m", "3Gi"), vec![], Code::Success),
            (
                pod_with("p", "600m", "1Gi"),
                vec!["Insufficient cpu"],
                Code::Unschedulable,
            ),
            (
                pod_with("p", "600m", "4Gi"),
                vec!["Insufficient cpu", "Insufficient memory"],
                Code::Unschedulable,
            ),
            // More than the node has at all: preemption cannot help.
            (
                pod_with("p", "3", "1Gi"),
                vec!["Insufficient cpu"],
                Code::UnschedulableAndUnresolvable,
            ),
            (
                pod(
                    "p",
                    json!({"containers": [{"name": "c", "image": "i",
                    "resources": {"limits": {"example.com/gpu": "2"}}}]}),
                ),
                vec!["Insufficient example.com/gpu"],
                Code::UnschedulableAndUnresolvable,
            ),
            (
                pod(
                    "p",
                    json!({"containers": [{"name": "c", "image": "i",
                    "resources": {"requests": {"ephemeral-storage": "11Gi"}}}]}),
                ),
                vec!["Insufficient ephemeral-storage"],
                Code::UnschedulableAndUnresolvable,
            ),
            // Init containers: the max of init and the sum of containers.
            (
                pod(
                    "p",
                    json!({"containers": [{"name": "c", "image": "i",
                    "resources": {"requests": {"cpu": "100m"}}}],
                    "initContainers": [{"name": "i", "image": "i",
                    "resources": {"requests": {"cpu": "1"}}}]}),
                ),
                vec!["Insufficient cpu"],
                Code::Unschedulable,
            ),
        ];
        for (p, reasons, code) in cases {
            let s = filter(&plugin, &p, &n);
            assert_eq!(s.code, code, "{:?}", p.spec);
            assert_eq!(s.reasons, reasons, "{:?}", p.spec);
        }
        let full = with_pods(n, vec![pod_with("other", "0", "0")]);
        assert_eq!(
            filter(&plugin, &pod_with("p", "0", "0"), &full).reasons,
            vec!["Too many pods"]
        );
        let ignoring = fit(json!({"ignoredResourceGroups": ["example.com"]}));
        let gpu = pod(
            "p",
            json!({"containers": [{"name": "c", "image": "i",
            "resources": {"limits": {"example.com/gpu": "2"}}}]}),
        );
        assert!(filter(&ignoring, &gpu, &node("b", json!({}))).is_success());
    }

    #[test]
    fn scoring_strategies() {
        let nodes = || {
            vec![
                with_pods(node("a", json!({})), vec![pod_with("x", "2", "4Gi")]),
                node("b", json!({})),
            ]
        };
        let p = pod_with("p", "1", "2Gi");
        // 4 cpu, 8Gi: a has 3/4 and 6/8 used with the pod, b 1/4 and 2/8.
        assert_eq!(scores(&fit(json!({})), &p, nodes()), vec![25, 75]);
        let most = fit(json!({"scoringStrategy": {"type": "MostAllocated"}}));
        assert_eq!(scores(&most, &p, nodes()), vec![75, 25]);
        let weighted = fit(json!({"scoringStrategy": {"type": "LeastAllocated",
            "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]}}));
        assert_eq!(scores(&weighted, &p, nodes()), vec![25, 75]);
        // Bin packing shape: utilization 0 → 0, 100 → 10 (×10).
        let ratio = fit(
            json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
            "requestedToCapacityRatio": {"shape": [
                {"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}}),
        );
        assert_eq!(scores(&ratio, &p, nodes()), vec![75, 25]);
        // A pod without requests counts upstream's 100m / 200Mi defaults.
        let empty = pod("p", json!({}));
        let fresh = vec![node(
            "a",
            json!({"status": {"allocatable": {"cpu": "1", "memory": "1000Mi"}}}),
        )];
        assert_eq!(scores(&fit(json!({})), &empty, fresh), vec![(90 + 80) / 2]);
    }

    #[test]
    fn bad_args_are_refused() {
        let bad = |v: serde_json::Value| {
            NodeResourcesFit::new(serde_json::from_value(v).expect("shape")).is_err()
        };
        assert!(bad(json!({"scoringStrategy": {"type": "Random"}})));
        assert!(bad(
            json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}})
        ));
        assert!(bad(
            json!({"scoringStrategy": {"resources": [{"name": "cpu", "weight": 0}]}})
        ));
    }
}
