//! DefaultPreemption (PostFilter): when a pod fits nowhere, find a node
//! where evicting lower-priority pods makes room, as upstream's
//! `defaultpreemption` plugin with its `preemption.Evaluator` (v1.33):
//!
//! 1. Is the pod allowed to preempt ([`eligible`])? Not with
//!    `preemptionPolicy: Never`, and not while victims of an earlier
//!    preemption on its nominated node are still terminating.
//! 2. Dry-run preemption on the nodes Filter rejected as `Unschedulable`
//!    (not `UnschedulableAndUnresolvable`: evicting pods cannot fix a
//!    taint), from a random offset, until enough candidates are found
//!    ([`candidates::dry_run`], [`victims::select_victims_on_node`]).
//! 3. Pick the candidate that hurts least
//!    ([`candidates::pick_one_node_for_preemption`]).
//!
//! The plugin only decides; the API calls (condition, deletion, Event,
//! nomination) are [`execute::carry_out`], which the runtime runs in the
//! background after the cycle — upstream's asynchronous preemption.

pub mod candidates;
pub mod execute;
pub mod pdb;
pub mod victims;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::framework::node_info::pod_priority;
use crate::framework::{
    ClusterEvent, Code, CycleState, ExtensionPoint, FitError, Framework, NodeInfo, NodeStatuses,
    Plugin, PostFilterResult, Snapshot, Status,
};

pub use execute::carry_out;

pub const NAME: &str = "DefaultPreemption";

/// `DefaultPreemptionArgs`: how many candidate nodes the dry run looks
/// for — `minCandidateNodesPercentage` of the potential nodes, at least
/// `minCandidateNodesAbsolute` (both capped at the number of nodes).
/// More candidates give a better choice at the cost of more dry runs.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Args {
    pub min_candidate_nodes_percentage: i32,
    pub min_candidate_nodes_absolute: i32,
}

impl Default for Args {
    /// Upstream's defaults.
    fn default() -> Self {
        Args {
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
        }
    }
}

pub struct DefaultPreemption {
    args: Args,
}

impl DefaultPreemption {
    /// Validates the args with upstream's messages
    /// (`ValidateDefaultPreemptionArgs`).
    pub fn new(args: Args) -> Result<Self, String> {
        let mut errors = Vec::new();
        let pct = args.min_candidate_nodes_percentage;
        let abs = args.min_candidate_nodes_absolute;
        if !(0..=100).contains(&pct) {
            errors.push(format!(
                "minCandidateNodesPercentage: Invalid value: {pct}: not in valid range [0, 100]"
            ));
        }
        if abs < 0 {
            errors.push(format!(
                "minCandidateNodesAbsolute: Invalid value: {abs}: not in valid range [0, inf)"
            ));
        }
        if pct == 0 && abs == 0 {
            errors.push("minCandidateNodesPercentage: Invalid value: 0: cannot be zero at the same time as minCandidateNodesAbsolute".to_owned());
            errors.push("minCandidateNodesAbsolute: Invalid value: 0: cannot be zero at the same time as minCandidateNodesPercentage".to_owned());
        }
        match errors.len() {
            0 => Ok(DefaultPreemption { args }),
            1 => Err(errors.remove(0)),
            _ => Err(format!("[{}]", errors.join(", "))),
        }
    }

    /// Upstream's `calculateNumCandidates`.
    pub fn num_candidates(&self, num_nodes: usize) -> usize {
        let pct = usize::try_from(self.args.min_candidate_nodes_percentage).unwrap_or(0);
        let abs = usize::try_from(self.args.min_candidate_nodes_absolute).unwrap_or(0);
        (num_nodes * pct / 100).max(abs).min(num_nodes)
    }

