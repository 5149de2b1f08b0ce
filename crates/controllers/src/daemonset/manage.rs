//! Upstream's podsShouldBeOnNode over every node: what a sync must create
//! and delete so each eligible node runs exactly one daemon pod.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::placement::Fit;
use super::{Ctx, rollout};
use crate::events::EventType;
use crate::replicaset::pods::is_ready;

/// What one sync decided to do.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) create_on: Vec<String>,
    pub(super) delete: Vec<Arc<Pod>>,
    pub(super) requeue: Option<Duration>,
}

impl Plan {
    pub(super) fn wake_in(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}

/// Upstream's podsShouldBeOnNode over every node: which nodes need a pod,
/// which pods must go (ineligible node, failed, extra).
#[allow(clippy::too_many_arguments)]
pub(super) fn manage(
    ctx: &Ctx,
    ds: &DaemonSet,
    key: &str,
    fits: &BTreeMap<String, Fit>,
    by_node: &HashMap<String, Vec<Arc<Pod>>>,
    surge: bool,
    hash: &str,
    plan: &mut Plan,
) {
    let empty = Vec::new();
    for (node, fit) in fits {
        let pods = by_node.get(node).unwrap_or(&empty);
        if fit.should_run && pods.is_empty() {
            plan.create_on.push(node.clone());
            continue;
        }
        let live = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none());
        if !fit.should_continue {
            plan.delete.extend(live.cloned());
            continue;
        }
        let mut running: Vec<&Arc<Pod>> = Vec::new();
        for pod in live {
            match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
                Some("Failed") => {
                    if let Some(wait) = ctx.backoff.try_act(&format!("{key}/{node}")) {
                        plan.wake_in(wait);
                        continue;
                    }
                    ctx.recorder.record(
                        ds,
                        EventType::Warning,
                        "FailedDaemonPod",
                        format!(
                            "Found failed daemon pod {}/{} on node {node}, will try to kill it",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any()
                        ),
                    );
                    plan.delete.push(pod.clone());
                }
                Some("Succeeded") => plan.delete.push(pod.clone()),
                _ => running.push(pod),
            }
        }
        if !surge {
            // Keep the oldest.
            plan.delete
                .extend(running.iter().skip(1).map(|p| (*p).clone()));
            continue;
        }
        // Surge: the oldest new and the oldest old pod may overlap while
        // the new one is not ready yet.
        let (mut new, mut old): (Option<&Arc<Pod>>, Option<&Arc<Pod>>) = (None, None);
        for pod in running {
            let slot = if rollout::is_updated(pod, hash) {
                &mut new
            } else {
                &mut old
            };
            if slot.is_none() {
                *slot = Some(pod);
            } else {
                plan.delete.push(pod.clone());
            }
        }
        if let (Some(new), Some(old)) = (new, old)
            && (!is_ready(old) || is_ready(new))
        {
            plan.delete.push(old.clone());
        }
    }
}
