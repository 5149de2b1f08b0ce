//! What the scheduler's integration tests share: starting a scheduler
//! against the in-process API server, Ready nodes, polling.
#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Runs `config` until the returned token is cancelled.
pub fn start_with(config: skiff_scheduler::Config) -> CancellationToken {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move { skiff_scheduler::run(config, token).await.unwrap() }
    });
    token
}

/// The default profile.
pub fn start_scheduler(client: kube::Client) -> CancellationToken {
    start_with(skiff_scheduler::Config::new(client))
}

/// A Ready node with `cpu`/`memory` allocatable, `labels` and `taints`.
pub async fn ready_node(
    client: &kube::Client,
    name: &str,
    cpu: &str,
    memory: &str,
    labels: Value,
    taints: Value,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({
        "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status"}]
    });
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": status,
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
}

/// Polls `check` until it gives a value (20 s at most).
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Polls `check` until it holds (20 s at most).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    until(what, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await;
}
