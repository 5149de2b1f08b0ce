//! Hollow nodes: many simulated nodes in one process, like upstream's
//! kubemark and kwok, so that the control plane can be measured with 1,000
//! nodes and 30,000 pods on one machine.
//!
//! Start at [`run`]. Each hollow node registers a real Node object
//! ([`node`]), renews its Lease, and "runs" the pods bound to it: no
//! containers exist, but the pod status written is the real kubelet's
//! (`skiff_kubelet::pods::status::pod_status`) computed from what a runtime
//! would report ([`runtime`]). To stay small, nothing is per node except a
//! few hundred bytes of state: one shared watch of all bound pods
//! ([`pods`]), one shared heartbeat loop for every Lease ([`heartbeat`]),
//! one API client, and one bounded pool of in-flight writes.

pub mod heartbeat;
pub mod ipam;
pub mod latency;
pub mod node;
pub mod pods;
pub mod runtime;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use latency::Latencies;
pub use node::HollowNode;

/// The label every hollow Node carries (`"true"`), to tell them apart
/// from real nodes.
pub const HOLLOW_LABEL: &str = "skiff.local/hollow-node";

/// What a set of hollow nodes runs with.
#[derive(Clone)]
pub struct Config {
    /// One API client shared by every hollow node.
    pub client: kube::Client,
    /// How many nodes to simulate.
    pub count: usize,
    /// Nodes are named `<prefix>-<i>`; two processes need two prefixes.
    pub name_prefix: String,
    /// `status.capacity.pods` of each node.
    pub pods_per_node: u32,
    /// How long a pod takes from accepted (Pending, ContainerCreating) to
    /// Running and Ready.
    pub startup_delay: Duration,
    /// Nodes are spread round-robin over this many zones
    /// (`topology.kubernetes.io/zone=zone-<k>`).
    pub zones: usize,
    /// `None`: wait for the node IPAM controller to assign `spec.podCIDR`
    /// (as a real kubelet does). `Some(cidr)`: node i claims the i-th /24
    /// of `cidr` at registration, for more nodes than the controller's
    /// cluster CIDR has room for (10.42.0.0/16 holds 256 /24s).
    pub claim_pod_cidrs: Option<String>,
    /// API writes in flight at once, across all nodes.
    pub concurrency: usize,
    /// Where API call latencies are recorded, if anywhere.
    pub latencies: Option<Arc<Latencies>>,
}

impl Config {
    pub fn new(client: kube::Client, count: usize) -> Config {
        Config {
            client,
            count,
            name_prefix: "hollow-node".into(),
            pods_per_node: 110,
            startup_delay: Duration::from_secs(1),
            zones: 3,
            claim_pod_cidrs: None,
            concurrency: 32,
            latencies: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid pod CIDR range {0:?}: {1}")]
    Cidr(String, String),
}

/// What every part of the hollow nodes shares.
pub(crate) struct Shared {
    pub client: kube::Client,
    pub nodes: Vec<Arc<HollowNode>>,
    pub permits: Arc<Semaphore>,
    pub latencies: Option<Arc<Latencies>>,
    pub startup_delay: Duration,
    pub pods_per_node: u32,
}

impl Shared {
    /// Runs one API call under a write permit, recording its latency
    /// under `verb`.
    pub async fn call<T, F>(&self, verb: &'static str, call: F) -> Result<T, kube::Error>
    where
        F: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let _permit = self.permits.acquire().await;
        let started = std::time::Instant::now();
        let result = call.await;
        if let Some(l) = &self.latencies {
            l.record(verb, started.elapsed());
        }
        result
    }
}

/// Registers the nodes, then runs their heartbeats and pods until
/// `shutdown`. Nodes are left registered on return (their leases expire
/// and the node lifecycle controller marks them NotReady, as with real
/// nodes that stop).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let claims = match &config.claim_pod_cidrs {
        Some(range) => {
            Some(ipam::Subnets::parse(range).map_err(|e| Error::Cidr(range.clone(), e))?)
        }
        None => None,
    };
    let nodes: Vec<Arc<HollowNode>> = (0..config.count)
        .map(|i| {
            let claim = claims.as_ref().and_then(|s| s.nth(i));
            Arc::new(HollowNode::new(&config.name_prefix, i, config.zones, claim))
        })
        .collect();
    let shared = Arc::new(Shared {
        client: config.client.clone(),
        nodes,
        permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
        latencies: config.latencies.clone(),
        startup_delay: config.startup_delay,
        pods_per_node: config.pods_per_node,
    });
    let registering = futures::stream::iter(shared.nodes.clone())
        .map(|n| {
            let shared = shared.clone();
            async move { node::register(&shared, &n).await }
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect::<Vec<_>>();
    let results = tokio::select! {
        r = registering => r,
        () = shutdown.cancelled() => return Ok(()),
    };
    for r in results {
        r?;
    }
    tracing::info!(count = config.count, "hollow nodes registered");
    let heartbeat = tokio::spawn(heartbeat::run(shared.clone(), shutdown.clone()));
    let result = pods::run(shared, shutdown.clone()).await;
    shutdown.cancel();
    let _ = heartbeat.await;
    result
}
