//! The pods bound to this node: a watch on them (field selector
//! `spec.nodeName`), one [`worker::Worker`] task per pod, and a relist of
//! the runtime every second (upstream's PLEG) that wakes workers whose
//! containers changed and cleans up sandboxes no pod owns.

pub mod backoff;
pub mod container;
pub mod context;
pub mod env;
pub mod eviction;
pub mod insecure_tls;
pub mod instance;
pub mod labels;
pub mod log_rotation;
pub mod probe;
pub mod pull_secrets;
pub mod qos;
pub mod sandbox;
pub mod static_pods;
pub mod status;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_cri::v1::{ListContainersRequest, ListPodSandboxRequest};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use context::Context;
use worker::Worker;

/// How often the runtime is relisted (upstream's PLEG period).
const RELIST: Duration = Duration::from_secs(1);
/// How often the static pod directory is read (upstream's fileCheckFrequency).
const STATIC_SCAN: Duration = Duration::from_secs(20);

struct Handle {
    pod: watch::Sender<Option<Pod>>,
    /// Bumped when the runtime state of the pod changed.
    poke: watch::Sender<u64>,
    /// Set when the node evicts the pod: the message for its status.
    evict: watch::Sender<Option<String>>,
}

/// Runs the pods of `ctx.node_name` until `shutdown`; containers keep
/// running when the kubelet stops (a restart adopts them).
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut events = watcher(pods, config).boxed();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut synced = false;
    let mut initial: HashSet<String> = HashSet::new();
    let mut relist = tokio::time::interval(RELIST);
    let mut fingerprints: HashMap<String, u64> = HashMap::new();
    let mut statics = Statics::default();
    // Static pods first: the relist must not take their containers for orphans.
    statics.scan(&ctx, &mut workers, &done_tx, &shutdown).await;
    let mut static_tick = tokio::time::interval(STATIC_SCAN);
    let mut pressure_tick = tokio::time::interval(eviction::PERIOD);
    let mut evictions = eviction::Manager::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
            }
            event = events.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod))
                        if static_pods::is_mirror(&pod) =>
                    {
                        if pod.metadata.deletion_timestamp.is_some() {
                            // Someone deleted the mirror: let it go at once
                            // (the static pod runs on); it is recreated.
                            statics.finish_mirror_deletion(&ctx, &pod).await;
                        } else if let Some(static_pod) = statics.mirror_seen(&pod) {
                            // A new mirror has no status yet: the worker writes it.
                            if let Some(uid) = static_pod.metadata.uid.clone() {
                                dispatch(&ctx, &mut workers, &done_tx, &shutdown, uid, Some(static_pod));
                            }
                        }
                    }
                    Ok(watcher::Event::Delete(pod)) if static_pods::is_mirror(&pod) => {
                        // A deleted mirror pod is recreated; the static pod runs on.
                        statics.mirror_gone(&pod);
                        statics.ensure_mirrors(&ctx).await;
                    }
                    Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                        let Some(uid) = pod.metadata.uid.clone() else { continue };
                        if !synced {
                            initial.insert(uid.clone());
                        }
                        dispatch(&ctx, &mut workers, &done_tx, &shutdown, uid, Some(pod));
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        if let Some(uid) = pod.metadata.uid.clone() {
                            dispatch(&ctx, &mut workers, &done_tx, &shutdown, uid, None);
                        }
                    }
                    Ok(watcher::Event::Init) => {
                        initial.clear();
                    }
                    Ok(watcher::Event::InitDone) => {
                        // Pods deleted while the watch was down.
                        let gone: Vec<String> = workers
                            .keys()
                            .filter(|uid| !initial.contains(*uid))
                            .cloned()
                            .collect();
                        for uid in gone {
                            dispatch(&ctx, &mut workers, &done_tx, &shutdown, uid, None);
                        }
                        synced = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching this node's pods");
                    }
                }
            }
            _ = pressure_tick.tick() => {
                let pods: Vec<Pod> = workers
                    .values()
                    .filter_map(|h| h.pod.borrow().clone())
                    .collect();
                if let Some((uid, message)) = evictions.check(&ctx, &pods).await
                    && let Some(handle) = workers.get(&uid)
                {
                    handle.evict.send_replace(Some(message));
                }
            }
            _ = static_tick.tick() => {
                statics.scan(&ctx, &mut workers, &done_tx, &shutdown).await;
            }
            _ = relist.tick() => {
                let Ok(snapshot) = relist_runtime(&ctx).await else { continue };
                for (uid, fingerprint) in snapshot {
                    let changed = fingerprints.insert(uid.clone(), fingerprint) != Some(fingerprint);
                    match workers.get(&uid) {
                        Some(handle) if changed => {
                            handle.poke.send_modify(|n| *n += 1);
                        }
                        None if synced => {
                            // Runtime objects of a pod the API no longer has.
                            dispatch(&ctx, &mut workers, &done_tx, &shutdown, uid, None);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

fn dispatch(
    ctx: &Arc<Context>,
    workers: &mut HashMap<String, Handle>,
    done: &mpsc::UnboundedSender<String>,
    shutdown: &CancellationToken,
    uid: String,
    pod: Option<Pod>,
) {
    if let Some(handle) = workers.get(&uid) {
        handle.pod.send_replace(pod);
        return;
    }
    let (pod_tx, pod_rx) = watch::channel(pod.clone());
    let (poke_tx, poke_rx) = watch::channel(0u64);
    let (evict_tx, evict_rx) = watch::channel(None);
    workers.insert(
        uid.clone(),
        Handle {
            pod: pod_tx,
            poke: poke_tx,
            evict: evict_tx,
        },
    );
    let worker = Worker::new(ctx.clone(), uid.clone(), pod);
    tokio::spawn(drive(
        worker,
        pod_rx,
        poke_rx,
        evict_rx,
        shutdown.clone(),
        done.clone(),
        uid,
    ));
}

async fn drive(
    mut worker: Worker,
    mut pod_rx: watch::Receiver<Option<Pod>>,
    mut poke_rx: watch::Receiver<u64>,
    mut evict_rx: watch::Receiver<Option<String>>,
    shutdown: CancellationToken,
    done: mpsc::UnboundedSender<String>,
    uid: String,
) {
    loop {
        let wake = worker.sync().await;
        if worker.done {
            let _ = done.send(uid);
            return;
        }
        let deadline = tokio::time::Instant::now() + wake.unwrap_or(Duration::from_secs(10));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = pod_rx.changed() => {
                    if changed.is_err() { return; }
                    let pod = pod_rx.borrow_and_update().clone();
                    let mut significant = false;
                    if pod.as_ref().is_some_and(static_pods::is_static) {
                        // Static pods are re-sent when their mirror needs its status.
                        worker.forget_status();
                        significant = true;
                    }
                    // The kubelet's own status writes come back here: they
                    // do not call for a sync.
                    if worker.set_pod(pod) || significant {
                        break;
                    }
                }
                changed = poke_rx.changed() => {
                    if changed.is_err() { return; }
                    poke_rx.borrow_and_update();
                    break;
                }
                changed = evict_rx.changed() => {
                    if changed.is_err() { return; }
                    if let Some(message) = evict_rx.borrow_and_update().clone() {
                        worker.evict(message);
                        break;
                    }
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
}

/// Pod uid → a fingerprint of its sandboxes' and containers' states.
async fn relist_runtime(ctx: &Context) -> Result<HashMap<String, u64>, tonic::Status> {
    use std::hash::{Hash, Hasher};
    let mut cri = ctx.cri.clone();
    let sandboxes = cri
        .runtime
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    let containers = cri
        .runtime
        .list_containers(ListContainersRequest { filter: None })
        .await?
        .into_inner()
        .containers;
    let mut hashers: HashMap<String, std::collections::hash_map::DefaultHasher> = HashMap::new();
    for s in &sandboxes {
        let Some(uid) = s.labels.get(labels::POD_UID) else {
            continue;
        };
        let h = hashers.entry(uid.clone()).or_default();
        (&s.id, s.state).hash(h);
    }
    for c in &containers {
        let Some(uid) = c.labels.get(labels::POD_UID) else {
            continue;
        };
        let h = hashers.entry(uid.clone()).or_default();
        (&c.id, c.state).hash(h);
    }
    Ok(hashers.into_iter().map(|(k, h)| (k, h.finish())).collect())
}

/// The static pods running here and the mirror pods the API shows.
#[derive(Default)]
struct Statics {
    /// uid (content hash) → pod.
    pods: HashMap<String, Pod>,
    /// `namespace/name` → mirrored hash, as the watch shows them.
    mirrors: HashMap<String, String>,
    node_uid: Option<String>,
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Statics {
    async fn scan(
        &mut self,
        ctx: &Arc<Context>,
        workers: &mut HashMap<String, Handle>,
        done: &mpsc::UnboundedSender<String>,
        shutdown: &CancellationToken,
    ) {
        let Some(dir) = &ctx.manifest_dir else { return };
        let found: HashMap<String, Pod> = static_pods::read_dir(dir, &ctx.node_name)
            .into_iter()
            .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
            .collect();
        for (uid, pod) in &found {
            if !self.pods.contains_key(uid) {
                tracing::info!(pod = %key(pod), "static pod added");
                dispatch(ctx, workers, done, shutdown, uid.clone(), Some(pod.clone()));
            }
        }
        let removed: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !found.contains_key(*uid))
            .cloned()
            .collect();
        for uid in removed {
            tracing::info!(uid = %uid, "static pod removed");
            dispatch(ctx, workers, done, shutdown, uid, None);
        }
        self.pods = found;
        self.ensure_mirrors(ctx).await;
    }

    /// Records a mirror pod; returns its static pod when the mirror has
    /// no status yet.
    fn mirror_seen(&mut self, pod: &Pod) -> Option<Pod> {
        let hash = static_pods::annotation(pod, static_pods::MIRROR_ANNOTATION)
            .unwrap_or_default()
            .to_owned();
        self.mirrors.insert(key(pod), hash.clone());
        // The API server sets only `phase: Pending` on create; the kubelet's
        // status always has a start time.
        let without_status = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_none();
        without_status
            .then(|| self.pods.get(&hash).cloned())
            .flatten()
    }

    async fn finish_mirror_deletion(&mut self, ctx: &Context, pod: &Pod) {
        self.mirrors.remove(&key(pod));
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let params = kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        if let Err(e) = api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            tracing::debug!(error = %e, "finishing a mirror pod's deletion");
        }
    }

    fn mirror_gone(&mut self, pod: &Pod) {
        self.mirrors.remove(&key(pod));
    }

    /// Creates missing mirror pods, replaces stale ones and deletes those
    /// whose static pod is gone.
    async fn ensure_mirrors(&mut self, ctx: &Context) {
        if self.node_uid.is_none() {
            let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(ctx.client.clone());
            self.node_uid = nodes
                .get_opt(&ctx.node_name)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.metadata.uid);
        }
        let wanted: HashMap<String, &Pod> = self.pods.values().map(|p| (key(p), p)).collect();
        let delete = kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        for (k, hash) in self.mirrors.clone() {
            let stale = match wanted.get(&k) {
                Some(pod) => {
                    static_pods::annotation(pod, static_pods::HASH_ANNOTATION) != Some(&hash)
                }
                None => true,
            };
            if stale {
                let (ns, name) = k.split_once('/').unwrap_or(("default", &k));
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
                if let Err(e) = api.delete(name, &delete).await {
                    tracing::debug!(error = %e, pod = %k, "deleting a stale mirror pod");
                }
                self.mirrors.remove(&k);
            }
        }
        for (k, pod) in wanted {
            if self.mirrors.contains_key(&k) {
                continue;
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
            let mirror = static_pods::mirror_of(pod, self.node_uid.as_deref(), &ctx.node_name);
            match api.create(&Default::default(), &mirror).await {
                Ok(_) => {
                    let hash = static_pods::annotation(pod, static_pods::HASH_ANNOTATION)
                        .unwrap_or_default()
                        .to_owned();
                    self.mirrors.insert(k, hash);
                }
                Err(e) => tracing::warn!(error = %e, pod = %k, "creating a mirror pod"),
            }
        }
    }
}