    /// Upstream's `Evaluator.Preempt`, up to choosing the node; messages
    /// without the `preemption: ` prefix.
    fn preempt(
        &self,
        framework: &Framework,
        state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        rejections: &NodeStatuses,
    ) -> Result<PostFilterResult, Status> {
        eligible(pod, snapshot, rejections).map_err(Status::unschedulable)?;
        let potential: Vec<&Arc<NodeInfo>> = snapshot
            .nodes
            .iter()
            .filter(|n| {
                rejections
                    .get(n.name())
                    .is_some_and(|s| s.code == Code::Unschedulable)
            })
            .collect();
        let mut statuses = NodeStatuses::new();
        let mut found = Vec::new();
        if !potential.is_empty() {
            let pdbs = pdb::compile(&snapshot.pdbs);
            let offset = rand::random_range(0..potential.len());
            let dry = candidates::dry_run(
                framework,
                state,
                pod,
                snapshot,
                &potential,
                &pdbs,
                offset,
                self.num_candidates(potential.len()),
            );
            if dry.candidates.is_empty()
                && let Some(error) = dry.errors.into_iter().next()
            {
                return Err(error);
            }
            statuses = dry.statuses;
            found = dry.candidates;
        }
        let Some(best) = candidates::pick_one_node_for_preemption(&found, jiff::Timestamp::now())
            .and_then(|i| found.into_iter().nth(i))
        else {
            return Err(Status::unschedulable(no_candidate_message(
                snapshot, statuses,
            )));
        };
        tracing::debug!(
            pod = %crate::framework::node_info::pod_key(pod),
            node = best.node,
            victims = best.victims.len(),
            "the target node for the preemption is determined"
        );
        Ok(PostFilterResult {
            nominated_node: Some(best.node),
            victims: best.victims.into_iter().map(|v| v.pod.clone()).collect(),
        })
    }
}

/// Upstream's `PodEligibleToPreemptOthers`; the error is the reason.
pub fn eligible(
    pod: &Pod,
    snapshot: &Snapshot,
    rejections: &NodeStatuses,
) -> Result<(), &'static str> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Err("not eligible due to preemptionPolicy=Never.");
    }
    let Some(nominated) = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return Ok(());
    };
    // A nominated node that can no longer work (absent, or rejected for
    // a reason preemption cannot fix) does not hold the pod back.
    let unresolvable = rejections
        .get(nominated)
        .is_none_or(|s| s.code == Code::UnschedulableAndUnresolvable);
    if unresolvable {
        return Ok(());
    }
    let priority = pod_priority(pod);
    if let Some(node) = snapshot.get(nominated)
        && node
            .pods
            .iter()
            .any(|p| p.priority() < priority && terminating_by_preemption(&p.pod))
    {
        // The room an earlier preemption made is on its way: wait for
        // it instead of evicting more.
        return Err("not eligible due to a terminating pod on the nominated node.");
    }
    Ok(())
}

/// Being deleted because the scheduler preempted it (upstream's
/// `podTerminatingByPreemption`).
pub fn terminating_by_preemption(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_none() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == execute::DISRUPTION_TARGET))
        .is_some_and(|c| {
            c.status == "True" && c.reason.as_deref() == Some(execute::PREEMPTION_BY_SCHEDULER)
        })
}

/// Upstream's FitError for "no candidate": the dry run's per-node
/// statuses, every node it did not try counted as `Preemption is not
/// helpful for scheduling`.
fn no_candidate_message(snapshot: &Snapshot, mut statuses: NodeStatuses) -> String {
    for n in &snapshot.nodes {
        if !statuses.contains_key(n.name()) {
            statuses.insert(
                n.name().to_owned(),
                Status::unresolvable("Preemption is not helpful for scheduling"),
            );
        }
    }
    FitError {
        num_nodes: snapshot.len(),
        statuses,
        ..FitError::default()
    }
    .to_string()
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::PostFilter]
    }

    /// It never rejects a pod itself (the filters that did decide when
    /// to retry).
    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }

    /// Reasons carry upstream's `preemption: ` prefix. Upstream's
    /// messages end with a period and skiff's [`FitError`] adds one
    /// after the PostFilter message, so the message's own is dropped.
    fn post_filter(
        &self,
        framework: &Framework,
        state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        rejections: &NodeStatuses,
    ) -> Result<PostFilterResult, Status> {
        self.preempt(framework, state, pod, snapshot, rejections)
            .map_err(|mut s| {
                s.reasons = s
                    .reasons
                    .iter()
                    .map(|r| format!("preemption: {}", r.trim_end_matches('.')))
                    .collect();
                s
            })
    }
}
