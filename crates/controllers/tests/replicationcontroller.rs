#![allow(clippy::unwrap_used)]
//! The ReplicationController controller against a real API server in this
//! process: creating pods, scaling (also with the real `kubectl scale rc`),
//! adopting orphans, releasing pods that stop matching, status and the
//! ReplicaFailure condition.

mod common;

use k8s_openapi::api::core::v1::{Pod, ReplicationController, ServiceAccount};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// An RC without a selector: the API server defaults it to the template's
/// labels, as upstream.
fn rc(name: &str, replicas: i32) -> ReplicationController {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
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

fn owned_by(pod: &Pod, rc: &ReplicationController) -> bool {
    pod.owner_references().iter().any(|r| {
        r.controller == Some(true)
            && r.block_owner_deletion == Some(true)
            && r.kind == "ReplicationController"
            && r.api_version == "v1"
            && Some(&r.uid) == rc.metadata.uid.as_ref()
            && r.name == rc.name_any()
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

/// Runs the real kubectl against the server whose data is in `dir`.
async fn kubectl(dir: &std::path::Path, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(dir.join("admin.kubeconfig"))
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn creates_scales_with_kubectl_and_reports_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let rcs: Api<ReplicationController> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let rc = rcs
        .create(&PostParams::default(), &rc("web", 3))
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
        assert!(owned_by(p, &rc), "{:?}", p.metadata.owner_references);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.labels().get("tier").map(String::as_str), Some("web"));
    }
    common::eventually("status.replicas 3", || async {
        let s = rcs.get("web").await.unwrap().status.unwrap_or_default();
        s.replicas == 3
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == rc.metadata.generation
    })
    .await;

    let ready = created[1].name_any();
    mark_ready(&pod_api, &ready).await;
    common::eventually("readyReplicas 1", || async {
        let s = rcs.get("web").await.unwrap().status.unwrap_or_default();
        s.ready_replicas == Some(1) && s.available_replicas == Some(1)
    })
    .await;

    // Scale down with the real kubectl (the scale subresource).
    let out = kubectl(dir.path(), &["scale", "rc", "web", "--replicas=1"]).await;
    assert!(out.contains("scaled"), "{out}");
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
        let s = rcs.get("web").await.unwrap().status.unwrap_or_default();
        s.replicas == 1 && s.ready_replicas == Some(1) && s.observed_generation == Some(2)
    })
    .await;

    // And up again.
    kubectl(dir.path(), &["scale", "rc", "web", "--replicas=4"]).await;
    common::eventually("scaled to 4", || async {
        let s = rcs.get("web").await.unwrap().status.unwrap_or_default();
        pods(&pod_api, "web").await.len() == 4 && s.replicas == 4
    })
    .await;
    let events = kubectl(
        dir.path(),
        &[
            "get",
            "events",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.kind}/{.reason}/{.source.component} {end}",
        ],
    )
    .await;
    assert!(
        events.contains("ReplicationController/SuccessfulCreate/replication-controller")
            && events.contains("ReplicationController/SuccessfulDelete/replication-controller"),
        "{events}"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn adopts_orphans_and_releases_pods_that_stop_matching() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let rcs: Api<ReplicationController> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "adopt", "tier": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    pod_api
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let rc = rcs
        .create(&PostParams::default(), &rc("adopt", 3))
        .await
        .unwrap();
    common::eventually("orphan adopted and 2 more created", || async {
        let all = pods(&pod_api, "adopt").await;
        all.len() == 3 && all.iter().all(|p| owned_by(p, &rc))
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
        p.owner_references().is_empty() && mine.len() == 3 && mine.iter().all(|p| owned_by(p, &rc))
    })
    .await;
    common::eventually("status.replicas 3", || async {
        rcs.get("adopt")
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

#[tokio::test]
async fn replica_failure_condition_while_creates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let rcs: Api<ReplicationController> = Api::namespaced(server.client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    // Pods naming a service account that does not exist are refused by
    // admission.
    let mut refused = rc("refused", 2);
    if let Some(spec) = refused
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut())
    {
        spec.service_account_name = Some("builder".to_owned());
    }
    rcs.create(&PostParams::default(), &refused).await.unwrap();
    common::eventually("ReplicaFailure=True, FailedCreate", || async {
        let s = rcs.get("refused").await.unwrap().status.unwrap_or_default();
        s.conditions.iter().flatten().any(|c| {
            c.type_ == "ReplicaFailure"
                && c.status == "True"
                && c.reason.as_deref() == Some("FailedCreate")
                && c.message.as_deref().is_some_and(|m| m.contains("builder"))
        })
    })
    .await;
    assert!(pods(&pod_api, "refused").await.is_empty());

    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "builder"}})).unwrap();
    Api::<ServiceAccount>::namespaced(server.client.clone(), "default")
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    common::eventually("pods created and the condition cleared", || async {
        let s = rcs.get("refused").await.unwrap().status.unwrap_or_default();
        pods(&pod_api, "refused").await.len() == 2
            && s.replicas == 2
            && s.conditions
                .iter()
                .flatten()
                .all(|c| c.type_ != "ReplicaFailure")
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
