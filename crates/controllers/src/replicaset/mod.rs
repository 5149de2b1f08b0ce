//! The ReplicaSet controller (`replicaset-controller`), as upstream's:
//! keeps `spec.replicas` active pods matching the selector.
//!
//! * One pod watch feeds a cache ([`reflector`]) and the triggers: a pod
//!   maps to its controlling ReplicaSet, an orphan to every ReplicaSet in
//!   its namespace whose selector matches it.
//! * Reconcile (level-triggered, one at a time per ReplicaSet): claim pods
//!   (adopt matching orphans, release owned pods that stopped matching),
//!   then — once the expectations are met — create pods from the template
//!   in slow-start batches (1, 2, 4, …, stopping at the first error) or
//!   delete the surplus ranked as upstream ([`pods::pods_to_delete`]),
//!   then write `status` ([`status`]: counts and the `ReplicaFailure`
//!   condition) through the status subresource.
//! * The loop is generic over [`ReplicaOwner`], so the
//!   ReplicationController controller
//!   ([`crate::replication_controller`]) is this same code.
//! * **Expectations**: the names of pods it created and the uids of pods it
//!   deleted, per ReplicaSet, until the cache shows them (or 5 minutes
//!   pass), so a slow watch cannot cause duplicate creates or deletes.

pub mod owner;
pub mod pods;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::EventType;
pub use owner::ReplicaOwner;

/// How long an unmet expectation holds a ReplicaSet back (upstream's
/// ExpectationsTimeout).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Most pods created or deleted in one sync (upstream's burstReplicas).
const BURST_REPLICAS: usize = 500;

/// Tuning of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// ReplicaSets reconciled in parallel (`--concurrent-replicaset-syncs`).
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

#[derive(Default)]
struct Expectation {
    /// Names of pods created and not yet seen in the cache.
    creates: HashSet<String>,
    /// Uids of pods deleted and still in the cache.
    deletes: HashSet<String>,
    since: Option<Instant>,
}

impl Expectation {
    /// Drops what the cache shows: created pods it has, deleted pods it no
    /// longer has (or has with a deletionTimestamp).
    fn forget_observed(&mut self, pods: &Store<Pod>, namespace: &str) {
        self.creates
            .retain(|name| pods.get(&ObjectRef::new(name).within(namespace)).is_none());
        let cached: HashMap<String, bool> = pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .filter_map(|p| {
                Some((
                    p.metadata.uid.clone()?,
                    p.metadata.deletion_timestamp.is_some(),
                ))
            })
            .collect();
        self.deletes
            .retain(|uid| cached.get(uid).is_some_and(|deleting| !deleting));
    }
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    /// `namespace/name` → what the last sync is waiting to observe.
    expectations: Mutex<HashMap<String, Expectation>>,
    recorder: crate::events::Recorder,
}

impl Ctx {
    /// A watch event for `pod`: a deletion satisfies both kinds of
    /// expectation of its controller (a created pod may be gone before the
    /// cache ever showed it).
    fn observe_deleted<K: ReplicaOwner>(&self, pod: &Pod) {
        let Some(owner) = pods::controller_of(&pod.metadata).filter(|r| owner::refers_to::<K>(r))
        else {
            return;
        };
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), owner.name);
        let mut all = self
            .expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = all.get_mut(&key) {
            e.creates.remove(&pod.name_any());
            if let Some(uid) = &pod.metadata.uid {
                e.deletes.remove(uid);
            }
        }
    }

    /// Whether the last sync's creates and deletes have all been observed
    /// (or timed out); otherwise how long until they time out.
    fn satisfied(&self, key: &str, namespace: &str) -> Result<(), Duration> {
        let mut all = self
            .expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(e) = all.get_mut(key) else {
            return Ok(());
        };
        e.forget_observed(&self.pods, namespace);
        if e.creates.is_empty() && e.deletes.is_empty() {
            all.remove(key);
            return Ok(());
        }
        let waited = e.since.map_or(Duration::ZERO, |s| s.elapsed());
        if waited >= EXPECTATIONS_TIMEOUT {
            tracing::info!(owner = key, "expectations timed out");
            all.remove(key);
            return Ok(());
        }
        Err(EXPECTATIONS_TIMEOUT - waited)
    }

    fn expect(&self, key: &str, f: impl FnOnce(&mut Expectation)) {
        let mut all = self
            .expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let e = all.entry(key.to_owned()).or_default();
        e.since = Some(Instant::now());
        f(e);
    }
}

/// Runs the ReplicaSet controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_for::<ReplicaSet>(client, settings, shutdown).await
}

