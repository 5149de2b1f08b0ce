//! A DaemonSet's status (upstream's updateDaemonSetStatus): desired,
//! current, misscheduled, ready, available and updated node counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::placement::Fit;
use super::{Ctx, Error, rollout};
use crate::replicaset::pods::{is_available, is_ready};

/// Upstream's updateDaemonSetStatus, from the cache before this sync.
pub(super) async fn write_status(
    ctx: &Ctx,
    ds: &DaemonSet,
    fits: &BTreeMap<String, Fit>,
    by_node: &HashMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    collision_count: i32,
) -> Result<(), Error> {
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .map_or(0, i64::from);
    let now = Timestamp::now();
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for (node, fit) in fits {
        let first = by_node.get(node).and_then(|p| p.first());
        if fit.should_run {
            desired += 1;
            if let Some(pod) = first {
                current += 1;
                if is_ready(pod) {
                    ready += 1;
                    if is_available(pod, min_ready, now) {
                        available += 1;
                    }
                }
                if rollout::is_updated(pod, hash) {
                    updated += 1;
                }
            }
        } else if first.is_some() {
            misscheduled += 1;
        }
    }
    let unavailable = desired - available;
    let s = ds.status.clone().unwrap_or_default();
    let unchanged = s.desired_number_scheduled == desired
        && s.current_number_scheduled == current
        && s.number_misscheduled == misscheduled
        && s.number_ready == ready
        && s.number_available.unwrap_or(0) == available
        && s.number_unavailable.unwrap_or(0) == unavailable
        && s.updated_number_scheduled.unwrap_or(0) == updated
        && s.collision_count.unwrap_or(0) == collision_count
        && s.observed_generation == ds.metadata.generation;
    if unchanged {
        return Ok(());
    }
    let patch = json!({"status": {
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": available,
        "numberUnavailable": unavailable,
        "updatedNumberScheduled": updated,
        "collisionCount": collision_count,
        "observedGeneration": ds.metadata.generation,
    }});
    let api: Api<DaemonSet> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    crate::patch_status(&api, &ds.name_any(), &patch).await?;
    Ok(())
}
