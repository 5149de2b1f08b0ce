//! The plugin interface: upstream's extension points as one trait whose
//! methods default to "nothing to say"; a plugin lists the points it
//! implements ([`Plugin::points`]) so a profile can enable it at each.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::Framework;
use super::cycle_state::CycleState;
use super::node_info::{NodeInfo, PodInfo};
use super::snapshot::Snapshot;
use super::status::Status;

/// Upstream's extension points, in the order a pod meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtensionPoint {
    PreEnqueue,
    QueueSort,
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Permit,
    PreBind,
    Bind,
    PostBind,
}

impl ExtensionPoint {
    pub const ALL: [ExtensionPoint; 12] = [
        ExtensionPoint::PreEnqueue,
        ExtensionPoint::QueueSort,
        ExtensionPoint::PreFilter,
        ExtensionPoint::Filter,
        ExtensionPoint::PostFilter,
        ExtensionPoint::PreScore,
        ExtensionPoint::Score,
        ExtensionPoint::Reserve,
        ExtensionPoint::Permit,
        ExtensionPoint::PreBind,
        ExtensionPoint::Bind,
        ExtensionPoint::PostBind,
    ];

    /// The field name in `KubeSchedulerConfiguration`'s `plugins`.
    pub fn config_name(self) -> &'static str {
        match self {
            ExtensionPoint::PreEnqueue => "preEnqueue",
            ExtensionPoint::QueueSort => "queueSort",
            ExtensionPoint::PreFilter => "preFilter",
            ExtensionPoint::Filter => "filter",
            ExtensionPoint::PostFilter => "postFilter",
            ExtensionPoint::PreScore => "preScore",
            ExtensionPoint::Score => "score",
            ExtensionPoint::Reserve => "reserve",
            ExtensionPoint::Permit => "permit",
            ExtensionPoint::PreBind => "preBind",
            ExtensionPoint::Bind => "bind",
            ExtensionPoint::PostBind => "postBind",
        }
    }
}

/// A change in the cluster that may make a rejected pod fit (upstream's
/// `ClusterEvent`, coarser): unschedulable pods go back to the active
/// queue when a plugin that rejected them registered the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    NodeAdd,
    /// Labels, taints, allocatable, unschedulable, ... changed.
    NodeUpdate,
    NodeDelete,
    /// A pod was bound (or assumed) to a node.
    AssignedPodAdd,
    /// An assigned pod's labels or requests changed.
    AssignedPodUpdate,
    /// An assigned pod went away or finished.
    AssignedPodDelete,
    NamespaceChange,
    PodDisruptionBudgetChange,
}

impl ClusterEvent {
    pub const ALL: [ClusterEvent; 8] = [
        ClusterEvent::NodeAdd,
        ClusterEvent::NodeUpdate,
        ClusterEvent::NodeDelete,
        ClusterEvent::AssignedPodAdd,
        ClusterEvent::AssignedPodUpdate,
        ClusterEvent::AssignedPodDelete,
        ClusterEvent::NamespaceChange,
        ClusterEvent::PodDisruptionBudgetChange,
    ];
}

/// A node's score from one plugin (0..=[`MAX_NODE_SCORE`] once
/// normalized).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScore {
    pub name: String,
    pub score: i64,
}

pub const MAX_NODE_SCORE: i64 = 100;
pub const MIN_NODE_SCORE: i64 = 0;

/// What PostFilter (preemption) decided: the pod should run on
/// `nominated_node` once `victims` are gone.
#[derive(Clone, Debug, Default)]
pub struct PostFilterResult {
    pub nominated_node: Option<String>,
    pub victims: Vec<Arc<Pod>>,
}

/// Upstream's `PreFilterResult`: `Some(names)` limits Filter to these
/// nodes (e.g. NodeAffinity with a `metadata.name` field selector).
pub type PreFilterResult = Option<HashSet<String>>;

