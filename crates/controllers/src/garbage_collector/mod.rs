//! The garbage collector: deletes objects whose owners are gone and
//! carries out cascading deletion, as upstream's garbage collector.
//!
//! * **Monitors** watch every resource that can be listed, watched and
//!   deleted (found by discovery, re-run periodically so new
//!   CustomResourceDefinitions are covered) and feed the [`graph`] of
//!   owners and dependents, keyed by uid.
//! * **Workers** take uids from a [`crate::work_queue`] and act, always on live reads:
//!   - a dependent whose owners are all gone (checked with a GET of each
//!     owner, by uid) is deleted — in the background, or in the foreground
//!     when an owner waits for it and it has dependents itself;
//!   - an owner being deleted with the `orphan` finalizer loses its
//!     references from every dependent, then the finalizer;
//!   - an owner being deleted with `foregroundDeletion` has its dependents
//!     deleted and loses the finalizer once no dependent with
//!     `blockOwnerDeletion` is left.
//! * Every decision is recomputed from the current state, so a restart at
//!   any point converges; a periodic resync queues every node that needs
//!   attention again.

pub mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::work_queue::Queue;
use graph::{Decision, Graph, Node, OwnerRef, OwnerState, Policy};

/// Tuning of the collector.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Workers acting on queued uids in parallel.
    pub workers: usize,
    /// How often every node that needs attention is queued again.
    pub resync: Duration,
    /// How often discovery runs again to find new resources.
    pub rediscover: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 4,
            resync: Duration::from_secs(30),
            rediscover: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("no served resource has kind {kind} in group {group:?}")]
    UnknownKind { group: String, kind: String },
}

/// Resources upstream's collector ignores.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// How long a monitor that never synced holds the workers back.
const SYNC_PATIENCE: Duration = Duration::from_secs(60);

struct Monitor {
    token: CancellationToken,
    synced: Arc<AtomicBool>,
    started: Instant,
    resource: Arc<ApiResource>,
}

/// (group, kind) → the resource serving it and whether it is namespaced.
type Kinds = HashMap<(String, String), (Arc<ApiResource>, bool)>;

struct Collector {
    client: kube::Client,
    graph: Mutex<Graph>,
    queue: Arc<Queue>,
    /// (group, kind) → resource and whether it is namespaced.
    kinds: RwLock<Kinds>,
    /// `group/plural` → its monitor.
    monitors: Mutex<HashMap<String, Monitor>>,
}

/// Runs the collector until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let gc = Arc::new(Collector {
        client,
        graph: Mutex::new(Graph::default()),
        queue: Arc::new(Queue::default()),
        kinds: RwLock::new(HashMap::new()),
        monitors: Mutex::new(HashMap::new()),
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..settings.workers.max(1) {
        workers.spawn(gc.clone().worker(shutdown.clone()));
    }
    let mut rediscover = tokio::time::interval(settings.rediscover);
    let mut resync = tokio::time::interval(settings.resync);
    resync.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = rediscover.tick() => {
                if let Err(e) = gc.clone().discover(&shutdown).await {
                    tracing::warn!(error = %e, "garbage collector: discovery failed; retrying later");
                }
            }
            _ = resync.tick() => gc.resync(),
        }
    }
    for m in gc.lock_monitors().values() {
        m.token.cancel();
    }
    while workers.join_next().await.is_some() {}
    Ok(())
}

