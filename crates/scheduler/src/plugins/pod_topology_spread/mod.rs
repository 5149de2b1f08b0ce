//! PodTopologySpread (upstream v1.33): `topologySpreadConstraints` keep
//! matching pods evenly spread over topology domains (zones, nodes, ...).
//! `DoNotSchedule` constraints are hard (PreFilter counts matching pods
//! per domain once, Filter checks the skew per node); `ScheduleAnyway`
//! constraints are soft (PreScore counts, Score prefers emptier domains).
//! A pod without constraints gets the profile's default constraints
//! (`defaultingType: System`: spread by hostname and zone).
//!
//! Simplification: upstream builds the default constraints' selector from
//! the Services, ReplicaSets, StatefulSets and ReplicationControllers that
//! select the pod (informer listers this crate does not keep). Here a pod
//! controlled by a ReplicaSet, StatefulSet or ReplicationController is
//! spread against pods with its own labels, minus the labels its
//! controller sets per pod or per revision (which would make every pod a
//! group of one); a pod selected only by a Service gets no defaults.

mod filtering;
mod scoring;
#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};
use serde::Deserialize;

use super::node_affinity::matches_required;
use super::selector::{Selector, pod_labels};
use super::taint_toleration::{taints, tolerated};
use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, NodeInfo, NodeScore, Plugin, PodInfo,
    PreFilterResult, Snapshot, Status,
};

pub const NAME: &str = "PodTopologySpread";
/// Upstream's `ErrReasonConstraintsNotMatch`.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// Upstream's `ErrReasonNodeLabelNotMatch`.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// Labels a controller sets that differ from pod to pod (or revision to
/// revision) and so are not part of the controller's selector.
const PER_POD_LABELS: &[&str] = &[
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-revision-hash",
];

/// `PodTopologySpreadArgs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    #[serde(default)]
    pub default_constraints: Vec<TopologySpreadConstraint>,
    /// `System` (the default) or `List`.
    #[serde(default)]
    pub defaulting_type: Option<String>,
}

/// A constraint with its selector compiled and upstream's defaults
/// applied (upstream's internal `topologySpreadConstraint`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Constraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub selector: Selector,
    /// 1 when unset.
    pub min_domains: i32,
    /// `nodeAffinityPolicy: Honor` (the default).
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default `Ignore`).
    pub honor_taints: bool,
}

/// Whether a node counts for a constraint under its node inclusion
/// policies; the two checks are computed at most once per node.
pub(crate) struct Inclusion<'a> {
    pod: &'a Pod,
    node: &'a Node,
    affinity: Option<bool>,
    taints: Option<bool>,
}

impl<'a> Inclusion<'a> {
    pub fn new(pod: &'a Pod, node: &'a Node) -> Self {
        Inclusion {
            pod,
            node,
            affinity: None,
            taints: None,
        }
    }

