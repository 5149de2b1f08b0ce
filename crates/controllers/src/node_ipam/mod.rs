//! The node IPAM controller (`node-ipam-controller`): every node gets a
//! `spec.podCIDR` (a /24 of 10.42.0.0/16 by default) that no other node
//! has; the node agent's pod network uses it. CIDRs nodes already claim
//! (a server's own node, set at registration) are respected.

pub mod cidrs;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::{EventType, Recorder};
use cidrs::Allocator;

/// The cluster CIDR and the size of each node's share.
#[derive(Clone, Debug)]
pub struct Settings {
    pub cluster_cidr: String,
    pub node_mask: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cluster_cidr: "10.42.0.0/16".to_owned(),
            node_mask: 24,
        }
    }
}

impl Settings {
    /// The first node range (what a node given no other gets first).
    pub fn first_range(&self) -> Result<String, cidrs::CidrError> {
        Allocator::new(&self.cluster_cidr, self.node_mask)?
            .next_free(&Default::default())
            .ok_or_else(|| cidrs::CidrError::Invalid(self.cluster_cidr.clone()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cidr(#[from] cidrs::CidrError),
}

struct Ctx {
    client: kube::Client,
    nodes: Store<Node>,
    allocator: Allocator,
    /// Subnets handed out (and to which node) while the cache may not show
    /// the node's update yet.
    pending: Mutex<BTreeMap<u32, String>>,
    recorder: Recorder,
}

/// Runs the controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let allocator = Allocator::new(&settings.cluster_cidr, settings.node_mask)?;
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "node-ipam-controller"),
        client,
        nodes: controller.store(),
        allocator,
        pending: Mutex::new(BTreeMap::new()),
    });
    // One node at a time: two allocations never race for a subnet.
    controller
        .with_config(kube::runtime::controller::Config::default().concurrency(1))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "node ipam sync");
            }
        })
        .await;
    Ok(())
}

fn error_policy(node: Arc<Node>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(node = %node.name_any(), error = %error, "assigning a pod CIDR failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec.as_ref()?.pod_cidr.as_deref()
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pod_cidr(&node).is_some() || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let nodes = ctx.nodes.state();
    let mut used: BTreeSet<u32> = nodes
        .iter()
        .filter_map(|n| pod_cidr(n).and_then(|c| ctx.allocator.index_of(c)))
        .collect();
    {
        let mut pending = ctx.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Settled once the cache shows the node with a CIDR, or without it.
        pending.retain(|_, name| {
            nodes
                .iter()
                .any(|n| n.name_any() == *name && pod_cidr(n).is_none())
        });
        used.extend(pending.keys());
    }
    let Some(cidr) = ctx.allocator.next_free(&used) else {
        ctx.recorder.record(
            node.as_ref(),
            EventType::Normal,
            "CIDRNotAvailable",
            format!("Node {} status is now: CIDRNotAvailable", node.name_any()),
        );
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    // The resourceVersion makes this fail if the node changed meanwhile
    // (for instance its agent claimed a CIDR itself).
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    });
    match api
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            if let Some(i) = ctx.allocator.index_of(&cidr) {
                ctx.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(i, node.name_any());
            }
            tracing::info!(node = %node.name_any(), cidr = %cidr, "assigned pod CIDR");
            Ok(Action::await_change())
        }
        Err(e) if matches!(crate::api_code(&e), Some(404)) => Ok(Action::await_change()),
        Err(e) if crate::api_code(&e) == Some(409) => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(e.into()),
    }
}
