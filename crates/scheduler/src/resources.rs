//! What a pod asks for and what a node has left, as upstream's
//! `resource.PodRequests` and the scheduler's `NodeInfo` count them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{milli, parse_milli};

/// CPU (millicores), memory (milli-bytes) and pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu: i128,
    pub memory: i128,
    pub pods: i128,
}

impl Resources {
    fn add(&mut self, other: Resources) {
        self.cpu += other.cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }
    fn max(&mut self, other: Resources) {
        self.cpu = self.cpu.max(other.cpu);
        self.memory = self.memory.max(other.memory);
    }
}

/// Upstream's defaults for scoring a container that requests nothing
/// (`schedutil.DefaultMilliCPURequest`, `DefaultMemoryRequest`).
pub const DEFAULT_MILLI_CPU: i128 = 100;
pub const DEFAULT_MEMORY_MILLI: i128 = 200 * 1024 * 1024 * 1000;

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let res = c.resources.as_ref();
    // A limit without a request stands for the request (API defaulting).
    let get = |name: &str| -> Option<&Quantity> {
        res.and_then(|r| r.requests.as_ref().and_then(|m| m.get(name)))
            .or_else(|| res.and_then(|r| r.limits.as_ref().and_then(|m| m.get(name))))
    };
    let mut cpu = milli(get("cpu"));
    let mut memory = milli(get("memory"));
    if non_zero {
        if get("cpu").is_none() {
            cpu = DEFAULT_MILLI_CPU;
        }
        if get("memory").is_none() {
            memory = DEFAULT_MEMORY_MILLI;
        }
    }
    Resources {
        cpu,
        memory,
        pods: 0,
    }
}

/// The pod's effective request: containers (plus sidecars) summed, the
/// max with each init container, plus overhead; `pods` is 1. With
/// `non_zero`, containers without a request count upstream's defaults
/// (for scoring only).
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources {
            pods: 1,
            ..Resources::default()
        };
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(r);
            total.add(r);
            init_max.max(sidecars);
        } else {
            let mut with = sidecars;
            with.add(r);
            init_max.max(with);
        }
    }
    total.max(init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        total.cpu += milli(overhead.get("cpu"));
        total.memory += milli(overhead.get("memory"));
    }
    total.pods = 1;
    total
}

/// `status.allocatable` (else `status.capacity`) of a node.
pub fn allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let map: Option<&BTreeMap<String, Quantity>> = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    let get = |name: &str| map.and_then(|m| m.get(name)).map(|q| q.0.as_str());
    Resources {
        cpu: get("cpu").and_then(parse_milli).unwrap_or(0),
        memory: get("memory").and_then(parse_milli).unwrap_or(0),
        pods: get("pods").and_then(parse_milli).unwrap_or(0) / 1000,
    }
}

/// A node with what its pods already request.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: std::sync::Arc<Node>,
    pub allocatable: Resources,
    /// Sum of the requests of the pods on the node.
    pub requested: Resources,
    /// The same with upstream's non-zero defaults (for scoring).
    pub non_zero_requested: Resources,
}

impl NodeInfo {
    pub fn new(node: std::sync::Arc<Node>) -> Self {
        let allocatable = allocatable(&node);
        NodeInfo {
            node,
            allocatable,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn add_pod(&mut self, pod: &Pod) {
        self.requested.add(pod_requests(pod, false));
        self.non_zero_requested.add(pod_requests(pod, true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("a pod")
    }

    #[test]
    fn requests_sum_containers_max_init_plus_overhead() {
        let p = pod(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}, "limits": {"memory": "64Mi"}}}
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "1", "memory": "16Mi"}}}
            ],
            "overhead": {"cpu": "10m"}
        }}));
        let r = pod_requests(&p, false);
        assert_eq!(r.cpu, 1010);
        assert_eq!(r.memory, 128 * 1024 * 1024 * 1000);
        assert_eq!(r.pods, 1);
        let empty = pod(json!({"spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(pod_requests(&empty, false).cpu, 0);
        assert_eq!(pod_requests(&empty, true).cpu, DEFAULT_MILLI_CPU);
        assert_eq!(pod_requests(&empty, true).memory, DEFAULT_MEMORY_MILLI);
    }

    #[test]
    fn sidecars_count_with_containers() {
        let p = pod(json!({"spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "i", "resources": {"requests": {"cpu": "120m"}}}
            ]
        }}));
        assert_eq!(pod_requests(&p, false).cpu, 170);
    }
}