    /// Upstream's `matchNodeInclusionPolicies`.
    pub fn allows(&mut self, c: &Constraint) -> bool {
        if c.honor_node_affinity
            && !*self
                .affinity
                .get_or_insert_with(|| matches_required(self.pod, self.node))
        {
            return false;
        }
        if c.honor_taints
            && !*self.taints.get_or_insert_with(|| {
                !taints(self.node).iter().any(|t| {
                    (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(self.pod, t)
                })
            })
        {
            return false;
        }
        true
    }
}

/// Upstream's `nodeLabelsMatchSpreadConstraints`: the node has every
/// constraint's topology key.
pub(crate) fn node_has_all_keys(node: &Node, constraints: &[Constraint]) -> bool {
    let labels = node.metadata.labels.as_ref();
    constraints
        .iter()
        .all(|c| labels.is_some_and(|l| l.contains_key(&c.topology_key)))
}

/// Upstream's `countPodsMatchSelector`: pods of the namespace, not
/// terminating, whose labels the selector matches.
pub(crate) fn count_matching(
    pods: &[std::sync::Arc<PodInfo>],
    selector: &Selector,
    ns: &str,
) -> i64 {
    let n = pods
        .iter()
        .filter(|p| {
            p.pod.metadata.deletion_timestamp.is_none()
                && p.pod.metadata.namespace.as_deref().unwrap_or("") == ns
                && selector.matches(pod_labels(&p.pod))
        })
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The system default constraints (upstream's `systemDefaultConstraints`).
fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    vec![
        TopologySpreadConstraint {
            topology_key: LABEL_HOSTNAME.to_owned(),
            when_unsatisfiable: SCHEDULE_ANYWAY.to_owned(),
            max_skew: 3,
            ..TopologySpreadConstraint::default()
        },
        TopologySpreadConstraint {
            topology_key: LABEL_ZONE.to_owned(),
            when_unsatisfiable: SCHEDULE_ANYWAY.to_owned(),
            max_skew: 5,
            ..TopologySpreadConstraint::default()
        },
    ]
}

pub struct PodTopologySpread {
    default_constraints: Vec<TopologySpreadConstraint>,
    /// PreFilter's per-node matching counts, kept across attempts.
    memo: crate::plugins::count_memo::CountMemo<i64>,
    /// `defaultingType: System`: nodes without a zone label still get
    /// hostname spreading in Score.
    system_defaulted: bool,
}

impl PodTopologySpread {
    /// Validates the args as upstream's `ValidatePodTopologySpreadArgs`.
    pub fn new(args: Args) -> Result<Self, String> {
        let defaulting = args.defaulting_type.as_deref().unwrap_or("System");
        match defaulting {
            "System" if !args.default_constraints.is_empty() => {
                return Err(
                    "defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty"
                        .to_owned(),
                );
            }
            "System" | "List" => {}
            other => {
                return Err(format!(
                    "defaultingType: Unsupported value: {other:?}: supported values: \"System\", \"List\""
                ));
            }
        }
        for (i, c) in args.default_constraints.iter().enumerate() {
            let path = format!("defaultConstraints[{i}]");
            if c.max_skew <= 0 {
                return Err(format!(
                    "{path}.maxSkew: Invalid value: {}: not in valid range",
                    c.max_skew
                ));
            }
            if c.topology_key.is_empty() {
                return Err(format!(
                    "{path}.topologyKey: Required value: can not be empty"
                ));
            }
            if c.when_unsatisfiable != DO_NOT_SCHEDULE && c.when_unsatisfiable != SCHEDULE_ANYWAY {
                return Err(format!(
                    "{path}.whenUnsatisfiable: Unsupported value: {:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\"",
                    c.when_unsatisfiable
                ));
            }
            if c.label_selector.is_some() {
                return Err(format!(
                    "{path}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
                ));
            }
            if args.default_constraints[..i].iter().any(|o| {
                o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
            }) {
                return Err(format!(
                    "{path}: Duplicate value: {{{:?}, {:?}}}",
                    c.topology_key, c.when_unsatisfiable
                ));
            }
        }
        Ok(if defaulting == "System" {
            PodTopologySpread {
                default_constraints: system_default_constraints(),
                memo: Default::default(),
                system_defaulted: true,
            }
        } else {
            PodTopologySpread {
                default_constraints: args.default_constraints,
                memo: Default::default(),
                system_defaulted: false,
            }
        })
    }

    /// Upstream's `filterTopologySpreadConstraints`: the constraints with
    /// `action`, `matchLabelKeys` merged into their selectors.
    fn filter_constraints(
        constraints: &[TopologySpreadConstraint],
        pod: &Pod,
        action: &str,
    ) -> Vec<Constraint> {
        let labels = pod_labels(pod);
        constraints
            .iter()
            .filter(|c| c.when_unsatisfiable == action)
            .map(|c| {
                let mut selector = Selector::new(c.label_selector.clone());
                let pairs: Vec<(String, String)> = c
                    .match_label_keys
                    .iter()
                    .flatten()
                    .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                selector.merge_set(pairs);
                Constraint {
                    max_skew: c.max_skew,
                    topology_key: c.topology_key.clone(),
                    selector,
                    min_domains: c.min_domains.unwrap_or(1),
                    honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                    honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                }
            })
            .collect()
    }

    /// The pod's constraints with `action`, or the defaults when it has
    /// none (upstream's `getConstraints` / `buildDefaultConstraints`).
    pub(crate) fn constraints(&self, pod: &Pod, action: &str) -> Vec<Constraint> {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[]);
        if !own.is_empty() {
            return Self::filter_constraints(own, pod, action);
        }
        let mut constraints = Self::filter_constraints(&self.default_constraints, pod, action);
        if constraints.is_empty() {
            return constraints;
        }
        let selector = default_selector(pod);
        if selector.is_empty() {
            return Vec::new();
        }
        for c in &mut constraints {
            c.selector = selector.clone();
        }
        constraints
    }
}

/// The selector default constraints spread a pod against (see the module
/// doc for how this simplifies upstream's `DefaultSelector`).
fn default_selector(pod: &Pod) -> Selector {
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let owned = controller.is_some_and(|o| {
        matches!(
            (o.api_version.as_str(), o.kind.as_str()),
            ("v1", "ReplicationController")
                | ("apps/v1", "ReplicaSet")
                | ("apps/v1", "StatefulSet")
        )
    });
    if !owned {
        return Selector::from_set(Vec::new());
    }
    Selector::from_set(
        pod_labels(pod)
            .iter()
            .filter(|(k, _)| !PER_POD_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

impl Plugin for PodTopologySpread {
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

    /// Pods coming, changing labels or going change the counts; nodes
    /// coming, going or relabelled change the domains.
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::AssignedPodAdd,
            ClusterEvent::AssignedPodUpdate,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUpdate,
            ClusterEvent::NodeDelete,
        ]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<PreFilterResult, Status> {
        filtering::pre_filter(self, state, pod, snapshot)
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        filtering::update_with_pod(state, pod, added, node, 1)
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        filtering::update_with_pod(state, pod, removed, node, -1)
    }

    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        filtering::filter(state, pod, node)
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        nodes: &[std::sync::Arc<NodeInfo>],
    ) -> Status {
        scoring::pre_score(self, state, pod, snapshot, nodes)
    }

    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        scoring::score(state, pod, node)
    }

    fn normalize_score(&self, state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        scoring::normalize_score(state, scores)
    }
}