/// Runs the replica-keeping loop for owners of kind `K` until `shutdown`.
pub async fn run_for<K: ReplicaOwner>(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (pod_cache, writer) = reflector::store::<Pod>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_cache,
        expectations: Mutex::new(HashMap::new()),
        recorder: crate::events::Recorder::new(client.clone(), K::COMPONENT),
    });
    let controller = Controller::new(Api::<K>::all(client.clone()), watcher::Config::default());
    let owners = controller.store();
    let observer = ctx.clone();
    let pod_events = watcher(Api::<Pod>::all(client), watcher::Config::default())
        .default_backoff()
        // Pod caches: managedFields are never read and take much memory.
        .modify(|p| p.metadata.managed_fields = None)
        .map_ok(move |event| {
            if let watcher::Event::Delete(pod) = &event {
                observer.observe_deleted::<K>(pod);
            }
            event
        })
        .reflect(writer)
        .touched_objects();
    controller
        .watches_stream(pod_events, move |pod: Pod| owners_of(&pod, &owners))
        .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, kind = %K::kind(&()), "replica sync");
            }
        })
        .await;
    Ok(())
}

/// The owners a pod event concerns: its controller if that is a `K`, else
/// (an orphan) every `K` in its namespace whose selector matches it.
fn owners_of<K: ReplicaOwner>(pod: &Pod, owners: &Store<K>) -> Vec<ObjectRef<K>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(owner) = pods::controller_of(&pod.metadata) {
        if owner::refers_to::<K>(owner) {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    owners
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns.as_str()))
        .filter(|o| o.selects(pod.metadata.labels.as_ref()))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

