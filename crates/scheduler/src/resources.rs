//! What a pod asks for and what a node has, as upstream's
//! `resource.PodRequests` and the scheduler's `framework.Resource` count
//! them: cpu, memory, ephemeral-storage, the pod count and every other
//! ("scalar": extended resources, hugepages) resource by name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{milli, parse_milli};

/// Milli-units (cpu in millicores, bytes × 1000), the pod count as is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu: i128,
    pub memory: i128,
    pub ephemeral_storage: i128,
    pub pods: i128,
    pub scalar: BTreeMap<String, i128>,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.cpu += other.cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.cpu -= other.cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    fn max(&mut self, other: &Resources) {
        self.cpu = self.cpu.max(other.cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// The amount of a resource by its API name.
    pub fn get(&self, name: &str) -> i128 {
        match name {
            "cpu" => self.cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.pods * 1000,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    fn set(&mut self, name: &str, value: i128) {
        match name {
            "cpu" => self.cpu = value,
            "memory" => self.memory = value,
            "ephemeral-storage" => self.ephemeral_storage = value,
            "pods" => self.pods = value / 1000,
            other => {
                self.scalar.insert(other.to_owned(), value);
            }
        }
    }

    fn from_map(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in map.into_iter().flatten() {
            r.set(name, parse_milli(&q.0).unwrap_or(0));
        }
        r
    }
}

/// Upstream's defaults for scoring a container that requests nothing
/// (`schedutil.DefaultMilliCPURequest`, `DefaultMemoryRequest`).
pub const DEFAULT_MILLI_CPU: i128 = 100;
pub const DEFAULT_MEMORY_MILLI: i128 = 200 * 1024 * 1024 * 1000;

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    // A limit without a request stands for the request (API defaulting).
    let mut r = Resources::from_map(limits);
    r.pods = 0;
    for (name, q) in requests.into_iter().flatten() {
        r.set(name, parse_milli(&q.0).unwrap_or(0));
    }
    if non_zero {
        let has = |name: &str| {
            requests.is_some_and(|m| m.contains_key(name))
                || limits.is_some_and(|m| m.contains_key(name))
        };
        if !has("cpu") {
            r.cpu = DEFAULT_MILLI_CPU;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_MILLI;
        }
    }
    r
}

/// The pod's effective request: containers (plus sidecars) summed, the
/// max with each init container, plus overhead; `pods` is 1. With
/// `non_zero`, containers without a cpu/memory request count upstream's
/// defaults (for scoring only).
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources {
            pods: 1,
            ..Resources::default()
        };
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            total.add(&r);
            init_max.max(&sidecars);
        } else {
            let mut with = sidecars.clone();
            with.add(&r);
            init_max.max(&with);
        }
    }
    total.max(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        total.cpu += milli(overhead.get("cpu"));
        total.memory += milli(overhead.get("memory"));
        total.ephemeral_storage += milli(overhead.get("ephemeral-storage"));
    }
    total.pods = 1;
    total
}

/// `status.allocatable` (else `status.capacity`) of a node.
pub fn allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let map = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    Resources::from_map(map)
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

    #[test]
    fn extended_resources_and_ephemeral_storage() {
        let p = pod(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"limits": {"example.com/gpu": "2"},
                    "requests": {"ephemeral-storage": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"example.com/gpu": "1"}}}
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"example.com/gpu": "4"}}}
            ]
        }}));
        let r = pod_requests(&p, false);
        assert_eq!(r.get("example.com/gpu"), 4000);
        assert_eq!(r.ephemeral_storage, 1024 * 1024 * 1024 * 1000);
    }
}
