//! skiff's scheduler: assigns pending pods to nodes the way upstream's
//! kube-scheduler does, as an API client.
//!
//! Start reading at [`run`]: reflectors (informer caches) of Pods and
//! Nodes feed the [`queue`] of pending pods (no `spec.nodeName`, our
//! `spec.schedulerName`, not being deleted); one pod at a time is
//! filtered ([`filters`]) and scored ([`scores`]) against every node with
//! what its pods request ([`resources`], [`quantity`]), assumed on the
//! chosen node at once and bound with `POST pods/<name>/binding`. A pod
//! that fits nowhere gets `PodScheduled=False` (`Unschedulable`, with
//! upstream's `0/N nodes are available: ...` message) and a
//! `FailedScheduling` Event, and is retried with backoff when the cluster
//! changes.

pub mod config;
pub mod filters;
pub mod leader;
pub mod metrics;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod scores;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::queue::Queue;
use crate::resources::NodeInfo;

/// The name pods ask for when they do not name a scheduler.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// What the scheduler runs with.
#[derive(Clone)]
pub struct Config {
    /// The scheduler's API client (its own identity).
    pub client: kube::Client,
    /// Pods with this `spec.schedulerName` are ours (and, for the
    /// default name, pods that name none).
    pub scheduler_name: String,
}

