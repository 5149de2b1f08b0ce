//! The node heartbeat: `kube-node-lease/<node>` renewed every 10 s, as
//! upstream's NodeLease feature (the node lifecycle controller reads it).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Renews the lease until `shutdown`; errors are logged and retried at
/// the next tick (a missed renewal is what the lifecycle controller is for).
pub async fn heartbeat(client: kube::Client, node_name: String, shutdown: CancellationToken) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(client);
    let mut tick = tokio::time::interval(RENEW_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = renew(&leases, &nodes, &node_name).await {
            tracing::warn!(error = %e, node = %node_name, "renewing the node lease");
        }
    }
}

async fn renew(leases: &Api<Lease>, nodes: &Api<Node>, name: &str) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    match leases.get_opt(name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(name.to_owned());
            spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
            leases.replace(name, &PostParams::default(), &lease).await?;
        }
        None => {
            let owner = nodes.get_opt(name).await?.and_then(|node| {
                Some(OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.to_owned(),
                    uid: node.metadata.uid?,
                    ..Default::default()
                })
            });
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(LEASE_NAMESPACE.to_owned()),
                    owner_references: owner.map(|o| vec![o]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.to_owned()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}
