//! The StatefulSet controller (`statefulset-controller`), as upstream's:
//! pods with a stable identity `<set>-<ordinal>` ([`identity`]), their
//! claims from `volumeClaimTemplates` ([`claims`]), ordered or parallel
//! creation, scale-down and rolling updates ([`sync`]), and the revision
//! history as ControllerRevisions ([`history`]).
//!
//! * One pod watch feeds a cache and the triggers (a pod maps to its
//!   controlling StatefulSet); a ControllerRevision watch feeds a second
//!   cache and re-syncs the revision's owner. Claims are listed live when
//!   the set has volumeClaimTemplates.
//! * Pods have fixed names, so a stale cache cannot duplicate them: a
//!   repeated create gets 409, a repeated delete has a uid precondition.
//! * Status (`replicas`, `readyReplicas`, `currentReplicas`,
//!   `updatedReplicas`, `availableReplicas`, revisions, `collisionCount`,
//!   `observedGeneration`) is written through the status subresource;
//!   `currentRevision` becomes `updateRevision` once a RollingUpdate has
//!   replaced and readied every pod.
//!
//! Orphan pods named like the set's and matching its selector are adopted
//! ([`adoption`]). Not done: adopting orphan revisions.

pub mod adoption;
pub mod claims;
pub mod history;
pub mod identity;
pub mod pods;
mod status;
pub mod sync;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::replicaset::pods::{controller_of, is_available, is_ready};

/// Tuning of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// StatefulSets reconciled in parallel (`--concurrent-statefulset-syncs`).
    pub concurrency: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { concurrency: 5 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the pod cache stopped")]
    CacheStopped,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (pod_cache, writer) = reflector::store::<Pod>();
    let (rev_cache, rev_writer) = reflector::store::<ControllerRevision>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_cache,
        revisions: rev_cache,
        recorder: Recorder::new(client.clone(), "statefulset-controller"),
    });
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let rev_events = watcher(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(rev_writer)
    .touched_objects();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        // Pod caches: managedFields are never read and take much memory.
        .modify(|p| p.metadata.managed_fields = None)
        .reflect(writer)
        .touched_objects();
    controller
        .watches_stream(pod_events, |pod: Pod| set_of(&pod))
        .watches_stream(rev_events, |rev: ControllerRevision| {
            history::owner_of(&rev, "StatefulSet")
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "statefulset sync");
            }
        })
        .await;
    Ok(())
}

/// The StatefulSet controlling `pod`, if any.
fn set_of(pod: &Pod) -> Option<ObjectRef<StatefulSet>> {
    let owner = controller_of(&pod.metadata)?;
    (owner.kind == "StatefulSet" && owner.api_version.starts_with("apps/"))
        .then(|| ObjectRef::new(&owner.name).within(&pod.namespace().unwrap_or_default()))
}

fn error_policy(_set: Arc<StatefulSet>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "statefulset sync failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

fn controller_ref(set: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "StatefulSet".to_owned(),
        name: set.name_any(),
        uid: set.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    ctx.revisions
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    let Some(spec) = set.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if set.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the pods (and claims it owns).
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.uid().unwrap_or_default();
    let rev_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let claim_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let status = set.status.clone().unwrap_or_default();

    let mut revs = history::owned(&ctx.revisions, &ns, &uid);
    let synced = history::sync(
        &rev_api,
        controller_ref(&set),
        &spec.template,
        &mut revs,
        status.collision_count.unwrap_or(0),
    )
    .await?;
    let update = synced.update;
    let current = status
        .current_revision
        .as_ref()
        .and_then(|n| revs.iter().find(|r| &r.name_any() == n))
        .cloned()
        .unwrap_or_else(|| update.clone());
    let current_template = history::template_of(&current).unwrap_or_else(|| spec.template.clone());
    let (current_name, update_name) = (current.name_any(), update.name_any());

    // The set's pods by ordinal; others (scaled away) are condemned.
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let want = spec.replicas.unwrap_or(1).max(0);
    let mut replicas: Vec<Option<Arc<Pod>>> = vec![None; usize::try_from(want).unwrap_or(0)];
    let mut condemned: Vec<(i32, Arc<Pod>)> = Vec::new();
    let in_namespace: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .collect();
    let owned = adoption::claim(
        &pod_api,
        in_namespace,
        &spec.selector,
        &controller_ref(&set),
        false,
        |p| identity::ordinal_of(&name, &p.name_any()).is_some(),
    )
    .await?;
    for pod in &owned {
        let Some(ordinal) = identity::ordinal_of(&name, &pod.name_any()) else {
            continue;
        };
        match usize::try_from(ordinal - start) {
            Ok(i) if i < replicas.len() => replicas[i] = Some(pod.clone()),
            _ => condemned.push((ordinal, pod.clone())),
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));

    let existing_claims = claims::existing(&claim_api, &set).await?;
    let now = Timestamp::now();
    let mut pass = sync::Pass {
        set: &set,
        owner: controller_ref(&set),
        pods: &pod_api,
        claims: &claim_api,
        existing_claims: &existing_claims,
        recorder: &ctx.recorder,
        revisions: sync::Revisions {
            current_name: &current_name,
            current_template: &current_template,
            update_name: &update_name,
            update_template: &spec.template,
        },
        replicas,
        start,
        condemned,
        now,
    };
    let acted = pass.run().await;

    status::write_status(
        &set,
        &ctx,
        &owned,
        (&current_name, &update_name),
        synced.collision_count,
    )
    .await?;
    acted?;

    let mut live: HashSet<String> = [current_name, update_name].into_iter().collect();
    live.extend(
        owned
            .iter()
            .filter_map(|p| identity::revision_of(p).map(str::to_owned)),
    );
    history::truncate(
        &rev_api,
        &revs,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;

    // Wake up when a ready pod becomes available.
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    if min_ready > 0
        && owned
            .iter()
            .any(|p| is_ready(p) && !is_available(p, min_ready, now))
    {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}
