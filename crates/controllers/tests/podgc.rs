#![allow(clippy::unwrap_used)]
//! The pod garbage collector against a real API server in this process:
//! pods of a node that is gone are force-deleted after the quarantine,
//! finished pods above the threshold go oldest first.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn start(client: kube::Client) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = skiff_controllers::Config::new(client);
    config.controllers = vec!["pod-garbage-collector-controller".into()];
    config.leader_elect = false;
    config.podgc.period = Duration::from_millis(200);
    config.podgc.quarantine = Duration::from_millis(500);
    config.podgc.terminated_threshold = 2;
    let token = CancellationToken::new();
    let task = tokio::spawn({
        let token = token.clone();
        async move { skiff_controllers::run(config, token).await.unwrap() }
    });
    (token, task)
}

async fn pod(api: &Api<Pod>, name: &str, node: &str, phase: &str) {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"gc": "test"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    api.create(&PostParams::default(), &p).await.unwrap();
    let patch = json!({"status": {"phase": phase}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // Distinct creation timestamps (second precision) for the age order.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn names(api: &Api<Pod>) -> Vec<String> {
    let mut n: Vec<String> = api
        .list(&ListParams::default().labels("gc=test"))
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn orphaned_and_excess_finished_pods_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(server.client.clone());
    let node = serde_json::from_value(json!({"metadata": {"name": "real"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    for (i, name) in ["done-1", "done-2", "done-3"].iter().enumerate() {
        pod(
            &pods,
            name,
            "real",
            if i == 1 { "Failed" } else { "Succeeded" },
        )
        .await;
    }
    pod(&pods, "running", "real", "Running").await;
    pod(&pods, "orphan", "ghost", "Running").await;
    let (stop, task) = start(server.client.clone());
    common::eventually(
        "the oldest finished pod and the orphan are gone",
        || async { names(&pods).await == ["done-2", "done-3", "running"] },
    )
    .await;
    stop.cancel();
    task.await.unwrap();
}