/// A scheduler plugin. Synchronous points run inside the scheduling
/// cycle (Filter and Score for many nodes in parallel, hence `Sync`);
/// binding happens outside it, in the runtime.
pub trait Plugin: Send + Sync {
    /// Upstream's plugin name (`NodeResourcesFit`, ...).
    fn name(&self) -> &'static str;

    /// The points this plugin implements.
    fn points(&self) -> &'static [ExtensionPoint];

    /// The cluster events after which a pod this plugin rejected may
    /// fit; by default any.
    fn events(&self) -> &'static [ClusterEvent] {
        &ClusterEvent::ALL
    }

    /// Whether the pod may enter the active queue at all (upstream's
    /// SchedulingGates); a rejection keeps it gated until it changes.
    fn pre_enqueue(&self, _pod: &Pod) -> Status {
        Status::success()
    }

    /// Once per attempt, before Filter: compute what Filter needs into
    /// `state`; a rejection fails the pod on every node; `Skip` skips
    /// this plugin's Filter.
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        _pod: &Pod,
        _snapshot: &Snapshot,
    ) -> Result<PreFilterResult, Status> {
        Ok(None)
    }

    /// Upstream's PreFilterExtensions: `added` now counts on `node` (a
    /// nominated pod, or preemption putting a victim back): bring the
    /// state computed in PreFilter up to date.
    fn add_pod(
        &self,
        _state: &mut CycleState,
        _pod: &Pod,
        _added: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }

    /// `removed` no longer counts on `node` (preemption trying victims).
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &Pod,
        _removed: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }

    /// Whether the pod fits on `node`.
    fn filter(&self, _state: &CycleState, _pod: &Pod, _node: &NodeInfo) -> Status {
        Status::success()
    }

    /// Called when no node fits: may nominate a node (preemption).
    /// `rejections` holds every node's failing status. `framework` is
    /// the profile running this plugin (upstream's `framework.Handle`):
    /// preemption re-runs the profile's PreFilter extensions and
    /// Filters on a node with victims taken away, and a plugin cannot
    /// own the framework that owns it, so it is lent here.
    fn post_filter(
        &self,
        _framework: &Framework,
        _state: &CycleState,
        _pod: &Pod,
        _snapshot: &Snapshot,
        _rejections: &NodeStatuses,
    ) -> Result<PostFilterResult, Status> {
        Err(Status::unschedulable("no PostFilter"))
    }

    /// Once per attempt, before Score, over the feasible nodes.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &Pod,
        _snapshot: &Snapshot,
        _nodes: &[Arc<NodeInfo>],
    ) -> Status {
        Status::success()
    }

    /// The node's raw score.
    fn score(&self, _state: &CycleState, _pod: &Pod, _node: &NodeInfo) -> Result<i64, Status> {
        Ok(0)
    }

    /// Brings raw scores to 0..=100 (upstream's ScoreExtensions).
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &Pod,
        _scores: &mut [NodeScore],
    ) -> Status {
        Status::success()
    }

    /// The pod is about to be bound to `node`: claim what it takes.
    fn reserve(&self, _state: &mut CycleState, _pod: &Pod, _node: &str) -> Status {
        Status::success()
    }

    /// Undo [`Plugin::reserve`] after a later failure.
    fn unreserve(&self, _state: &mut CycleState, _pod: &Pod, _node: &str) {}

    /// Last word before binding; a rejection unreserves the pod.
    /// (Upstream's `Wait` is not offered: no in-tree plugin uses it.)
    fn permit(&self, _state: &CycleState, _pod: &Pod, _node: &str) -> Status {
        Status::success()
    }

    /// Just before the binding call, outside the scheduling cycle; a
    /// failure unreserves the pod and retries it.
    fn pre_bind(&self, _state: &CycleState, _pod: &Pod, _node: &str) -> Status {
        Status::success()
    }

    /// After a successful binding (informational).
    fn post_bind(&self, _state: &CycleState, _pod: &Pod, _node: &str) {}
}

/// The failing status of every node Filter rejected, by node name.
pub type NodeStatuses = std::collections::HashMap<String, Status>;
