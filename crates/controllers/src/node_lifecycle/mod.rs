//! The node lifecycle controller (`node-lifecycle-controller`), as
//! upstream's: a node whose kubelet stops renewing its Lease and status for
//! the grace period (40 s) has its conditions set to Unknown ([`health`]),
//! its pods marked not Ready (so Services stop sending them traffic), and
//! the `unreachable`/`not-ready` taints ([`taints`]): NoSchedule at once,
//! NoExecute — which the taint eviction controller acts on — at a limited
//! rate per zone, and not at all when every zone is down (then the
//! problem is more likely the control plane's network than the nodes).

pub mod health;
pub mod taints;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::{EventType, Recorder};
use taints::{NoExecute, RateLimiter, ZoneState};

/// Tuning, with upstream's defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often node health is checked (`--node-monitor-period`).
    pub monitor_period: Duration,
    /// Silence after which a node is Unknown (`--node-monitor-grace-period`).
    pub grace_period: Duration,
    /// The same for a node that never reported Ready.
    pub startup_grace_period: Duration,
    /// Nodes per second that get NoExecute taints (`--node-eviction-rate`).
    pub eviction_qps: f64,
    /// The rate in a partially disrupted large zone
    /// (`--secondary-node-eviction-rate`).
    pub secondary_eviction_qps: f64,
    /// Zones above this many nodes are "large" (`--large-cluster-size-threshold`).
    pub large_cluster_threshold: usize,
    /// Share of not-Ready nodes that makes a zone partially disrupted
    /// (`--unhealthy-zone-threshold`).
    pub unhealthy_zone_threshold: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(40),
            startup_grace_period: Duration::from_secs(60),
            eviction_qps: 0.1,
            secondary_eviction_qps: 0.01,
            large_cluster_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the node cache stopped")]
    CacheStopped,
}

