//! A StatefulSet's status, as upstream computes it: pod counts by
//! readiness and revision, and `currentRevision` moving to
//! `updateRevision` once a RollingUpdate is complete.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Ctx, Error, identity, pods};
use crate::replicaset::pods::is_available;

/// Writes the status computed from `pods` (the cache before this pass)
/// when it changed.
pub(super) async fn write_status(
    set: &StatefulSet,
    ctx: &Ctx,
    pods: &[Arc<Pod>],
    (current, update): (&str, &str),
    collision_count: i32,
) -> Result<(), Error> {
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .map_or(0, i64::from);
    let now = Timestamp::now();
    let live: Vec<&Pod> = pods
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| !pods::is_terminating(p))
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(live.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let replicas = count(&|_| true);
    let ready = count(&pods::is_running_and_ready);
    let available = count(&|p| pods::is_running_and_ready(p) && is_available(p, min_ready, now));
    let mut current_replicas = count(&|p| identity::revision_of(p) == Some(current));
    let updated = count(&|p| identity::revision_of(p) == Some(update));
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        != Some("OnDelete");
    let mut current_revision = current;
    // Upstream's completeRollingUpdate.
    if rolling && updated == replicas && ready == replicas {
        current_revision = update;
        current_replicas = updated;
    }
    let s = set.status.clone().unwrap_or_default();
    let unchanged = s.replicas == replicas
        && s.ready_replicas.unwrap_or(0) == ready
        && s.available_replicas.unwrap_or(0) == available
        && s.current_replicas.unwrap_or(0) == current_replicas
        && s.updated_replicas.unwrap_or(0) == updated
        && s.current_revision.as_deref() == Some(current_revision)
        && s.update_revision.as_deref() == Some(update)
        && s.collision_count.unwrap_or(0) == collision_count
        && s.observed_generation == set.metadata.generation;
    if unchanged {
        return Ok(());
    }
    let patch = json!({"status": {
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current_replicas,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update,
        "collisionCount": collision_count,
        "observedGeneration": set.metadata.generation,
    }});
    let api: Api<StatefulSet> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    crate::patch_status(&api, &set.name_any(), &patch).await?;
    Ok(())
}