impl Config {
    pub fn new(client: kube::Client) -> Self {
        Config {
            client,
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// Whether `pod` waits for this scheduler.
pub fn is_pending_for(pod: &Pod, scheduler_name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let name = spec.scheduler_name.as_deref().unwrap_or("");
    let ours =
        name == scheduler_name || (name.is_empty() && scheduler_name == DEFAULT_SCHEDULER_NAME);
    ours && spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn key_of(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// A pod bound by us but not yet seen bound by the reflector.
struct Assumed {
    node: String,
    pod: Pod,
}

struct Scheduler {
    config: Config,
    pods: Store<Pod>,
    nodes: Store<Node>,
    queue: Queue,
    assumed: HashMap<String, Assumed>,
    /// The last FailedScheduling message recorded per pod.
    reported: HashMap<String, String>,
}

/// Schedules pods until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    tracing::info!(name = %config.scheduler_name, "scheduler starting");
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let mut pod_events = reflector::reflector(
        pod_writer,
        watcher(
            Api::<Pod>::all(config.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .boxed();
    let mut node_events = reflector::reflector(
        node_writer,
        watcher(
            Api::<Node>::all(config.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .boxed();
    let mut s = Scheduler {
        config,
        pods,
        nodes,
        queue: Queue::default(),
        assumed: HashMap::new(),
        reported: HashMap::new(),
    };
    let (mut pods_synced, mut nodes_synced) = (false, false);
    loop {
        let synced = pods_synced && nodes_synced;
        let wake = s
            .queue
            .next_ready()
            .filter(|_| synced)
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = pod_events.try_next() => match event {
                Ok(Some(e)) => {
                    if s.on_pod_event(e) {
                        pods_synced = true;
                    }
                }
                Ok(None) => return Err(Error::WatchEnded("pods")),
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            },
            event = node_events.try_next() => match event {
                Ok(Some(e)) => {
                    if matches!(e, watcher::Event::InitDone) {
                        nodes_synced = true;
                    }
                    if !matches!(e, watcher::Event::Init | watcher::Event::InitApply(_)) {
                        s.queue.cluster_changed();
                    }
                }
                Ok(None) => return Err(Error::WatchEnded("nodes")),
                Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
            },
            () = tokio::time::sleep_until(wake.into()), if synced => {
                if let Some(key) = s.queue.pop(Instant::now()) {
                    s.schedule_one(&key).await;
                }
            }
        }
    }
}

impl Scheduler {
    /// Keeps the queue and the assume cache in step; true on `InitDone`.
    fn on_pod_event(&mut self, event: watcher::Event<Pod>) -> bool {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let key = key_of(&pod);
                if is_pending_for(&pod, &self.config.scheduler_name) {
                    self.queue.add(&key, priority(&pod), Instant::now());
                } else {
                    self.forget(&key);
                    if is_terminal(&pod) || pod.metadata.deletion_timestamp.is_some() {
                        self.queue.cluster_changed();
                    }
                }
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some()
                {
                    self.assumed.remove(&key);
                }
                false
            }
            watcher::Event::Delete(pod) => {
                let key = key_of(&pod);
                self.forget(&key);
                self.assumed.remove(&key);
                self.queue.cluster_changed();
                false
            }
            watcher::Event::Init => false,
            watcher::Event::InitDone => {
                for key in self.queue.keys() {
                    let still = self
                        .get_pod(&key)
                        .is_some_and(|p| is_pending_for(&p, &self.config.scheduler_name));
                    if !still {
                        self.forget(&key);
                    }
                }
                self.queue.cluster_changed();
                true
            }
        }
    }

    fn forget(&mut self, key: &str) {
        self.queue.remove(key);
        self.reported.remove(key);
    }

    fn get_pod(&self, key: &str) -> Option<Arc<Pod>> {
        let (ns, name) = key.split_once('/')?;
        self.pods.get(&ObjectRef::new(name).within(ns))
    }

    /// Every node with the requests of its pods, assumed ones included.
    fn node_infos(&mut self) -> Vec<NodeInfo> {
        let mut infos: Vec<NodeInfo> = self.nodes.state().into_iter().map(NodeInfo::new).collect();
        infos.sort_by(|a, b| a.name().cmp(b.name()));
        let index: HashMap<String, usize> = infos
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_owned(), i))
            .collect();
        for pod in self.pods.state() {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
                continue;
            };
            if is_terminal(&pod) {
                continue;
            }
            if let Some(&i) = index.get(node) {
                infos[i].add_pod(&pod);
            }
        }
        let pods = &self.pods;
        self.assumed.retain(|key, _| {
            let Some((ns, name)) = key.split_once('/') else {
                return false;
            };
            // Seen bound (counted above) or gone: no longer assumed.
            pods.get(&ObjectRef::new(name).within(ns)).is_some_and(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .unwrap_or("")
                    .is_empty()
            })
        });
        for a in self.assumed.values() {
            if let Some(&i) = index.get(&a.node) {
                infos[i].add_pod(&a.pod);
            }
        }
        infos
    }

    async fn schedule_one(&mut self, key: &str) {
        let Some(pod) = self.get_pod(key) else {
            self.forget(key);
            return;
        };
        if !is_pending_for(&pod, &self.config.scheduler_name) || self.assumed.contains_key(key) {
            self.forget(key);
            return;
        }
        let infos = self.node_infos();
        let chosen = scores::select_node(&pod, &infos).map(|n| n.name().to_owned());
        match chosen {
            Ok(node) => {
                self.assumed.insert(
                    key.to_owned(),
                    Assumed {
                        node: node.clone(),
                        pod: (*pod).clone(),
                    },
                );
                match self.bind(&pod, &node).await {
                    Ok(()) => {
                        tracing::debug!(pod = key, node, "bound");
                        self.forget(key);
                        self.event(
                            &pod,
                            "Normal",
                            "Scheduled",
                            "Binding",
                            format!("Successfully assigned {key} to {node}"),
                        );
                    }
                    Err(e) => {
                        self.assumed.remove(key);
                        tracing::warn!(pod = key, node, error = %e, "binding failed");
                        if matches!(&e, kube::Error::Api(s) if s.code == 409 || s.code == 404) {
                            self.forget(key);
                        } else {
                            self.queue.failed(key, false, Instant::now());
                        }
                    }
                }
            }
            Err(fit) => {
                let message = fit.to_string();
                tracing::debug!(pod = key, message, "unschedulable");
                self.queue.failed(key, true, Instant::now());
                if let Err(e) = self.mark_unschedulable(&pod, &message).await {
                    tracing::warn!(pod = key, error = %e, "setting PodScheduled=False failed");
                }
                if self.reported.get(key) != Some(&message) {
                    self.reported.insert(key.to_owned(), message.clone());
                    self.event(&pod, "Warning", "FailedScheduling", "Scheduling", message);
                }
            }
        }
    }

    async fn bind(&self, pod: &Pod, node: &str) -> Result<(), kube::Error> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.config.client.clone(), &ns);
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let _: serde_json::Value = api
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await?;
        Ok(())
    }

    /// `PodScheduled=False`, reason `Unschedulable`, unless already so.
    async fn mark_unschedulable(&self, pod: &Pod, message: &str) -> Result<(), kube::Error> {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        }) {
            return Ok(());
        }
        let transition = match current {
            Some(c) if c.status == "False" => c
                .last_transition_time
                .as_ref()
                .map_or_else(now, |t| json!(t)),
            _ => now(),
        };
        let api: Api<Pod> = Api::namespaced(
            self.config.client.clone(),
            &pod.namespace().unwrap_or_default(),
        );
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": transition,
        }]}});
        api.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
        Ok(())
    }

    /// Records a core/v1 Event about `pod` in the background.
    fn event(&self, pod: &Pod, type_: &str, reason: &str, action: &str, message: String) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let component = self.config.scheduler_name.clone();
        let value = json!({
            "metadata": {
                "name": format!("{name}.{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
                "namespace": ns,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": name,
                "namespace": ns,
                "uid": pod.metadata.uid,
                "resourceVersion": pod.metadata.resource_version,
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "action": action,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
        });
        let api: Api<Event> = Api::namespaced(self.config.client.clone(), &ns);
        tokio::spawn(async move {
            let event: Event = match serde_json::from_value(value) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "building an event");
                    return;
                }
            };
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::warn!(error = %e, "recording an event failed");
            }
        });
    }
}

fn now() -> serde_json::Value {
    json!(
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    )
}
