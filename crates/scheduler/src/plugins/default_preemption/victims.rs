//! The fewest, least important pods to evict from one node so the pod
//! fits there (upstream's `SelectVictimsOnNode`): take away every
//! lower-priority pod, check the pod fits, then put back as many as
//! possible, most important first.

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::pdb::{self, Budget};
use crate::framework::node_info::pod_priority;
use crate::framework::{CycleState, Framework, NodeInfo, PodInfo, Snapshot, Status};

/// What evicting makes room on one node.
#[derive(Clone, Debug, Default)]
pub struct Victims {
    /// Most important first.
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of them break a PodDisruptionBudget.
    pub num_pdb_violations: usize,
}

/// `status.startTime`, or `now` for a pod that has not started (upstream's
/// `GetPodStartTime`; one `now` per attempt keeps the order consistent).
pub fn start_time(pod: &Pod, now: jiff::Timestamp) -> jiff::Timestamp {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0)
}

/// Upstream's `MoreImportantPod` as an ordering (more important first):
/// higher priority, then the one running longer.
pub fn by_importance(a: &Pod, b: &Pod, now: jiff::Timestamp) -> Ordering {
    pod_priority(b)
        .cmp(&pod_priority(a))
        .then_with(|| start_time(a, now).cmp(&start_time(b, now)))
}

/// Victims on `node` (a copy the caller gives up, with `state` a copy of
/// the attempt's state): the pod fits once they are gone. A rejection
/// when even evicting every lower-priority pod is not enough; an error
/// status when a plugin failed.
pub fn select_victims_on_node(
    framework: &Framework,
    state: &mut CycleState,
    pod: &Pod,
    node: &mut NodeInfo,
    snapshot: &Snapshot,
    budgets: &[Budget],
    now: jiff::Timestamp,
) -> Result<Victims, Status> {
    let priority = pod_priority(pod);
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority() < priority)
        .cloned()
        .collect();
    for p in &potential {
        remove(framework, state, pod, node, p)?;
    }
    if potential.is_empty() {
        return Err(Status::unresolvable(
            "No preemption victims found for incoming pod",
        ));
    }
    // Affinity of the pod to one of the victims is not considered
    // (upstream: not worth the cost, and not a recommended setup).
    let s = framework.filter_with_nominated(state, pod, node, snapshot);
    if !s.is_success() {
        return Err(s);
    }
    potential.sort_by(|a, b| by_importance(&a.pod, &b.pod, now));
    // PDB-violating pods get the first chance to stay, then the others;
    // each group most important first.
    let (violating, fine) = pdb::split_by_violation(potential, budgets);
    let mixed = !violating.is_empty() && !fine.is_empty();
    let mut victims = Victims::default();
    for (group_violates, group) in [(true, violating), (false, fine)] {
        for p in group {
            node.add_pod(p.clone());
            let s = framework.run_add_pod(state, pod, &p, node);
            if !s.is_success() {
                return Err(Status::error(format!(
                    "adding back {}: {:?}",
                    p.key, s.reasons
                )));
            }
            if !framework
                .filter_with_nominated(state, pod, node, snapshot)
                .is_success()
            {
                remove(framework, state, pod, node, &p)?;
                if group_violates {
                    victims.num_pdb_violations += 1;
                }
                victims.pods.push(p);
            }
        }
    }
    if mixed {
        victims
            .pods
            .sort_by(|a, b| by_importance(&a.pod, &b.pod, now));
    }
    Ok(victims)
}

/// Takes `victim` off `node` and tells the PreFilter extensions.
fn remove(
    framework: &Framework,
    state: &mut CycleState,
    pod: &Pod,
    node: &mut NodeInfo,
    victim: &PodInfo,
) -> Result<(), Status> {
    if !node.remove_pod(&victim.key) {
        return Err(Status::error(format!(
            "pod {} not found on node {}",
            victim.key,
            node.name()
        )));
    }
    let s = framework.run_remove_pod(state, pod, victim, node);
    if !s.is_success() {
        return Err(Status::error(format!(
            "removing {}: {:?}",
            victim.key, s.reasons
        )));
    }
    Ok(())
}
