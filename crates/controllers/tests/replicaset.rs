#![allow(clippy::unwrap_used)]
//! The ReplicaSet controller against a real API server in this process:
//! creating pods, scaling down in upstream's order, adopting orphans,
//! releasing pods that stop matching, status.

mod common;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .unwrap()
}

/// Active pods labelled `app=<app>`.
async fn pods(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn owned_by(pod: &Pod, rs: &ReplicaSet) -> bool {
    pod.owner_references().iter().any(|r| {
        r.controller == Some(true)
            && r.block_owner_deletion == Some(true)
            && r.kind == "ReplicaSet"
            && r.api_version == "apps/v1"
            && Some(&r.uid) == rs.metadata.uid.as_ref()
            && r.name == rs.name_any()
    })
}

async fn mark_ready(api: &Api<Pod>, name: &str) {
    let patch = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn creates_scales_down_in_order_and_reports_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let rss: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let rs = rss
        .create(&PostParams::default(), &replicaset("web", 3))
        .await
        .unwrap();
    common::eventually("3 pods", || async {
        pods(&pod_api, "web").await.len() == 3
    })
    .await;
    // No duplicates once the expectations are met.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let created = pods(&pod_api, "web").await;
    assert_eq!(created.len(), 3);
    for p in &created {
        assert!(owned_by(p, &rs), "{:?}", p.metadata.owner_references);
        assert!(p.name_any().starts_with("web-"));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.labels().get("tier").map(String::as_str), Some("web"));
    }
    common::eventually("status.replicas 3", || async {
        let s = rss.get("web").await.unwrap().status.unwrap_or_default();
        s.replicas == 3
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == rs.metadata.generation
    })
    .await;

    let ready = created[1].name_any();
    mark_ready(&pod_api, &ready).await;
    common::eventually("readyReplicas 1", || async {
        let s = rss.get("web").await.unwrap().status.unwrap_or_default();
        s.ready_replicas == Some(1) && s.available_replicas == Some(1)
    })
    .await;

    rss.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    common::eventually("scaled to 1", || async {
        pods(&pod_api, "web").await.len() == 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let left = pods(&pod_api, "web").await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].name_any(),
        ready,
        "pending pods go before the ready one"
    );
    common::eventually("status after scale-down", || async {
        let s = rss.get("web").await.unwrap().status.unwrap_or_default();
        s.replicas == 1 && s.ready_replicas == Some(1) && s.observed_generation == Some(2)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn adopts_orphans_and_releases_pods_that_stop_matching() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let rss: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    pod_api
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let rs = rss
        .create(&PostParams::default(), &replicaset("adopt", 3))
        .await
        .unwrap();
    common::eventually("orphan adopted and 2 more created", || async {
        let all = pods(&pod_api, "adopt").await;
        all.len() == 3 && all.iter().all(|p| owned_by(p, &rs))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let all = pods(&pod_api, "adopt").await;
    assert_eq!(all.len(), 3, "only 2 were created");
    assert!(all.iter().any(|p| p.name_any() == "orphan"));

    // A pod whose labels change is released and replaced.
    let moved = all
        .iter()
        .find(|p| p.name_any() != "orphan")
        .unwrap()
        .name_any();
    pod_api
        .patch(
            &moved,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"app": "elsewhere"}}})),
        )
        .await
        .unwrap();
    common::eventually("released and replaced", || async {
        let p = pod_api.get(&moved).await.unwrap();
        let mine = pods(&pod_api, "adopt").await;
        p.owner_references().is_empty() && mine.len() == 3 && mine.iter().all(|p| owned_by(p, &rs))
    })
    .await;
    common::eventually("status.replicas 3", || async {
        rss.get("adopt")
            .await
            .unwrap()
            .status
            .unwrap_or_default()
            .replicas
            == 3
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
