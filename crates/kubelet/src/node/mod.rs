//! The Node this agent runs: registration, status and the heartbeat Lease.
//!
//! Like upstream, the heartbeat is cheap (a Lease renewed every 10 s) and
//! the full Node status is written only when it changed or every 5 min.

pub mod host;
pub mod image_gc;
pub mod lease;
pub mod pressure;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use host::{Capacity, HostInfo, Reserved};

/// How the Node is described; filled from flags and the host.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    /// InternalIP addresses, first one preferred.
    pub addresses: Vec<IpAddr>,
    /// Labels besides the well-known ones the kubelet always sets.
    pub labels: BTreeMap<String, String>,
    /// `spec.podCIDR` to claim at registration when no controller assigns one.
    pub pod_cidr: Option<String>,
    /// Port of the kubelet API (`status.daemonEndpoints`).
    pub kubelet_port: u16,
    pub reserved: Reserved,
    pub max_pods: u32,
    /// `node-role.kubernetes.io/control-plane` on servers.
    pub control_plane: bool,
}

impl NodeSpec {
    pub fn new(name: &str, addresses: Vec<IpAddr>) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            addresses,
            labels: BTreeMap::new(),
            pod_cidr: None,
            kubelet_port: 10250,
            reserved: Reserved::default(),
            max_pods: 110,
            control_plane: false,
        }
    }

    /// The labels upstream's kubelet puts on its Node, plus ours.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        let arch = host::go_arch().to_owned();
        labels.insert("kubernetes.io/hostname".into(), self.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), arch.clone());
        labels.insert("beta.kubernetes.io/os".into(), "linux".into());
        labels.insert("beta.kubernetes.io/arch".into(), arch);
        if self.control_plane {
            labels.insert(
                "node-role.kubernetes.io/control-plane".into(),
                "true".into(),
            );
        }
        labels
    }
}