impl Collector {
    fn lock_graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_monitors(&self) -> std::sync::MutexGuard<'_, HashMap<String, Monitor>> {
        self.monitors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, uids: Vec<String>) {
        for uid in uids {
            self.queue.add(uid);
        }
    }

    fn resync(&self) {
        let due: Vec<String> = {
            let g = self.lock_graph();
            g.uids()
                .into_iter()
                .filter(|u| g.needs_attention(u))
                .collect()
        };
        self.wake(due);
    }

    /// Runs discovery; starts monitors for new resources, stops those of
    /// resources no longer served (forgetting their objects).
    async fn discover(self: Arc<Self>, shutdown: &CancellationToken) -> Result<(), Error> {
        let discovery = Discovery::new(self.client.clone()).run().await?;
        let mut kinds = HashMap::new();
        let mut watched = HashMap::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                let namespaced = caps.scope == Scope::Namespaced;
                let key = format!("{}/{}", ar.group, ar.plural);
                let ar = Arc::new(ar);
                kinds.insert(
                    (ar.group.clone(), ar.kind.clone()),
                    (ar.clone(), namespaced),
                );
                let monitorable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|v| caps.supports_operation(v));
                let ignored = IGNORED
                    .iter()
                    .any(|(g, p)| *g == ar.group && *p == ar.plural);
                if monitorable && !ignored {
                    watched.insert(key, ar);
                }
            }
        }
        *self.kinds.write().unwrap_or_else(PoisonError::into_inner) = kinds;
        let mut gone = Vec::new();
        {
            let mut monitors = self.lock_monitors();
            monitors.retain(|key, m| {
                let keep = watched.contains_key(key);
                if !keep {
                    m.token.cancel();
                    gone.push(m.resource.clone());
                }
                keep
            });
            for (key, ar) in watched {
                if monitors.contains_key(&key) {
                    continue;
                }
                let token = shutdown.child_token();
                let synced = Arc::new(AtomicBool::new(false));
                tokio::spawn(
                    self.clone()
                        .monitor(ar.clone(), synced.clone(), token.clone()),
                );
                monitors.insert(
                    key,
                    Monitor {
                        token,
                        synced,
                        started: Instant::now(),
                        resource: ar,
                    },
                );
            }
        }
        for ar in gone {
            tracing::info!(resource = %ar.plural, group = %ar.group, "garbage collector: resource no longer served; forgetting its objects");
            let mut woken = Vec::new();
            {
                let mut g = self.lock_graph();
                for uid in g.uids_of(&ar) {
                    woken.extend(g.remove(&uid));
                }
            }
            self.wake(woken);
        }
        Ok(())
    }

    /// Every monitor has listed its resource once (or is given up on).
    fn synced(&self) -> bool {
        self.lock_monitors()
            .values()
            .all(|m| m.synced.load(Ordering::Acquire) || m.started.elapsed() > SYNC_PATIENCE)
            && !self.lock_monitors().is_empty()
    }

    /// Watches one resource into the graph.
    async fn monitor(
        self: Arc<Self>,
        ar: Arc<ApiResource>,
        synced: Arc<AtomicBool>,
        token: CancellationToken,
    ) {
        // Metadata only: owner references are all the graph needs, and
        // full objects would cost the server and this process for nothing.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &*ar);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let event = tokio::select! {
                () = token.cancelled() => return,
                e = stream.next() => e,
            };
            let Some(event) = event else { return };
            match event {
                Ok(watcher::Event::Init) => seen.clear(),
                Ok(watcher::Event::InitApply(obj)) => {
                    if let Some(node) = node_of(&ar, &obj.metadata) {
                        seen.insert(node.uid.clone());
                        let woken = self.lock_graph().upsert(node);
                        self.wake(woken);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let mut woken = Vec::new();
                    {
                        let mut g = self.lock_graph();
                        for uid in g.uids_of(&ar) {
                            if !seen.contains(&uid) {
                                woken.extend(g.remove(&uid));
                            }
                        }
                    }
                    seen.clear();
                    self.wake(woken);
                    if !synced.swap(true, Ordering::AcqRel) {
                        tracing::debug!(resource = %ar.plural, group = %ar.group, "garbage collector: monitor synced");
                    }
                }
                Ok(watcher::Event::Apply(obj)) => {
                    if let Some(node) = node_of(&ar, &obj.metadata) {
                        let woken = self.lock_graph().upsert(node);
                        self.wake(woken);
                    }
                }
                Ok(watcher::Event::Delete(obj)) => {
                    if let Some(uid) = &obj.metadata.uid {
                        let woken = self.lock_graph().remove(uid);
                        self.wake(woken);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, resource = %ar.plural, "garbage collector: watch failed; retrying");
                }
            }
        }
    }

    async fn worker(self: Arc<Self>, shutdown: CancellationToken) {
        while let Some(uid) = self.queue.next(&shutdown).await {
            while !self.synced() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            let result = self.process(&uid).await;
            if let Err(e) = &result {
                tracing::debug!(uid = %uid, error = %e, "garbage collector: will retry");
            }
            self.queue.done(&uid, result.is_ok(), &shutdown);
        }
    }

    async fn process(&self, uid: &str) -> Result<(), Error> {
        let (node, needs) = {
            let g = self.lock_graph();
            (g.get(uid).cloned(), g.needs_attention(uid))
        };
        let Some(node) = node else { return Ok(()) };
        if node.orphaning() {
            return self.orphan_dependents(&node).await;
        }
        if node.deleting_dependents() {
            return self.delete_dependents(&node).await;
        }
        if node.deleting || node.owners.is_empty() || !needs {
            return Ok(());
        }
        self.attempt_to_delete(&node).await
    }

    fn api(&self, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        }
    }

    /// The live object of a node, if it still is the same object.
    async fn live(&self, node: &Node) -> Result<Option<DynamicObject>, Error> {
        let api = self.api(&node.resource, node.namespace.as_deref());
        Ok(api
            .get_opt(&node.name)
            .await?
            .filter(|o| o.metadata.uid.as_deref() == Some(node.uid.as_str())))
    }

    /// A dependent's owners are not all known to be there: verify each live
    /// and act (upstream's attemptToDeleteItem).
    async fn attempt_to_delete(&self, node: &Node) -> Result<(), Error> {
        let Some(latest) = self.live(node).await? else {
            return Ok(());
        };
        if latest.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let owners = owner_refs_of(&latest.metadata);
        if owners.is_empty() {
            return Ok(());
        }
        let mut classified = Vec::with_capacity(owners.len());
        for r in owners {
            let state = self.classify(&r, node.namespace.as_deref()).await?;
            classified.push((r, state));
        }
        let (has_dependents, dependent_waiting) = {
            let g = self.lock_graph();
            let deps = g.dependents(&node.uid);
            (
                !deps.is_empty(),
                deps.iter().any(|d| d.deleting_dependents()),
            )
        };
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        match graph::decide(&classified, &finalizers, has_dependents, dependent_waiting) {
            Decision::Keep => Ok(()),
            Decision::RemoveRefs(uids) => {
                tracing::info!(object = %node.describe(), owners = ?uids, "garbage collector: removing references to owners that are gone or being deleted");
                let refs = raw_owner_refs(&latest.metadata);
                self.patch_refs(node, &latest, graph::without_refs(&refs, &uids))
                    .await
            }
            Decision::Delete { policy, unblock } => {
                if unblock {
                    let refs = raw_owner_refs(&latest.metadata);
                    self.patch_refs(node, &latest, graph::unblocked_refs(&refs))
                        .await?;
                }
                tracing::info!(object = %node.describe(), ?policy, "garbage collector: deleting object whose owners are gone");
                self.delete(node, policy).await
            }
        }
    }

    /// Where an owner stands, from a live read (upstream's isDangling).
    async fn classify(&self, r: &OwnerRef, namespace: Option<&str>) -> Result<OwnerState, Error> {
        let found = self
            .kinds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(r.group().to_owned(), r.kind.clone()))
            .cloned();
        let Some((ar, namespaced)) = found else {
            return Err(Error::UnknownKind {
                group: r.group().to_owned(),
                kind: r.kind.clone(),
            });
        };
        let api = match (namespaced, namespace) {
            (false, _) => Api::all_with(self.client.clone(), &*ar),
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &*ar),
            // A cluster-scoped object cannot be owned by a namespaced one.
            (true, None) => return Ok(OwnerState::Dangling),
        };
        let owner: Option<DynamicObject> = api.get_opt(&r.name).await?;
        Ok(match owner {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let foreground = o.metadata.deletion_timestamp.is_some()
                    && o.metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == graph::FINALIZER_FOREGROUND);
                if foreground {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        })
    }

    /// Replaces a dependent's ownerReferences (optimistic: 409 on a
    /// concurrent change, retried).
    async fn patch_refs(
        &self,
        node: &Node,
        latest: &DynamicObject,
        refs: Vec<Value>,
    ) -> Result<(), Error> {
        let refs = if refs.is_empty() {
            Value::Null
        } else {
            Value::Array(refs)
        };
        let patch = json!({"metadata": {
            "resourceVersion": latest.metadata.resource_version,
            "ownerReferences": refs,
        }});
        self.patch(node, patch).await
    }

    async fn patch(&self, node: &Node, patch: Value) -> Result<(), Error> {
        let api = self.api(&node.resource, node.namespace.as_deref());
        match api
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, node: &Node, policy: Policy) -> Result<(), Error> {
        let api = self.api(&node.resource, node.namespace.as_deref());
        let params = DeleteParams {
            propagation_policy: Some(match policy {
                Policy::Background => PropagationPolicy::Background,
                Policy::Foreground => PropagationPolicy::Foreground,
                Policy::Orphan => PropagationPolicy::Orphan,
            }),
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&node.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `orphan` finalizer: drop the references to the owner from every
    /// dependent, then the finalizer.
    async fn orphan_dependents(&self, owner: &Node) -> Result<(), Error> {
        let dependents: Vec<Node> = {
            let g = self.lock_graph();
            graph::orphan_targets(&g, &owner.uid)
                .iter()
                .filter_map(|u| g.get(u).cloned())
                .collect()
        };
        for dep in &dependents {
            let Some(latest) = self.live(dep).await? else {
                continue;
            };
            let refs = raw_owner_refs(&latest.metadata);
            let kept = graph::without_refs(&refs, std::slice::from_ref(&owner.uid));
            if kept.len() == refs.len() {
                continue;
            }
            tracing::info!(object = %dep.describe(), owner = %owner.describe(), "garbage collector: orphaning dependent");
            self.patch_refs(dep, &latest, kept).await?;
        }
        self.remove_finalizer(owner, graph::FINALIZER_ORPHAN).await
    }

    /// `foregroundDeletion` finalizer: delete the dependents; once no
    /// blocking dependent is left, drop the finalizer.
    async fn delete_dependents(&self, owner: &Node) -> Result<(), Error> {
        let step = graph::foreground_step(&self.lock_graph(), &owner.uid);
        self.wake(step.to_delete.clone());
        if step.done() {
            self.remove_finalizer(owner, graph::FINALIZER_FOREGROUND)
                .await
        } else {
            tracing::debug!(object = %owner.describe(), blocking = step.blocking.len(), "garbage collector: waiting for dependents");
            Ok(())
        }
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<(), Error> {
        let Some(latest) = self.live(node).await? else {
            return Ok(());
        };
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let kept: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
        tracing::info!(object = %node.describe(), finalizer, "garbage collector: removing finalizer");
        let patch = json!({"metadata": {
            "resourceVersion": latest.metadata.resource_version,
            "finalizers": if kept.is_empty() { Value::Null } else { json!(kept) },
        }});
        self.patch(node, patch).await
    }
}

fn node_of(ar: &Arc<ApiResource>, meta: &ObjectMeta) -> Option<Node> {
    Some(Node {
        uid: meta.uid.clone()?,
        name: meta.name.clone()?,
        namespace: meta.namespace.clone(),
        resource: ar.clone(),
        owners: owner_refs_of(meta),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    })
}

fn owner_refs_of(meta: &ObjectMeta) -> Vec<OwnerRef> {
    meta.owner_references
        .iter()
        .flatten()
        .map(|r| OwnerRef {
            uid: r.uid.clone(),
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            block_owner_deletion: r.block_owner_deletion.unwrap_or(false),
        })
        .collect()
}

fn raw_owner_refs(meta: &ObjectMeta) -> Vec<Value> {
    meta.owner_references
        .iter()
        .flatten()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}
