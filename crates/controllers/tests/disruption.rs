#![allow(clippy::unwrap_used)]
//! PodDisruptionBudgets against a real API server in this process: the
//! disruption controller's status, and the eviction subresource obeying
//! it.

mod common;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

async fn mark_ready(pods: &Api<Pod>, selector: &str) {
    for p in pods
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
    {
        let patch = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        ]}});
        pods.patch_status(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    }
}

fn numbers(pdb: &PodDisruptionBudget) -> (i32, i32, i32, i32) {
    let s = pdb.status.clone().unwrap_or_default();
    (
        s.current_healthy,
        s.desired_healthy,
        s.expected_pods,
        s.disruptions_allowed,
    )
}

#[tokio::test]
async fn budgets_track_healthy_pods_and_evictions_obey_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let client = server.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    mark_ready(&pods, "app=web").await;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    common::eventually("3 healthy, 2 desired, 1 allowed", || async {
        numbers(&pdbs.get("web").await.unwrap()) == (3, 2, 3, 1)
    })
    .await;
    pods.evict("web-0", &EvictParams::default()).await.unwrap();
    assert!(pods.get_opt("web-0").await.unwrap().is_none());
    // (A refused eviction is a 429, which kube-rs retries for minutes:
    // `e2e_drain` checks the refusal with kubectl.)
    common::eventually("0 allowed, condition InsufficientPods", || async {
        let b = pdbs.get("web").await.unwrap();
        let cond = b.status.clone().unwrap().conditions.unwrap_or_default();
        numbers(&b) == (2, 2, 2, 0)
            && cond
                .iter()
                .any(|c| c.type_ == "DisruptionAllowed" && c.reason == "InsufficientPods")
    })
    .await;
    // A pod that is not running is not protected.
    let patch = json!({"status": {"phase": "Pending", "conditions": []}});
    pods.patch_status("web-1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    pods.evict("web-1", &EvictParams::default()).await.unwrap();

    // maxUnavailable is relative to what the pods' controller wants.
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    rss.create(&PostParams::default(), &rs).await.unwrap();
    common::eventually("4 api pods", || async {
        pods.list(&ListParams::default().labels("app=api"))
            .await
            .unwrap()
            .items
            .len()
            == 4
    })
    .await;
    mark_ready(&pods, "app=api").await;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "api"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    common::eventually("4 expected, 3 desired, 1 allowed", || async {
        numbers(&pdbs.get("api").await.unwrap()) == (4, 3, 4, 1)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
