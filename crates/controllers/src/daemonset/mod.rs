//! The DaemonSet controller (`daemonset-controller`), as upstream's: one
//! pod per eligible node ([`placement`]), rolled by RollingUpdate
//! ([`rollout`]) or OnDelete, with ControllerRevisions as history.
//!
//! * Watches pods and ControllerRevisions (each maps to its controlling
//!   DaemonSet) and nodes (a node change re-syncs every DaemonSet).
//! * A sync, once its [`expectations`] are met: creates pods on nodes that
//!   should run one and have none (slow-start batches), deletes pods on
//!   nodes that may no longer run them or that are gone, extra pods on a
//!   node, and failed pods (with [`backoff`]); then the rolling-update
//!   step; then `status` through the status subresource.
//! * Pods carry `controller-revision-hash` and `pod-template-generation`
//!   and are pinned to their node by required node affinity; the
//!   scheduler binds them.

pub mod backoff;
pub mod expectations;
mod manage;
pub mod placement;
pub mod rollout;
mod status;
mod sync_nodes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::replicaset::pods::{controller_of, is_available, is_ready};
use crate::statefulset::adoption;
use crate::statefulset::history::{self, HASH_LABEL};
use expectations::Expectations;
use placement::Fit;

/// Label with the DaemonSet generation a pod was made from (deprecated
/// upstream, still set).
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Most pods created or deleted in one sync (upstream's burstReplicas).
const BURST: usize = 250;

/// Tuning of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// DaemonSets reconciled in parallel (`--concurrent-daemonset-syncs`).
    pub concurrency: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { concurrency: 2 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the pod or node cache stopped")]
    CacheStopped,
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    nodes: Store<Node>,
    expectations: Expectations,
    backoff: backoff::Backoff,
    recorder: Recorder,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (pod_cache, pod_writer) = reflector::store::<Pod>();
    let (rev_cache, rev_writer) = reflector::store::<ControllerRevision>();
    let (node_cache, node_writer) = reflector::store::<Node>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_cache,
        revisions: rev_cache,
        nodes: node_cache,
        expectations: Expectations::default(),
        backoff: backoff::Backoff::default(),
        recorder: Recorder::new(client.clone(), "daemonset-controller"),
    });
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let observer = ctx.clone();
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
        .map_ok(move |event| {
            if let watcher::Event::Delete(pod) = &event
                && let Some(key) = daemonset_key(pod)
            {
                observer.expectations.observe_gone(
                    &key,
                    &pod.name_any(),
                    pod.metadata.uid.as_deref(),
                );
            }
            event
        })
        .reflect(pod_writer)
        .touched_objects();
    let node_events = watcher(Api::<Node>::all(client), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .touched_objects()
        .filter_map(|r| futures::future::ready(r.ok().map(|_| ())));
    controller
        .watches_stream(pod_events, |pod: Pod| {
            let owner = controller_of(&pod.metadata)?;
            (owner.kind == "DaemonSet" && owner.api_version.starts_with("apps/"))
                .then(|| ObjectRef::new(&owner.name).within(&pod.namespace().unwrap_or_default()))
        })
        .reconcile_all_on(node_events)
        .watches_stream(rev_events, |rev: ControllerRevision| {
            history::owner_of(&rev, "DaemonSet")
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "daemonset sync");
            }
        })
        .await;
    Ok(())
}

/// `namespace/name` of the DaemonSet controlling `pod`.
fn daemonset_key(pod: &Pod) -> Option<String> {
    let owner = controller_of(&pod.metadata)?;
    (owner.kind == "DaemonSet")
        .then(|| format!("{}/{}", pod.namespace().unwrap_or_default(), owner.name))
}

