//! One hollow node: its identity, the Node object it registers (realistic
//! capacity, labels and conditions, built with the kubelet's own
//! [`Capacity`] and [`NodeSpec`] rules) and its registration.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec as K8sNodeSpec,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_kubelet::node::{Capacity, NodeSpec, Reserved};

use crate::{HOLLOW_LABEL, Shared};

/// A simulated machine: 4 CPUs, 16 GiB of memory, 100 GiB of disk.
const CPUS: u64 = 4;
const MEMORY_BYTES: u64 = 16 << 30;
const DISK_BYTES: u64 = 100 << 30;
/// What `status.nodeInfo.containerRuntimeVersion` says.
pub const RUNTIME_NAME: &str = "hollow";

/// A hollow node's identity and the little state it keeps (a few hundred
/// bytes: what makes 1,000 of them cheap).
#[derive(Debug)]
pub struct HollowNode {
    pub name: String,
    pub index: usize,
    pub zone: String,
    /// Its InternalIP: a loopback address (127.100.0.0/16), so that nothing
    /// the API server dials for it (logs, exec) ever leaves the machine.
    pub address: Ipv4Addr,
    /// The pod CIDR it claims itself, if any (else the IPAM controller's).
    pub claim: Option<String>,
    /// The Lease as last written, so a renewal is one update, not a read
    /// and an update.
    pub lease: Mutex<Option<Lease>>,
    /// The Node's uid once registered (the Lease's owner).
    pub uid: Mutex<Option<String>>,
}

impl HollowNode {
    pub fn new(prefix: &str, index: usize, zones: usize, claim: Option<String>) -> HollowNode {
        let host = index as u32 + 1;
        HollowNode {
            name: format!("{prefix}-{index}"),
            index,
            zone: format!("zone-{}", index % zones.max(1)),
            address: Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 100, 0, 0)) + (host & 0xffff)),
            claim,
            lease: Mutex::new(None),
            uid: Mutex::new(None),
        }
    }

    fn spec(&self, pods_per_node: u32) -> NodeSpec {
        let mut spec = NodeSpec::new(&self.name, vec![self.address.into()]);
        spec.max_pods = pods_per_node;
        spec.labels.insert(HOLLOW_LABEL.into(), "true".into());
        spec.labels
            .insert("topology.kubernetes.io/zone".into(), self.zone.clone());
        spec.labels
            .insert("topology.kubernetes.io/region".into(), "hollow".into());
        spec.labels
            .insert("node.kubernetes.io/instance-type".into(), "hollow".into());
        spec
    }

    /// The Node as registered (status is written separately: the API drops
    /// it on create).
    pub fn object(&self, pods_per_node: u32) -> Node {
        let spec = self.spec(pods_per_node);
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(spec.all_labels()),
                annotations: Some(
                    [("node.alpha.kubernetes.io/ttl".to_owned(), "0".to_owned())].into(),
                ),
                ..Default::default()
            },
            spec: Some(K8sNodeSpec {
                pod_cidr: self.claim.clone(),
                pod_cidrs: self.claim.clone().map(|c| vec![c]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A healthy node's status, as the kubelet reports it.
    pub fn status(&self, pods_per_node: u32) -> NodeStatus {
        let capacity = Capacity {
            cpus: CPUS,
            memory_bytes: MEMORY_BYTES,
            ephemeral_storage_bytes: DISK_BYTES,
            max_pods: pods_per_node,
        };
        let now = Some(Time(Timestamp::now()));
        let condition = |kind: &str, status: &str, reason: &str, message: &str| NodeCondition {
            type_: kind.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_heartbeat_time: now.clone(),
            last_transition_time: now.clone(),
        };
        NodeStatus {
            capacity: Some(capacity.quantities()),
            allocatable: Some(capacity.allocatable(&Reserved::default())),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                ),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.address.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: skiff_kubelet::node::host::go_arch().into(),
                boot_id: format!("hollow-boot-{}", self.index),
                container_runtime_version: format!(
                    "{RUNTIME_NAME}://{}",
                    env!("CARGO_PKG_VERSION")
                ),
                kernel_version: "hollow".into(),
                kube_proxy_version: String::new(),
                kubelet_version: skiff_kubelet::node::status::KUBELET_VERSION.into(),
                machine_id: format!("hollow-machine-{}", self.index),
                operating_system: "linux".into(),
                os_image: "skiff hollow node".into(),
                system_uuid: format!("hollow-{}", self.index),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Creates the Node (or takes over one of the same name), writes its
/// status, and returns it.
pub(crate) async fn register(shared: &Shared, node: &HollowNode) -> Result<Node, crate::Error> {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let object = node.object(shared.pods_per_node);
    let created = match shared
        .call("create", nodes.create(&PostParams::default(), &object))
        .await
    {
        Ok(n) => n,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let mut patch = json!({"metadata": {"labels": object.metadata.labels}});
            if let Some(cidr) = &node.claim {
                let existing = shared.call("get", nodes.get(&node.name)).await?;
                if existing.spec.and_then(|s| s.pod_cidr).is_none() {
                    patch["spec"] = json!({"podCIDR": cidr, "podCIDRs": [cidr]});
                }
            }
            shared
                .call(
                    "patch",
                    nodes.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    if let Ok(mut uid) = node.uid.lock() {
        *uid = created.metadata.uid.clone();
    }
    write_status(shared, node).await?;
    Ok(created)
}

/// Writes the node's (healthy) status: at registration, then every 5
/// minutes as upstream's `nodeStatusReportFrequency`.
pub(crate) async fn write_status(shared: &Shared, node: &HollowNode) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let patch = json!({ "status": node.status(shared.pods_per_node) });
    shared
        .call(
            "patch",
            nodes.patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_spread_over_zones_with_realistic_capacity() {
        let n = HollowNode::new("hollow", 4, 3, Some("10.64.4.0/24".into()));
        assert_eq!(n.name, "hollow-4");
        assert_eq!(n.zone, "zone-1");
        assert_eq!(n.address, Ipv4Addr::new(127, 100, 0, 5));
        let object = n.object(110);
        let labels = object.metadata.labels.unwrap_or_default();
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-1");
        assert_eq!(labels["kubernetes.io/hostname"], "hollow-4");
        assert_eq!(labels[HOLLOW_LABEL], "true");
        assert_eq!(
            object.spec.and_then(|s| s.pod_cidr).as_deref(),
            Some("10.64.4.0/24")
        );
        let status = n.status(110);
        let capacity = status.capacity.unwrap_or_default();
        assert_eq!(capacity["pods"].0, "110");
        assert_eq!(capacity["cpu"].0, "4");
        let ready = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status);
        assert_eq!(ready.as_deref(), Some("True"));
    }
}
