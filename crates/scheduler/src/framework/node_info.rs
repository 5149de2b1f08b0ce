//! A node as the scheduler sees it: the Node object, the pods on it (bound
//! or assumed) with their requests computed once, the host ports they
//! hold and the images the node has — upstream's `framework.NodeInfo`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;

use crate::resources::{Resources, allocatable, pod_requests};

/// A `hostPort` a container asks for; `0.0.0.0` when no `hostIP`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Upstream's conflict rule: same port and protocol, and the same IP
    /// or either is the wildcard.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// The host ports of every container of a pod.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|&h| h > 0)?;
            Some(HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".to_owned()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                port,
            })
        })
        .collect()
}

/// A pod with what the scheduler derives from it once.
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub requests: Resources,
    /// With upstream's non-zero defaults (for scoring).
    pub non_zero: Resources,
    pub host_ports: Vec<HostPort>,
    /// What InterPodAffinity parses from the pod's terms, once per pod
    /// rather than once per attempt (upstream keeps them in PodInfo too).
    pub affinity_terms: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for PodInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodInfo").field("key", &self.key).finish()
    }
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        PodInfo {
            key: pod_key(&pod),
            requests: pod_requests(&pod, false),
            non_zero: pod_requests(&pod, true),
            host_ports: host_ports(&pod),
            affinity_terms: OnceLock::new(),
            pod,
        }
    }

    /// Has pod affinity or anti-affinity terms (required or preferred).
    pub fn has_affinity(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
    }

    /// Has required anti-affinity terms (which other pods must respect).
    pub fn has_required_anti_affinity(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|t| !t.is_empty())
    }

    pub fn priority(&self) -> i32 {
        pod_priority(&self.pod)
    }
}

/// `namespace/name`, the scheduler's key for a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// `spec.priority` (0 when unset, as upstream).
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// A number no NodeInfo change had before (upstream's generation):
/// plugins may remember per-node results while it stays the same.
fn next_generation() -> u64 {
    static GENERATION: AtomicU64 = AtomicU64::new(1);
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// One node and what is on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Changes whenever the node or its pods do.
    pub generation: u64,
    pub node: Arc<Node>,
    pub pods: Vec<Arc<PodInfo>>,
    /// The pods with (anti-)affinity terms, for InterPodAffinity.
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
    pub pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    pub allocatable: Resources,
    /// Sum of the requests of the pods on the node.
    pub requested: Resources,
    /// The same with upstream's non-zero defaults (for scoring).
    pub non_zero_requested: Resources,
    pub used_ports: Vec<HostPort>,
    /// Image names (every tag and digest listed) → size in bytes.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = NodeInfo {
            generation: next_generation(),
            node: node.clone(),
            pods: Vec::new(),
            pods_with_affinity: Vec::new(),
            pods_with_required_anti_affinity: Vec::new(),
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            used_ports: Vec::new(),
            images: HashMap::new(),
        };
        info.set_node(node);
        info
    }

    /// A new version of the Node object; the pods stay.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.generation = next_generation();
        self.allocatable = allocatable(&node);
        self.images = node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        self.node = node;
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.generation = next_generation();
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity.push(pod.clone());
        }
        if pod.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity.push(pod.clone());
        }
        self.pods.push(pod);
    }

    /// Removes the pod with `key`; false when it was not here.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.generation = next_generation();
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero);
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        self.pods_with_affinity.retain(|p| p.key != key);
        self.pods_with_required_anti_affinity
            .retain(|p| p.key != key);
        true
    }
}
