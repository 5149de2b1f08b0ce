//! skiff's scheduler: assigns pending pods to nodes the way upstream's
//! kube-scheduler does, as an API client.
//!
//! Start reading at [`run`]: watches of Pods, Nodes, Namespaces and
//! PodDisruptionBudgets feed the [`cache::Cache`] (nodes with their pods,
//! assumed ones included) and the [`queue::Queue`] of pending pods (no
//! `spec.nodeName`, one of our profiles' `schedulerName`, not being
//! deleted). One pod at a time runs through its profile's
//! [`framework::Framework`] (PreFilter, Filter in parallel, PostFilter,
//! PreScore, Score; [`plugins`] has the in-tree plugins) against a
//! snapshot of the cache; the chosen node is assumed at once and the
//! `pods/binding` call runs in the background, so the next pod is
//! scheduled while the API server answers. A pod that fits nowhere gets
//! `PodScheduled=False` (`Unschedulable`, with upstream's `0/N nodes are
//! available: ...` message) and a `FailedScheduling` Event, and waits for
//! a cluster event that may change that.

pub mod cache;
pub mod config;
pub mod framework;
pub mod leader;
pub mod metrics;
pub mod plugins;
pub mod quantity;
pub mod queue;
pub mod resources;
mod runtime;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

pub use framework::Framework;
pub use runtime::run;

/// The name pods ask for when they do not name a scheduler.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// What the scheduler runs with.
#[derive(Clone)]
pub struct Config {
    /// The scheduler's API client (its own identity).
    pub client: kube::Client,
    /// One framework per profile; pods name theirs by
    /// `spec.schedulerName` (none = `default-scheduler`).
    pub profiles: Vec<Arc<Framework>>,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Where attempts, latencies and queue sizes are counted.
    pub metrics: metrics::Metrics,
}

impl Config {
    /// The default profile only.
    pub fn new(client: kube::Client) -> Self {
        Config::with_scheduler_name(client, DEFAULT_SCHEDULER_NAME)
    }

    /// The default plugins served under another `schedulerName`.
    pub fn with_scheduler_name(client: kube::Client, name: &str) -> Self {
        Config {
            client,
            profiles: vec![Arc::new(plugins::default_framework(name))],
            initial_backoff: queue::INITIAL_BACKOFF,
            max_backoff: queue::MAX_BACKOFF,
            metrics: metrics::Metrics::new(),
        }
    }

    /// The profiles, backoff and metrics of a resolved configuration
    /// (`--config`); an error names a plugin that cannot be built.
    pub fn from_config(
        client: kube::Client,
        config: &config::SchedulerConfig,
        metrics: metrics::Metrics,
    ) -> Result<Self, String> {
        let profiles = config
            .profiles
            .iter()
            .map(|p| plugins::framework_for(p, config.percentage_of_nodes_to_score).map(Arc::new))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Config {
            client,
            profiles,
            initial_backoff: config.pod_initial_backoff,
            max_backoff: config.pod_max_backoff,
            metrics,
        })
    }

    /// The profile `pod` asks for, if it is one of ours.
    pub fn profile_for(&self, pod: &Pod) -> Option<&Arc<Framework>> {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_SCHEDULER_NAME);
        self.profiles.iter().find(|p| p.profile_name == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// Whether `pod` waits for a scheduler (any): unbound, not deleting, not
/// finished.
pub fn is_unscheduled(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}
