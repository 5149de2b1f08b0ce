//! One heartbeat loop for every hollow node: each node's Lease in
//! `kube-node-lease` is renewed every 10 s (the kubelet's interval and
//! duration), the renewals spread evenly over the interval so that 1,000
//! nodes make a steady 100 updates/s rather than a burst; the Node status
//! is rewritten every 5 minutes, as upstream's report frequency.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use skiff_kubelet::node::lease::{LEASE_DURATION_SECONDS, LEASE_NAMESPACE, RENEW_INTERVAL};
use skiff_kubelet::node::status::REPORT_INTERVAL;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::node::{HollowNode, write_status};

/// Renews every node's Lease until `shutdown`.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let count = shared.nodes.len();
    if count == 0 {
        return;
    }
    let rounds_per_report = (REPORT_INTERVAL.as_secs() / RENEW_INTERVAL.as_secs()).max(1);
    let step = RENEW_INTERVAL / count as u32;
    let mut tick = tokio::time::interval(step.max(Duration::from_micros(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    let mut round = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let node = shared.nodes[next].clone();
        let report = round > 0 && round.is_multiple_of(rounds_per_report);
        let shared_for_task = shared.clone();
        // A slow renewal must not delay the other nodes'.
        tokio::spawn(async move {
            if let Err(e) = renew(&shared_for_task, &node).await {
                tracing::warn!(error = %e, node = %node.name, "renewing the node lease");
            }
            if report && let Err(e) = write_status(&shared_for_task, &node).await {
                tracing::warn!(error = %e, node = %node.name, "writing the node status");
            }
        });
        next += 1;
        if next == count {
            next = 0;
            round += 1;
        }
    }
}

fn conflict_or_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 404)
}

/// One renewal: an update of the Lease last written; a read first only
/// when there is none or it changed under us; a create if it is missing.
pub(crate) async fn renew(shared: &Shared, node: &HollowNode) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), LEASE_NAMESPACE);
    let cached = node.lease.lock().ok().and_then(|l| l.clone());
    if let Some(lease) = cached {
        match shared
            .call(
                "update",
                leases.replace(
                    &node.name,
                    &PostParams::default(),
                    &renewed(lease, &node.name),
                ),
            )
            .await
        {
            Ok(written) => return remember(node, written),
            Err(e) if conflict_or_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let written = match shared.call("get", leases.get_opt(&node.name)).await? {
        Some(lease) => {
            shared
                .call(
                    "update",
                    leases.replace(
                        &node.name,
                        &PostParams::default(),
                        &renewed(lease, &node.name),
                    ),
                )
                .await?
        }
        None => {
            let uid = node.uid.lock().ok().and_then(|u| u.clone());
            let owner = uid.map(|uid| OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.name.clone(),
                uid,
                ..Default::default()
            });
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.name.clone()),
                    namespace: Some(LEASE_NAMESPACE.to_owned()),
                    owner_references: owner.map(|o| vec![o]),
                    ..Default::default()
                },
                spec: None,
            };
            shared
                .call(
                    "create",
                    leases.create(&PostParams::default(), &renewed(lease, &node.name)),
                )
                .await?
        }
    };
    remember(node, written)
}

fn renewed(mut lease: Lease, holder: &str) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(holder.to_owned());
    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    // Managed fields are the server's to keep; not sending them back keeps
    // the cached copy small.
    lease.metadata.managed_fields = None;
    lease
}

fn remember(node: &HollowNode, mut written: Lease) -> Result<(), kube::Error> {
    written.metadata.managed_fields = None;
    if let Ok(mut lease) = node.lease.lock() {
        *lease = Some(written);
    }
    Ok(())
}
