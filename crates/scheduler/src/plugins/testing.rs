//! Builders for plugin tests: nodes and pods from JSON fragments.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::framework::{CycleState, NodeInfo, PodInfo, Snapshot, Status};

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A Ready node with 4 cpu, 8Gi, 110 pods, merged with `extra`.
pub fn node(name: &str, extra: Value) -> NodeInfo {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut n, extra);
    let node: Node = serde_json::from_value(n).unwrap_or_default();
    NodeInfo::new(Arc::new(node))
}

/// A pod in `default` with one container, merged with `spec`.
pub fn pod(name: &str, spec: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    merge(&mut p, json!({ "spec": spec }));
    serde_json::from_value(p).unwrap_or_default()
}

/// A pod requesting `cpu` and `memory`.
pub fn pod_with(name: &str, cpu: &str, memory: &str) -> Pod {
    pod(
        name,
        json!({"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}),
    )
}

pub fn with_pods(mut node: NodeInfo, pods: Vec<Pod>) -> NodeInfo {
    for p in pods {
        node.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
    }
    node
}

/// PreFilter (if any) then Filter of one plugin on one node.
pub fn filter(plugin: &dyn crate::framework::Plugin, pod: &Pod, node: &NodeInfo) -> Status {
    let snapshot = Snapshot::from_nodes(vec![node.clone()]);
    let mut state = CycleState::default();
    match plugin.pre_filter(&mut state, pod, &snapshot) {
        Err(s) if s.is_skip() => return Status::success(),
        Err(s) => return s,
        Ok(_) => {}
    }
    plugin.filter(&state, pod, node)
}

/// PreScore then Score (raw) on every node, then NormalizeScore.
pub fn scores(plugin: &dyn crate::framework::Plugin, pod: &Pod, nodes: Vec<NodeInfo>) -> Vec<i64> {
    let snapshot = Snapshot::from_nodes(nodes);
    let mut state = CycleState::default();
    let _ = plugin.pre_filter(&mut state, pod, &snapshot);
    let pre = plugin.pre_score(&mut state, pod, &snapshot, &snapshot.nodes);
    if pre.is_skip() {
        return vec![0; snapshot.len()];
    }
    let mut out: Vec<crate::framework::NodeScore> = snapshot
        .nodes
        .iter()
        .map(|n| crate::framework::NodeScore {
            name: n.name().to_owned(),
            score: plugin.score(&state, pod, n).unwrap_or(-1),
        })
        .collect();
    plugin.normalize_score(&state, pod, &mut out);
    out.into_iter().map(|s| s.score).collect()
}