fn error_policy<K: ReplicaOwner>(_owner: Arc<K>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, kind = %K::kind(&()), "replica sync failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

fn not_found(e: &kube::Error) -> bool {
    crate::api_code(e) == Some(404)
}

/// The message a user should see for a failed request: the API's own
/// message (as upstream's err.Error()), not the client's debug form.
fn message_of(e: &Error) -> String {
    match e {
        Error::Kube(e) => api_message(e),
        other => other.to_string(),
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

async fn reconcile<K: ReplicaOwner>(owner: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped)?;
    let ns = owner.namespace().unwrap_or_default();
    let name = owner.name_any();
    let key = format!("{ns}/{name}");
    let uid = owner.uid().unwrap_or_default();
    if !owner.has_spec() {
        return Ok(Action::await_change());
    }
    let deleting = owner.meta().deletion_timestamp.is_some();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owner_api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);

    // Whether the owner may adopt, checked live once (upstream's canAdopt).
    let mut can_adopt: Option<bool> = None;
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for pod in ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()) && pods::is_active(p))
    {
        let matches = owner.selects(pod.metadata.labels.as_ref());
        match pods::controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if !deleting {
                    release(&pod_api, &pod, &uid).await?;
                }
            }
            Some(_) => {}
            None if matches && !deleting => {
                if can_adopt.is_none() {
                    let fresh = owner_api.get_opt(&name).await?;
                    can_adopt = Some(fresh.is_some_and(|f| {
                        f.uid().as_deref() == Some(uid.as_str())
                            && f.meta().deletion_timestamp.is_none()
                    }));
                }
                if can_adopt == Some(true)
                    && let Some(adopted) = adopt(&pod_api, &pod, owner.as_ref()).await?
                {
                    owned.push(Arc::new(adopted));
                }
            }
            None => {}
        }
    }

    let mut requeue: Option<Duration> = None;
    let mut manage_error = None;
    if !deleting {
        match ctx.satisfied(&key, &ns) {
            Ok(()) => {
                if let Err(e) = manage(&ctx, owner.as_ref(), &key, &ns, &pod_api, &owned).await {
                    manage_error = Some(e);
                }
            }
            Err(left) => requeue = Some(left),
        }
    }

    // Status from the pods claimed before acting, as upstream.
    let failure = manage_error.as_ref().map(|e| status::Failure {
        message: message_of(e),
    });
    let next = status::desired(owner.as_ref(), &owned, failure.as_ref(), Timestamp::now());
    if let Some(patch) = status::patch(&owner.replica_status(), &next)
        && !crate::patch_status(&owner_api, &name, &patch).await?
    {
        return Ok(Action::await_change());
    }
    if let Some(e) = manage_error {
        return Err(e);
    }
    let min_ready = owner.min_ready_seconds();
    if min_ready > 0 && next.available_replicas < next.ready_replicas {
        let again = Duration::from_secs(u64::try_from(min_ready).unwrap_or(1));
        requeue = Some(requeue.map_or(again, |r| r.min(again)));
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Creates or deletes pods so that `owned` becomes `spec.replicas`.
async fn manage<K: ReplicaOwner>(
    ctx: &Ctx,
    rs: &K,
    key: &str,
    ns: &str,
    pod_api: &Api<Pod>,
    owned: &[Arc<Pod>],
) -> Result<(), Error> {
    let want = usize::try_from(rs.replicas().unwrap_or(1)).unwrap_or(0);
    if owned.len() < want {
        let Some(template) = rs.template() else {
            return Ok(());
        };
        let pod = pods::pod_from_template(template, ns, &rs.name_any(), owner::controller_ref(rs));
        let post = PostParams::default();
        let mut remaining = (want - owned.len()).min(BURST_REPLICAS);
        let mut batch = 1;
        while remaining > 0 {
            let size = batch.min(remaining);
            let results =
                futures::future::join_all((0..size).map(|_| pod_api.create(&post, &pod))).await;
            let mut failed = None;
            let names: Vec<String> = results
                .into_iter()
                .filter_map(|r| match r {
                    Ok(p) => {
                        ctx.recorder.record(
                            rs,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.name_any()),
                        );
                        Some(p.name_any())
                    }
                    Err(e) => {
                        ctx.recorder.record(
                            rs,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {}", api_message(&e)),
                        );
                        failed = Some(e);
                        None
                    }
                })
                .collect();
            if !names.is_empty() {
                ctx.expect(key, |e| e.creates.extend(names));
            }
            if let Some(e) = failed {
                // The rest of this sync's creates are skipped (slow start).
                return Err(e.into());
            }
            remaining -= size;
            batch *= 2;
        }
    } else if owned.len() > want {
        let surplus = (owned.len() - want).min(BURST_REPLICAS);
        let candidates: Vec<&Pod> = owned.iter().map(AsRef::as_ref).collect();
        let victims = pods::pods_to_delete(&candidates, &candidates, surplus);
        let uids: Vec<String> = victims
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        ctx.expect(key, |e| e.deletes.extend(uids));
        let results = futures::future::join_all(victims.iter().map(|p| async move {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            (
                uid,
                p.name_any(),
                pod_api.delete(&p.name_any(), &params).await,
            )
        }))
        .await;
        let mut failed = None;
        for (uid, name, r) in results {
            match r {
                Ok(_) => ctx.recorder.record(
                    rs,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    if !not_found(&e) {
                        ctx.recorder.record(
                            rs,
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {}", api_message(&e)),
                        );
                    }
                    let mut all = ctx
                        .expectations
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if let Some(x) = all.get_mut(key) {
                        x.deletes.remove(&uid);
                    }
                    if !not_found(&e) {
                        failed = Some(e);
                    }
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Sets `rs` as the controller of the orphan `pod` (strategic merge patch
/// with the pod's uid as precondition, as upstream). `None`: the pod is
/// gone or changed.
async fn adopt<K: ReplicaOwner>(
    pod_api: &Api<Pod>,
    pod: &Pod,
    rs: &K,
) -> Result<Option<Pod>, Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [owner::controller_ref(rs)],
        "uid": pod.metadata.uid,
    }});
    match pod_api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(p) => Ok(pods::controller_of(&p.metadata)
            .is_some_and(|r| Some(&r.uid) == rs.meta().uid.as_ref())
            .then_some(p)),
        Err(e)
            if not_found(&e)
                || matches!(&e, kube::Error::Api(s) if s.code == 409 || s.code == 422) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes the owner's reference from `pod`, which stopped matching.
async fn release(pod_api: &Api<Pod>, pod: &Pod, rs_uid: &str) -> Result<(), Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": rs_uid}],
        "uid": pod.metadata.uid,
    }});
    match pod_api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 422) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, deleting: bool) -> Pod {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns", "uid": uid}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn expectations_wait_for_the_cache() {
        let (store, mut writer) = reflector::store::<Pod>();
        let mut e = Expectation::default();
        e.creates.extend(["a".to_owned(), "b".to_owned()]);
        e.deletes
            .extend(["u1".to_owned(), "u2".to_owned(), "u3".to_owned()]);
        writer.apply_watcher_event(&watcher::Event::Apply(pod("a", "ua", false)));
        writer.apply_watcher_event(&watcher::Event::Apply(pod("x1", "u1", false)));
        writer.apply_watcher_event(&watcher::Event::Apply(pod("x2", "u2", true)));
        e.forget_observed(&store, "ns");
        // "b" not seen yet; u1 still there; u2 is being deleted; u3 is gone.
        assert_eq!(e.creates.iter().collect::<Vec<_>>(), ["b"]);
        assert_eq!(e.deletes.iter().collect::<Vec<_>>(), ["u1"]);
        writer.apply_watcher_event(&watcher::Event::Apply(pod("b", "ub", false)));
        writer.apply_watcher_event(&watcher::Event::Delete(pod("x1", "u1", false)));
        e.forget_observed(&store, "ns");
        assert!(e.creates.is_empty() && e.deletes.is_empty());
    }
}
