//! The scheduling framework: a profile's plugins per extension point and
//! the scheduling cycle that runs them, as upstream's `frameworkImpl` and
//! `schedulePod`: PreFilter once, Filter over nodes in parallel until
//! enough feasible nodes are found (`percentageOfNodesToScore`, adaptive
//! by default), PostFilter when none is, then PreScore, Score (+
//! NormalizeScore, weights) and the highest total wins (ties at random).

pub mod cycle_state;
pub mod fit_error;
pub mod node_info;
pub mod parallel;
pub mod plugin;
pub mod snapshot;
pub mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Pod;

pub use cycle_state::CycleState;
pub use fit_error::FitError;
pub use node_info::{NodeInfo, PodInfo};
pub use plugin::{
    ClusterEvent, ExtensionPoint, MAX_NODE_SCORE, MIN_NODE_SCORE, NodeScore, NodeStatuses, Plugin,
    PostFilterResult, PreFilterResult,
};
pub use snapshot::Snapshot;
pub use status::{Code, Status};

/// Upstream: below this many nodes every node is evaluated.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Upstream: the adaptive percentage never goes below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// How many feasible nodes to look for among `all` (upstream's
/// `numFeasibleNodesToFind`): with no configured percentage, 50% minus 1%
/// per 125 nodes, at least 5%, and never fewer than 100 nodes.
pub fn num_feasible_nodes_to_find(percentage: Option<u32>, all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let percentage = match percentage {
        Some(p) if p >= 100 => return all,
        Some(p) if p > 0 => p as usize,
        _ => (50usize.saturating_sub(all / 125)).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND),
    };
    (all * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Why an attempt did not produce a node.
#[derive(Debug)]
pub enum ScheduleError {
    /// No node fits (and what PostFilter made of it).
    Unschedulable(Box<FitError>),
    /// A plugin failed: retry with backoff.
    Internal(Status),
}

/// A plugin enabled at a point (with its weight, for Score).
#[derive(Clone)]
struct Enabled {
    plugin: Arc<dyn Plugin>,
    weight: i64,
}

/// One profile: the plugins per point, served for one `schedulerName`.
pub struct Framework {
    pub profile_name: String,
    pre_enqueue: Vec<Enabled>,
    pre_filter: Vec<Enabled>,
    filter: Vec<Enabled>,
    post_filter: Vec<Enabled>,
    pre_score: Vec<Enabled>,
    score: Vec<Enabled>,
    reserve: Vec<Enabled>,
    permit: Vec<Enabled>,
    pre_bind: Vec<Enabled>,
    post_bind: Vec<Enabled>,
    /// Whether DefaultBinder (the `pods/binding` call) is enabled.
    pub binds: bool,
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Upstream's `nextStartNodeIndex`: Filter starts where the last
    /// attempt stopped, so work spreads over every node.
    next_start: AtomicUsize,
}

impl Framework {
    pub fn new(profile_name: impl Into<String>) -> Self {
        Framework {
            profile_name: profile_name.into(),
            pre_enqueue: Vec::new(),
            pre_filter: Vec::new(),
            filter: Vec::new(),
            post_filter: Vec::new(),
            pre_score: Vec::new(),
            score: Vec::new(),
            reserve: Vec::new(),
            permit: Vec::new(),
            pre_bind: Vec::new(),
            post_bind: Vec::new(),
            binds: false,
            percentage_of_nodes_to_score: None,
            next_start: AtomicUsize::new(0),
        }
    }

    /// Enables `plugin` at `point` (in call order); an error when the
    /// plugin does not implement it.
    pub fn enable(
        &mut self,
        plugin: Arc<dyn Plugin>,
        point: ExtensionPoint,
        weight: i64,
    ) -> Result<(), String> {
        if !plugin.points().contains(&point) {
            return Err(format!(
                "plugin {:?} does not extend {} plugin",
                plugin.name(),
                point.config_name()
            ));
        }
        let entry = Enabled { plugin, weight };
        let list = match point {
            ExtensionPoint::PreEnqueue => &mut self.pre_enqueue,
            ExtensionPoint::PreFilter => &mut self.pre_filter,
            ExtensionPoint::Filter => &mut self.filter,
            ExtensionPoint::PostFilter => &mut self.post_filter,
            ExtensionPoint::PreScore => &mut self.pre_score,
            ExtensionPoint::Score => &mut self.score,
            ExtensionPoint::Reserve => &mut self.reserve,
            ExtensionPoint::Permit => &mut self.permit,
            ExtensionPoint::PreBind => &mut self.pre_bind,
            ExtensionPoint::PostBind => &mut self.post_bind,
            ExtensionPoint::Bind => {
                self.binds = true;
                return Ok(());
            }
            // Sorting is by priority then arrival (PrioritySort, the only
            // queue sort).
            ExtensionPoint::QueueSort => return Ok(()),
        };
        if list.iter().any(|e| e.plugin.name() == entry.plugin.name()) {
            return Err(format!(
                "plugin {:?} already registered as {:?}",
                entry.plugin.name(),
                point.config_name()
            ));
        }
        list.push(entry);
        Ok(())
    }

    /// Enables `plugin` at every point it implements, with `weight` for
    /// Score (upstream's multiPoint).
    pub fn enable_all(&mut self, plugin: Arc<dyn Plugin>, weight: i64) -> Result<(), String> {
        for &point in plugin.points() {
            self.enable(plugin.clone(), point, weight)?;
        }
        Ok(())
    }

    /// Every plugin name enabled anywhere, for the cluster events they
    /// care about.
    pub fn plugins(&self) -> Vec<Arc<dyn Plugin>> {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for list in [
            &self.pre_enqueue,
            &self.pre_filter,
            &self.filter,
            &self.post_filter,
            &self.pre_score,
            &self.score,
            &self.reserve,
            &self.permit,
            &self.pre_bind,
            &self.post_bind,
        ] {
            for e in list {
                if seen.insert(e.plugin.name()) {
                    all.push(e.plugin.clone());
                }
            }
        }
        all
    }

    /// PreEnqueue (SchedulingGates): may the pod be scheduled at all?
    pub fn pre_enqueue(&self, pod: &Pod) -> Status {
        for e in &self.pre_enqueue {
            let s = e.plugin.pre_enqueue(pod);
            if !s.is_success() {
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    /// One scheduling attempt: the chosen node's name.
    pub fn schedule(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<String, ScheduleError> {
        if snapshot.is_empty() {
            return Err(ScheduleError::Unschedulable(Box::default()));
        }
        let feasible = self.find_feasible(state, pod, snapshot)?;
        if let [only] = feasible.as_slice() {
            return Ok(only.name().to_owned());
        }
        self.run_pre_score(state, pod, snapshot, &feasible)?;
        let totals = self.run_score(state, pod, &feasible)?;
        Ok(select_host(&feasible, &totals))
    }

    /// PreFilter + Filter (+ PostFilter when nothing fits).
    fn find_feasible(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Vec<Arc<NodeInfo>>, ScheduleError> {
        let mut fit = FitError {
            num_nodes: snapshot.len(),
            ..FitError::default()
        };
        let mut allowed: Option<HashSet<String>> = None;
        for e in &self.pre_filter {
            match e.plugin.pre_filter(state, pod, snapshot) {
                Ok(None) => {}
                Ok(Some(names)) => {
                    allowed = Some(match allowed {
                        None => names,
                        Some(a) => a.intersection(&names).cloned().collect(),
                    });
                }
                Err(s) if s.is_skip() => state.skip_filter.push(e.plugin.name()),
                Err(s) if s.is_rejected() => {
                    let s = s.with_plugin(e.plugin.name());
                    fit.pre_filter_msg = Some(s.reasons.join(", "));
                    fit.plugins.insert(e.plugin.name());
                    for n in &snapshot.nodes {
                        fit.statuses.insert(n.name().to_owned(), s.clone());
                    }
                    return Err(self.post_filter(state, pod, snapshot, fit));
                }
                Err(s) => return Err(ScheduleError::Internal(s.with_plugin(e.plugin.name()))),
            }
        }
        // The node preemption nominated first (upstream's
        // evaluateNominatedNode).
        if let Some(nominated) = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .and_then(|n| snapshot.get(n))
        {
            let s = self.filter_with_nominated(state, pod, nominated, snapshot);
            if s.is_success() {
                return Ok(vec![nominated.clone()]);
            }
        }
        let candidates: Vec<&Arc<NodeInfo>> = match &allowed {
            None => snapshot.nodes.iter().collect(),
            Some(names) => snapshot
                .nodes
                .iter()
                .filter(|n| names.contains(n.name()))
                .collect(),
        };
        if candidates.is_empty() {
            fit.pre_filter_msg = Some(
                "node(s) didn't satisfy plugin(s) [".to_owned()
                    + &self
                        .pre_filter
                        .iter()
                        .map(|e| e.plugin.name())
                        .collect::<Vec<_>>()
                        .join(" ")
                    + "]",
            );
            return Err(self.post_filter(state, pod, snapshot, fit));
        }
        let all = candidates.len();
        let want = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, all);
        let start = self.next_start.load(Ordering::Relaxed) % all;
        let mut feasible: Vec<Arc<NodeInfo>> = Vec::with_capacity(want);
        let mut processed = 0;
        let state_ref: &CycleState = state;
        while processed < all && feasible.len() < want {
            let batch = (want - feasible.len()).max(16).min(all - processed);
            let results: Vec<(usize, Status)> =
                parallel::map_range(processed..processed + batch, |i| {
                    let idx = (start + i) % all;
                    (
                        idx,
                        self.filter_with_nominated(state_ref, pod, candidates[idx], snapshot),
                    )
                });
            processed += batch;
            for (idx, s) in results {
                let node = candidates[idx];
                if s.is_success() {
                    if feasible.len() < want {
                        feasible.push(node.clone());
                    }
                } else if s.is_rejected() {
                    fit.plugins.insert(s.plugin);
                    fit.statuses.insert(node.name().to_owned(), s);
                } else {
                    return Err(ScheduleError::Internal(s));
                }
            }
        }
        self.next_start.store(
            (start + feasible.len() + fit.statuses.len()) % all,
            Ordering::Relaxed,
        );
        if feasible.is_empty() {
            return Err(self.post_filter(state, pod, snapshot, fit));
        }
        Ok(feasible)
    }

    /// Upstream's `RunFilterPluginsWithNominatedPods`: the node must fit
    /// the pod both with the pods nominated to it (of equal or higher
    /// priority) and without them.
    pub fn filter_with_nominated(
        &self,
        state: &CycleState,
        pod: &Pod,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> Status {
        let priority = node_info::pod_priority(pod);
        let uid = pod.metadata.uid.as_deref();
        let nominated: Vec<&Arc<PodInfo>> = snapshot
            .nominated
            .get(node.name())
            .into_iter()
            .flatten()
            .filter(|p| p.priority() >= priority && p.pod.metadata.uid.as_deref() != uid)
            .collect();
        if !nominated.is_empty() {
            let mut with = node.clone();
            let mut with_state = state.clone();
            for p in nominated {
                with.add_pod(p.clone());
                for e in &self.pre_filter {
                    let s = e.plugin.add_pod(&mut with_state, pod, p, &with);
                    if !s.is_success() {
                        return s.with_plugin(e.plugin.name());
                    }
                }
            }
            let s = self.run_filters(&with_state, pod, &with);
            if !s.is_success() {
                return s;
            }
        }
        self.run_filters(state, pod, node)
    }

    /// Every Filter plugin in order; the first rejection wins.
    pub fn run_filters(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        for e in &self.filter {
            if state.skip_filter.contains(&e.plugin.name()) {
                continue;
            }
            let s = e.plugin.filter(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    /// The PreFilter plugins' AddPod/RemovePod (for preemption's "what if
    /// these victims were gone").
    pub fn run_add_pod(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        for e in &self.pre_filter {
            let s = e.plugin.add_pod(state, pod, added, node);
            if !s.is_success() {
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    pub fn run_remove_pod(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        for e in &self.pre_filter {
            let s = e.plugin.remove_pod(state, pod, removed, node);
            if !s.is_success() {
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    /// PostFilter: the first plugin that finds a way (or says it is
    /// hopeless) decides.
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        mut fit: FitError,
    ) -> ScheduleError {
        for e in &self.post_filter {
            match e
                .plugin
                .post_filter(self, state, pod, snapshot, &fit.statuses)
            {
                Ok(result) => {
                    fit.post_filter = Some(result);
                    break;
                }
                Err(s) => {
                    if !s.reasons.is_empty() {
                        fit.post_filter_msg = Some(s.reasons.join(", "));
                    }
                    if s.code == Code::Error {
                        tracing::warn!(plugin = e.plugin.name(), reasons = ?s.reasons, "post-filter failed");
                    }
                    if s.code == Code::UnschedulableAndUnresolvable {
                        break;
                    }
                }
            }
        }
        ScheduleError::Unschedulable(Box::new(fit))
    }

    fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        feasible: &[Arc<NodeInfo>],
    ) -> Result<(), ScheduleError> {
        for e in &self.pre_score {
            let s = e.plugin.pre_score(state, pod, snapshot, feasible);
            if s.is_skip() {
                state.skip_score.push(e.plugin.name());
            } else if !s.is_success() {
                return Err(ScheduleError::Internal(s.with_plugin(e.plugin.name())));
            }
        }
        Ok(())
    }

    /// Score → NormalizeScore → × weight, summed per node.
    fn run_score(
        &self,
        state: &CycleState,
        pod: &Pod,
        feasible: &[Arc<NodeInfo>],
    ) -> Result<Vec<i64>, ScheduleError> {
        let active: Vec<&Enabled> = self
            .score
            .iter()
            .filter(|e| !state.skip_score.contains(&e.plugin.name()))
            .collect();
        let raw: Vec<Result<Vec<i64>, Status>> = parallel::map_range(0..feasible.len(), |i| {
            active
                .iter()
                .map(|e| {
                    e.plugin
                        .score(state, pod, &feasible[i])
                        .map_err(|s| s.with_plugin(e.plugin.name()))
                })
                .collect()
        });
        let mut per_node = Vec::with_capacity(raw.len());
        for r in raw {
            per_node.push(r.map_err(ScheduleError::Internal)?);
        }
        let mut totals = vec![0i64; feasible.len()];
        for (j, e) in active.iter().enumerate() {
            let mut scores: Vec<NodeScore> = feasible
                .iter()
                .zip(&per_node)
                .map(|(n, s)| NodeScore {
                    name: n.name().to_owned(),
                    score: s[j],
                })
                .collect();
            let s = e.plugin.normalize_score(state, pod, &mut scores);
            if !s.is_success() {
                return Err(ScheduleError::Internal(s.with_plugin(e.plugin.name())));
            }
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s.score * e.weight;
            }
        }
        Ok(totals)
    }

    /// Reserve at every plugin; on a rejection the ones before are
    /// unreserved (upstream's order: reverse).
    pub fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status {
        for (i, e) in self.reserve.iter().enumerate() {
            let s = e.plugin.reserve(state, pod, node);
            if !s.is_success() {
                for done in self.reserve[..=i].iter().rev() {
                    done.plugin.unreserve(state, pod, node);
                }
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    pub fn unreserve(&self, state: &mut CycleState, pod: &Pod, node: &str) {
        for e in self.reserve.iter().rev() {
            e.plugin.unreserve(state, pod, node);
        }
    }

    pub fn permit(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for e in &self.permit {
            let s = e.plugin.permit(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    pub fn pre_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for e in &self.pre_bind {
            let s = e.plugin.pre_bind(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    pub fn post_bind(&self, state: &CycleState, pod: &Pod, node: &str) {
        for e in &self.post_bind {
            e.plugin.post_bind(state, pod, node);
        }
    }
}

/// The highest total; ties broken uniformly at random (upstream's
/// reservoir sampling in `selectHost`).
fn select_host(feasible: &[Arc<NodeInfo>], totals: &[i64]) -> String {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &t) in totals.iter().enumerate() {
        if i == 0 || t > totals[best] {
            best = i;
            ties = 1;
        } else if t == totals[best] {
            ties += 1;
            if rand::random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    feasible
        .get(best)
        .map(|n| n.name().to_owned())
        .unwrap_or_default()
}

/// Upstream's `DefaultNormalizeScore`: scale to 0..=100 by the maximum,
/// reversed when `reverse` (all-zero scores become 100 when reversed).
pub fn default_normalize(scores: &mut [NodeScore], reverse: bool) {
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
    for s in scores.iter_mut() {
        if max == 0 {
            if reverse {
                s.score = MAX_NODE_SCORE;
            }
            continue;
        }
        let v = MAX_NODE_SCORE * s.score / max;
        s.score = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_percentage_as_upstream() {
        assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(None, 100), 100);
        // 1,000 nodes: 50 - 8 = 42% → 420.
        assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
        // 5,000 nodes: 50 - 40 = 10% → 500.
        assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
        // 6,000 nodes: 50 - 48 = 2% → floor of 5% → 300.
        assert_eq!(num_feasible_nodes_to_find(None, 6000), 300);
        assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
        assert_eq!(num_feasible_nodes_to_find(Some(1), 5000), 100);
    }
}

#[cfg(test)]
mod cycle_tests;