struct Monitor {
    client: kube::Client,
    settings: Settings,
    nodes: Store<Node>,
    leases: Store<Lease>,
    tracker: health::Tracker,
    limiters: HashMap<String, RateLimiter>,
    /// Nodes whose pods still have to be marked not Ready.
    mark_pods: BTreeSet<String>,
    recorder: Recorder,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (nodes, node_writer) = reflector::store::<Node>();
    let (leases, lease_writer) = reflector::store::<Lease>();
    let node_feed = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .for_each(|_| futures::future::ready(()));
    let lease_feed = watcher(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(lease_writer)
    .for_each(|_| futures::future::ready(()));
    let feeds = tokio::spawn(async move {
        futures::join!(node_feed, lease_feed);
    });
    let mut monitor = Monitor {
        recorder: Recorder::new(client.clone(), "node-controller"),
        client,
        settings,
        nodes,
        leases,
        tracker: health::Tracker::default(),
        limiters: HashMap::new(),
        mark_pods: BTreeSet::new(),
    };
    let result = monitor.run(&shutdown).await;
    feeds.abort();
    result
}

impl Monitor {
    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            ready = async {
                let nodes = self.nodes.wait_until_ready().await;
                let leases = self.leases.wait_until_ready().await;
                nodes.and(leases)
            } => ready.map_err(|_| Error::CacheStopped)?,
        }
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "node health pass failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.settings.monitor_period) => {}
            }
        }
    }

    /// One look at every node: health, then taints.
    async fn pass(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        let stamp = Timestamp::now();
        let nodes_api: Api<Node> = Api::all(self.client.clone());
        let mut nodes: Vec<Node> = self.nodes.state().iter().map(|n| (**n).clone()).collect();
        nodes.sort_by_key(ResourceExt::name_any);
        let names: BTreeSet<String> = nodes.iter().map(ResourceExt::name_any).collect();
        self.tracker.retain(|n| names.contains(n));
        self.mark_pods.retain(|n| names.contains(n));

        for node in &mut nodes {
            let name = node.name_any();
            let lease = self
                .leases
                .get(&ObjectRef::new(&name).within("kube-node-lease"))
                .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
            let silent = self.tracker.observe(node, lease, now);
            let grace = if health::ready(node).is_some() {
                self.settings.grace_period
            } else {
                self.settings.startup_grace_period
            };
            if silent <= grace {
                continue;
            }
            let was_ready = health::ready_status(node) == "True";
            if let Some(patch) = health::unknown_conditions_patch(node, stamp) {
                tracing::info!(node = %name, "node stopped reporting: conditions Unknown");
                match nodes_api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    Ok(updated) => *node = updated,
                    Err(e) if crate::api_code(&e) == Some(404) => continue,
                    Err(e) => return Err(e.into()),
                }
                if was_ready {
                    self.recorder.record(
                        &*node,
                        EventType::Normal,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                    self.mark_pods.insert(name);
                }
            }
        }
        self.mark_pods_not_ready().await;
        self.update_taints(&nodes_api, &nodes, now, stamp).await
    }

    /// Pods on nodes that turned Unknown stop being Ready.
    async fn mark_pods_not_ready(&mut self) {
        let pending: Vec<String> = self.mark_pods.iter().cloned().collect();
        for node in pending {
            match mark_not_ready(&self.client, &node).await {
                Ok(()) => {
                    self.mark_pods.remove(&node);
                }
                Err(e) => tracing::warn!(node = %node, error = %e, "marking pods not ready"),
            }
        }
    }

    async fn update_taints(
        &mut self,
        api: &Api<Node>,
        nodes: &[Node],
        now: Instant,
        stamp: Timestamp,
    ) -> Result<(), Error> {
        let mut zones: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for node in nodes.iter().filter(|n| health::ready(n).is_some()) {
            let entry = zones.entry(taints::zone_of(node)).or_default();
            entry.0 += 1;
            if health::ready_status(node) != "True" {
                entry.1 += 1;
            }
        }
        let states: BTreeMap<&String, ZoneState> = zones
            .iter()
            .map(|(zone, (total, not_ready))| {
                let state =
                    taints::zone_state(*total, *not_ready, self.settings.unhealthy_zone_threshold);
                (zone, state)
            })
            .collect();
        let all_down =
            !states.is_empty() && states.values().all(|s| *s == ZoneState::FullDisruption);
        for node in nodes {
            let zone = taints::zone_of(node);
            let (total, _) = zones.get(&zone).copied().unwrap_or_default();
            let qps = match states.get(&zone) {
                _ if all_down => 0.0,
                Some(ZoneState::PartialDisruption) => {
                    if total > self.settings.large_cluster_threshold {
                        self.settings.secondary_eviction_qps
                    } else {
                        0.0
                    }
                }
                _ => self.settings.eviction_qps,
            };
            let needs_no_execute = taints::no_execute_key(node).is_some_and(|key| {
                !node
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|ts| ts.iter().any(|t| t.key == key && t.effect == "NoExecute"))
            });
            let may_add = needs_no_execute
                && self
                    .limiters
                    .entry(zone)
                    .or_insert_with(|| RateLimiter::new(now))
                    .try_take(qps, now);
            let policy = if all_down {
                NoExecute::Drop
            } else if may_add {
                NoExecute::Add
            } else {
                NoExecute::Hold
            };
            let Some(new_taints) = taints::desired(node, policy, stamp) else {
                continue;
            };
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": new_taints},
            });
            match api
                .patch(
                    &node.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                // Changed meanwhile: the next pass sees the new version.
                Err(e) if matches!(crate::api_code(&e), Some(404 | 409)) => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }
}

/// Sets the Ready condition of every pod bound to `node` to False
/// (upstream's MarkPodsNotReady).
async fn mark_not_ready(client: &kube::Client, node: &str) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let now = Time(Timestamp::now());
    for pod in list.items {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now},
        ]}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Err(e) if crate::api_code(&e) == Some(404) => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}
