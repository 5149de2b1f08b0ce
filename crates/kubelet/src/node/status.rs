//! Registering the Node and keeping `status` true: conditions, capacity,
//! addresses, nodeInfo and the images present.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_cri::v1::{ListImagesRequest, StatusRequest, VersionRequest};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec as K8sNodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Capacity, HostInfo, NodeSpec};
use crate::cri::Cri;

/// How often the status is compared with what was last written.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Upstream's `nodeStatusReportFrequency`: written at least this often.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(300);
/// Upstream reports at most this many images.
const MAX_IMAGES: usize = 50;

pub const KUBELET_VERSION: &str = concat!("v1.33.0+skiff-", env!("CARGO_PKG_VERSION"));

/// The node's observed state, minus timestamps: compared to decide whether
/// a write is due.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    runtime_ready: bool,
    runtime_message: String,
    images: Vec<ContainerImage>,
    pressure: super::pressure::Pressure,
}

pub struct Reporter {
    nodes: Api<Node>,
    cri: Cri,
    spec: NodeSpec,
    capacity: Capacity,
    host: HostInfo,
    runtime_version: String,
    last: Option<(Observed, Instant)>,
    /// The Ready status we last wrote.
    last_ready: Option<String>,
    /// Per condition type: (status, last transition).
    transitions: Vec<(String, String, Timestamp)>,
    pressure: Option<tokio::sync::watch::Receiver<super::pressure::Pressure>>,
}

impl Reporter {
    pub async fn new(
        client: kube::Client,
        mut cri: Cri,
        spec: NodeSpec,
        capacity: Capacity,
    ) -> Result<Reporter, crate::Error> {
        let version = cri
            .runtime
            .version(VersionRequest::default())
            .await?
            .into_inner();
        Ok(Reporter {
            nodes: Api::all(client),
            cri,
            spec,
            capacity,
            host: HostInfo::read(),
            runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
            last: None,
            last_ready: None,
            transitions: Vec::new(),
            pressure: None,
        })
    }

    /// Reports the eviction manager's pressures as node conditions.
    pub fn with_pressure(
        mut self,
        rx: tokio::sync::watch::Receiver<super::pressure::Pressure>,
    ) -> Self {
        self.pressure = Some(rx);
        self
    }

