//! Which nodes preemption could use, and which one it takes: upstream's
//! `DryRunPreemption` and `pickOneNodeForPreemption`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rayon::prelude::*;

use super::pdb::Budget;
use super::victims::{Victims, select_victims_on_node, start_time};
use crate::framework::node_info::pod_priority;
use crate::framework::{
    Code, CycleState, Framework, NodeInfo, NodeStatuses, PodInfo, Snapshot, Status,
};

/// A node where the pod fits once `victims` are gone.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    pub num_pdb_violations: usize,
}

/// What the dry run found.
#[derive(Default)]
pub struct DryRun {
    /// Candidates breaking no PodDisruptionBudget first.
    pub candidates: Vec<Candidate>,
    /// Why each node tried without success is not a candidate.
    pub statuses: NodeStatuses,
    /// Plugin failures (reported only when there is no candidate).
    pub errors: Vec<Status>,
}

/// Tries preemption on `potential` nodes starting at `offset` (random, so
/// repeated preemptions spread over the cluster), a batch at a time in
/// parallel, until `wanted` candidates are found with at least one that
/// breaks no budget — or every node was tried.
#[allow(clippy::too_many_arguments)]
pub fn dry_run(
    framework: &Framework,
    state: &CycleState,
    pod: &Pod,
    snapshot: &Snapshot,
    potential: &[&Arc<NodeInfo>],
    budgets: &[Budget],
    offset: usize,
    wanted: usize,
) -> DryRun {
    let all = potential.len();
    let wanted = wanted.max(1);
    let now = jiff::Timestamp::now();
    let mut fine: Vec<Candidate> = Vec::new();
    let mut violating: Vec<Candidate> = Vec::new();
    let mut out = DryRun::default();
    let mut done = 0;
    while done < all {
        let batch = wanted.min(all - done);
        let results: Vec<(String, Result<Victims, Status>)> = (done..done + batch)
            .into_par_iter()
            .map(|i| {
                let node = potential[(offset + i) % all];
                let mut copy = (**node).clone();
                let mut state = state.clone();
                let r = select_victims_on_node(
                    framework, &mut state, pod, &mut copy, snapshot, budgets, now,
                );
                (node.name().to_owned(), r)
            })
            .collect();
        done += batch;
        for (node, r) in results {
            match r {
                Ok(v) if !v.pods.is_empty() => {
                    let list = if v.num_pdb_violations == 0 {
                        &mut fine
                    } else {
                        &mut violating
                    };
                    if list.len() < wanted {
                        list.push(Candidate {
                            node,
                            victims: v.pods,
                            num_pdb_violations: v.num_pdb_violations,
                        });
                    }
                }
                Ok(_) => {
                    let s =
                        Status::error(format!("expected at least one victim pod on node {node:?}"));
                    out.errors.push(s.clone());
                    out.statuses.insert(node, s);
                }
                Err(s) => {
                    if s.code == Code::Error {
                        out.errors.push(s.clone());
                    }
                    out.statuses.insert(node, s);
                }
            }
        }
        if !fine.is_empty() && fine.len() + violating.len() >= wanted {
            break;
        }
    }
    fine.extend(violating);
    out.candidates = fine;
    out
}

/// Upstream's `pickOneNodeForPreemption`: each rule keeps the candidates
/// that score best; the first rule left with one decides, else the
/// first candidate. Rules: fewest PDB violations; lowest
/// highest-priority victim; smallest sum of victim priorities; fewest
/// victims; latest start among the highest-priority victims (evict what
/// has run the least).
pub fn pick_one_node_for_preemption(
    candidates: &[Candidate],
    now: jiff::Timestamp,
) -> Option<usize> {
    if candidates.is_empty() {
        return None;
    }
    let pdb_violations = |c: &Candidate| -(c.num_pdb_violations as i64);
    let highest_priority = |c: &Candidate| {
        -c.victims
            .first()
            .map_or(i64::from(i32::MIN), |v| i64::from(v.priority()))
    };
    // Shifted by 2^31 so every term is positive: a few negative-priority
    // victims do not beat fewer victims of the same priority.
    let sum_priorities = |c: &Candidate| {
        -c.victims
            .iter()
            .map(|v| i64::from(v.priority()) + i64::from(i32::MAX) + 1)
            .sum::<i64>()
    };
    let num_victims = |c: &Candidate| -(c.victims.len() as i64);
    let latest_start = |c: &Candidate| {
        earliest_start_of_highest(c.victims.iter().map(|v| &*v.pod), now).map_or(i64::MIN, |t| {
            i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
        })
    };
    let rules: [&dyn Fn(&Candidate) -> i64; 5] = [
        &pdb_violations,
        &highest_priority,
        &sum_priorities,
        &num_victims,
        &latest_start,
    ];
    let mut left: Vec<usize> = (0..candidates.len()).collect();
    for rule in rules {
        let scores: Vec<(usize, i64)> = left.iter().map(|&i| (i, rule(&candidates[i]))).collect();
        let best = scores.iter().map(|&(_, s)| s).max().unwrap_or(i64::MIN);
        left = scores
            .into_iter()
            .filter(|&(_, s)| s == best)
            .map(|(i, _)| i)
            .collect();
        if left.len() == 1 {
            break;
        }
    }
    left.first().copied()
}

/// The earliest start time among the highest-priority pods (upstream's
/// `GetEarliestPodStartTime`).
fn earliest_start_of_highest<'a>(
    pods: impl Iterator<Item = &'a Pod>,
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    let mut best: Option<(i32, jiff::Timestamp)> = None;
    for p in pods {
        let (priority, start) = (pod_priority(p), start_time(p, now));
        best = match best {
            Some((bp, bs)) if priority < bp || (priority == bp && bs <= start) => Some((bp, bs)),
            _ => Some((priority, start)),
        };
    }
    best.map(|(_, t)| t)
}
