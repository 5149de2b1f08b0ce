//! The pods bound to this node: a watch on them (field selector
//! `spec.nodeName`), one [`worker::Worker`] task per pod, and a relist of
//! the runtime every second (upstream's PLEG) that wakes workers whose
//! containers changed and cleans up sandboxes no pod owns.

pub mod backoff;
pub mod container;
pub mod context;
pub mod env;
pub mod instance;
pub mod labels;
pub mod probe;
pub mod qos;
pub mod sandbox;
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

struct Handle {
    pod: watch::Sender<Option<Pod>>,
    /// Bumped when the runtime state of the pod changed.
    poke: watch::Sender<u64>,
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
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
            }
            event = events.next() => {
                let Some(event) = event else { return };
                match event {
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
    workers.insert(
        uid.clone(),
        Handle {
            pod: pod_tx,
            poke: poke_tx,
        },
    );
    let worker = Worker::new(ctx.clone(), uid.clone(), pod);
    tokio::spawn(drive(
        worker,
        pod_rx,
        poke_rx,
        shutdown.clone(),
        done.clone(),
        uid,
    ));
}

async fn drive(
    mut worker: Worker,
    mut pod_rx: watch::Receiver<Option<Pod>>,
    mut poke_rx: watch::Receiver<u64>,
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
        let sleep = tokio::time::sleep(wake.unwrap_or(Duration::from_secs(10)));
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = pod_rx.changed() => {
                if changed.is_err() { return; }
                let pod = pod_rx.borrow_and_update().clone();
                worker.set_pod(pod);
            }
            changed = poke_rx.changed() => {
                if changed.is_err() { return; }
                poke_rx.borrow_and_update();
            }
            () = sleep => {}
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