    /// Creates the Node, or takes over an existing one of the same name
    /// (a restarted agent), then writes the full status.
    pub async fn register(&mut self) -> Result<Node, crate::Error> {
        let observed = self.observe().await;
        let status = self.status(&observed);
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.spec.name.clone()),
                labels: Some(self.spec.all_labels()),
                annotations: Some(
                    [("node.alpha.kubernetes.io/ttl".to_owned(), "0".to_owned())].into(),
                ),
                ..Default::default()
            },
            spec: Some(K8sNodeSpec {
                pod_cidr: self.spec.pod_cidr.clone(),
                pod_cidrs: self.spec.pod_cidr.clone().map(|c| vec![c]),
                ..Default::default()
            }),
            status: Some(status.clone()),
        };
        let created = match self.nodes.create(&PostParams::default(), &node).await {
            Ok(node) => node,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let mut patch = json!({"metadata": {"labels": self.spec.all_labels()}});
                if let Some(cidr) = &self.spec.pod_cidr {
                    let existing = self.nodes.get(&self.spec.name).await?;
                    if existing.spec.and_then(|s| s.pod_cidr).is_none() {
                        patch["spec"] = json!({"podCIDR": cidr, "podCIDRs": [cidr]});
                    }
                }
                self.nodes
                    .patch(
                        &self.spec.name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        // Status in create is dropped by the API (status is a subresource).
        let node = self.write(&status).await.unwrap_or(created);
        self.last = Some((observed, Instant::now()));
        Ok(node)
    }

    /// Writes the status when it changed or is due, until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let observed = self.observe().await;
            let mut due = match &self.last {
                Some((last, at)) => *last != observed || at.elapsed() >= REPORT_INTERVAL,
                None => true,
            };
            if !due {
                // The node lifecycle controller may have marked us Unknown
                // while we could not report: say we are back at once.
                due = match self.nodes.get_opt(&self.spec.name).await {
                    Ok(Some(node)) => ready_status(&node) != self.last_ready.as_deref(),
                    Ok(None) | Err(_) => false,
                };
            }
            if !due {
                continue;
            }
            let status = self.status(&observed);
            match self.write(&status).await {
                Ok(node) => {
                    self.last = Some((observed, Instant::now()));
                    self.last_ready = ready_status(&node).map(str::to_owned);
                }
                Err(e) => tracing::warn!(error = %e, "updating the node status"),
            }
        }
    }

    async fn write(&self, status: &NodeStatus) -> Result<Node, crate::Error> {
        let patch = json!({ "status": status });
        Ok(self
            .nodes
            .patch_status(
                &self.spec.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?)
    }

    async fn observe(&mut self) -> Observed {
        let (runtime_ready, runtime_message) = match self
            .cri
            .runtime
            .status(StatusRequest { verbose: false })
            .await
        {
            Ok(resp) => {
                let conditions = resp
                    .into_inner()
                    .status
                    .map(|s| s.conditions)
                    .unwrap_or_default();
                let failing: Vec<String> = conditions
                    .iter()
                    .filter(|c| !c.status)
                    .map(|c| {
                        format!(
                            "{}=false reason:{} message:{}",
                            c.r#type, c.reason, c.message
                        )
                    })
                    .collect();
                if failing.is_empty() {
                    (true, String::new())
                } else {
                    (
                        false,
                        format!("container runtime not ready: {}", failing.join(", ")),
                    )
                }
            }
            Err(e) => (false, format!("container runtime is down: {}", e.message())),
        };
        let images = match self
            .cri
            .images
            .list_images(ListImagesRequest::default())
            .await
        {
            Ok(resp) => {
                let mut images: Vec<ContainerImage> = resp
                    .into_inner()
                    .images
                    .into_iter()
                    .map(|i| ContainerImage {
                        names: Some(i.repo_digests.into_iter().chain(i.repo_tags).collect()),
                        size_bytes: Some(i.size as i64),
                    })
                    .collect();
                images.sort_by_key(|i| std::cmp::Reverse(i.size_bytes));
                images.truncate(MAX_IMAGES);
                images
            }
            Err(_) => self
                .last
                .as_ref()
                .map(|(o, _)| o.images.clone())
                .unwrap_or_default(),
        };
        Observed {
            runtime_ready,
            runtime_message,
            images,
            pressure: self
                .pressure
                .as_ref()
                .map(|rx| *rx.borrow())
                .unwrap_or_default(),
        }
    }

    fn status(&mut self, observed: &Observed) -> NodeStatus {
        let now = Timestamp::now();
        let (ready, reason, message) = if observed.runtime_ready {
            (
                "True",
                "KubeletReady",
                "kubelet is posting ready status".to_owned(),
            )
        } else {
            ("False", "KubeletNotReady", observed.runtime_message.clone())
        };
        let memory = if observed.pressure.memory {
            (
                "True",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            )
        } else {
            (
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            )
        };
        let disk = if observed.pressure.disk {
            (
                "True",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            )
        } else {
            (
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            )
        };
        let conditions = [
            ("MemoryPressure", memory.0, memory.1, memory.2.to_owned()),
            ("DiskPressure", disk.0, disk.1, disk.2.to_owned()),
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available".to_owned(),
            ),
            ("Ready", ready, reason, message),
        ];
        let conditions = conditions
            .into_iter()
            .map(|(kind, status, reason, message)| NodeCondition {
                type_: kind.to_owned(),
                status: status.to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(Time(self.transition(kind, status, now))),
            })
            .collect();
        let mut addresses: Vec<NodeAddress> = self
            .spec
            .addresses
            .iter()
            .map(|ip| NodeAddress {
                type_: "InternalIP".to_owned(),
                address: ip.to_string(),
            })
            .collect();
        addresses.push(NodeAddress {
            type_: "Hostname".to_owned(),
            address: self.spec.name.clone(),
        });
        NodeStatus {
            capacity: Some(self.capacity.quantities()),
            allocatable: Some(self.capacity.allocatable(&self.spec.reserved)),
            conditions: Some(conditions),
            addresses: Some(addresses),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.spec.kubelet_port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                machine_id: self.host.machine_id.clone(),
                system_uuid: self.host.system_uuid.clone(),
                boot_id: self.host.boot_id.clone(),
                kernel_version: self.host.kernel_version.clone(),
                os_image: self.host.os_image.clone(),
                container_runtime_version: self.runtime_version.clone(),
                kubelet_version: KUBELET_VERSION.to_owned(),
                kube_proxy_version: KUBELET_VERSION.to_owned(),
                operating_system: "linux".to_owned(),
                architecture: super::host::go_arch().to_owned(),
                ..Default::default()
            }),
            images: Some(observed.images.clone()),
            ..Default::default()
        }
    }

    fn transition(&mut self, kind: &str, status: &str, now: Timestamp) -> Timestamp {
        match self.transitions.iter_mut().find(|(k, _, _)| k == kind) {
            Some((_, s, at)) if s == status => *at,
            Some(entry) => {
                entry.1 = status.to_owned();
                entry.2 = now;
                now
            }
            None => {
                self.transitions
                    .push((kind.to_owned(), status.to_owned(), now));
                now
            }
        }
    }
}

/// The status of the node's Ready condition as stored.
fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}