fn error_policy(_ds: Arc<DaemonSet>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "daemonset sync failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

fn controller_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "DaemonSet".to_owned(),
        name: ds.name_any(),
        uid: ds.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The template as daemon pods get it: default tolerations added.
fn daemon_template(ds: &DaemonSet) -> PodTemplateSpec {
    let mut t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    placement::add_default_tolerations(t.spec.get_or_insert_with(Default::default));
    t
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    ctx.revisions
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    ctx.nodes
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    let Some(spec) = ds.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let key = format!("{ns}/{name}");
    let uid = ds.uid().unwrap_or_default();
    let rev_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let status = ds.status.clone().unwrap_or_default();

    let mut revs = history::owned(&ctx.revisions, &ns, &uid);
    let synced = history::sync(
        &rev_api,
        controller_ref(&ds),
        &spec.template,
        &mut revs,
        status.collision_count.unwrap_or(0),
    )
    .await?;
    let hash = synced
        .update
        .labels()
        .get(HASH_LABEL)
        .cloned()
        .unwrap_or_else(|| history::hash(&spec.template, None));

    let template = daemon_template(&ds);
    let pod_spec = template.spec.clone().unwrap_or_default();
    let nodes: Vec<Arc<Node>> = {
        let mut n = ctx.nodes.state();
        n.sort_by_key(|n| n.name_any());
        n
    };
    let fits: BTreeMap<String, Fit> = nodes
        .iter()
        .map(|n| (n.name_any(), placement::fit(&pod_spec, n)))
        .collect();
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    let mut nowhere: Vec<Arc<Pod>> = Vec::new();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
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
        &controller_ref(&ds),
        false,
        |_| true,
    )
    .await?;
    for pod in owned {
        match placement::target_node(&pod).filter(|n| fits.contains_key(n)) {
            Some(node) => by_node.entry(node).or_default().push(pod),
            None => nowhere.push(pod),
        }
    }
    for pods in by_node.values_mut() {
        pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    }

    let now = Timestamp::now();
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let desired = i32::try_from(fits.values().filter(|f| f.should_run).count()).unwrap_or(0);
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete");
    let (max_surge, max_unavailable) = {
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        rollout::fenceposts(
            ru.and_then(|r| r.max_surge.as_ref()),
            ru.and_then(|r| r.max_unavailable.as_ref()),
            desired,
        )
    };
    let surge = rolling && max_surge > 0;

    let mut plan = manage::Plan::default();
    if ctx.expectations.satisfied(&key, &ns, &ctx.pods) {
        manage::manage(&ctx, &ds, &key, &fits, &by_node, surge, &hash, &mut plan);
        plan.delete.extend(
            nowhere
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .cloned(),
        );
        if rolling {
            let should_run: Vec<(String, Vec<&Pod>)> = fits
                .iter()
                .filter(|(_, f)| f.should_run)
                .map(|(n, _)| {
                    let pods = by_node
                        .get(n)
                        .map(|ps| ps.iter().map(AsRef::as_ref).collect())
                        .unwrap_or_default();
                    (n.clone(), pods)
                })
                .collect();
            let step = rollout::Rollout {
                nodes: &should_run,
                hash: &hash,
                max_surge,
                max_unavailable,
                min_ready_seconds: min_ready,
                now,
            }
            .step();
            let names: HashSet<String> = step.delete.into_iter().collect();
            for pods in by_node.values() {
                plan.delete.extend(
                    pods.iter()
                        .filter(|p| names.contains(&p.name_any()))
                        .cloned(),
                );
            }
            plan.create_on.extend(step.create_on);
        }
        let result = sync_nodes::execute(&ctx, &ds, &key, &template, &hash, &mut plan).await;
        status::write_status(&ctx, &ds, &fits, &by_node, &hash, synced.collision_count).await?;
        result?;
    } else {
        status::write_status(&ctx, &ds, &fits, &by_node, &hash, synced.collision_count).await?;
        // The pod events normally wake it first.
        plan.wake_in(Duration::from_secs(2));
    }

    let mut live: HashSet<String> = HashSet::from([hash.clone()]);
    live.extend(
        by_node
            .values()
            .flatten()
            .chain(nowhere.iter())
            .filter_map(|p| p.labels().get(HASH_LABEL).cloned()),
    );
    let live_names: HashSet<String> = revs
        .iter()
        .filter(|r| r.labels().get(HASH_LABEL).is_some_and(|h| live.contains(h)))
        .map(ResourceExt::name_any)
        .collect();
    history::truncate(
        &rev_api,
        &revs,
        &live_names,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;

    if min_ready > 0
        && by_node
            .values()
            .flatten()
            .any(|p| is_ready(p) && !is_available(p, min_ready, now))
    {
        plan.wake_in(Duration::from_secs(1));
    }
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}
