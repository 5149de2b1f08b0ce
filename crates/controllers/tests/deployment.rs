#![allow(clippy::unwrap_used)]
//! The Deployment controller (with the ReplicaSet controller) against a
//! real API server in this process: the first ReplicaSet, Recreate and
//! RollingUpdate rollouts, revisions, status.

mod common;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn deployment(name: &str, replicas: i32, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    }))
    .unwrap()
}

async fn owned_replicasets(api: &Api<ReplicaSet>, d: &Deployment) -> Vec<ReplicaSet> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == d.metadata.uid.as_ref())
        })
        .collect()
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn image(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn revision<K: ResourceExt>(o: &K) -> Option<String> {
    o.annotations()
        .get("deployment.kubernetes.io/revision")
        .cloned()
}

async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
}

/// Stands in for the kubelet: marks every pending pod Running and Ready.
fn kubelet(pods: Api<Pod>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for p in pods.list(&ListParams::default()).await.unwrap().items {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
                if !ready && p.metadata.deletion_timestamp.is_none() {
                    let patch = json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
                    ]}});
                    let _ = pods
                        .patch_status(
                            &p.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test]
async fn first_replicaset_then_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let ds: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let d = ds
        .create(
            &PostParams::default(),
            &deployment("web", 3, json!({"type": "Recreate"})),
        )
        .await
        .unwrap();
    common::eventually("one ReplicaSet with 3 replicas", || async {
        let all = owned_replicasets(&rss, &d).await;
        all.len() == 1 && replicas(&all[0]) == 3
    })
    .await;
    let first = owned_replicasets(&rss, &d).await.remove(0);
    let hash = first.labels().get("pod-template-hash").cloned().unwrap();
    assert_eq!(first.name_any(), format!("web-{hash}"));
    let spec = first.spec.clone().unwrap();
    assert_eq!(
        spec.selector.match_labels.unwrap().get("pod-template-hash"),
        Some(&hash)
    );
    assert_eq!(
        spec.template
            .unwrap()
            .metadata
            .unwrap()
            .labels
            .unwrap()
            .get("pod-template-hash"),
        Some(&hash)
    );
    assert_eq!(revision(&first).as_deref(), Some("1"));
    common::eventually("3 pods and the deployment status", || async {
        let d = ds.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len()
            == 3
            && s.replicas == Some(3)
            && s.updated_replicas == Some(3)
            && s.observed_generation == d.metadata.generation
            && revision(&d).as_deref() == Some("1")
    })
    .await;

    set_image(&ds, "web", "nginx:2").await;
    common::eventually("Recreate: old at 0, new at 3 with revision 2", || async {
        let all = owned_replicasets(&rss, &d).await;
        let old = all.iter().find(|rs| rs.name_any() == first.name_any());
        let new = all.iter().find(|rs| image(rs) == "nginx:2");
        old.is_some_and(|o| replicas(o) == 0)
            && new.is_some_and(|n| replicas(n) == 3 && revision(n).as_deref() == Some("2"))
    })
    .await;
    common::eventually("all pods are new", || async {
        let ps = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items;
        ps.len() == 3
            && ps
                .iter()
                .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("nginx:2"))
    })
    .await;
    common::eventually("deployment revision 2", || async {
        let d = ds.get("web").await.unwrap();
        revision(&d).as_deref() == Some("2")
            && d.status.unwrap_or_default().updated_replicas == Some(3)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn rolling_update_keeps_availability() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let ds: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let kubelet = kubelet(pods.clone());
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let d = ds
        .create(&PostParams::default(), &deployment("roll", 3, strategy))
        .await
        .unwrap();
    common::eventually("3 available", || async {
        let s = ds.get("roll").await.unwrap().status.unwrap_or_default();
        s.available_replicas == Some(3) && s.ready_replicas == Some(3)
    })
    .await;
    set_image(&ds, "roll", "nginx:2").await;
    let watch = {
        let rss = rss.clone();
        let d = d.clone();
        tokio::spawn(async move {
            // maxSurge 1: never more than 4 replicas asked for in all.
            let mut most = 0;
            for _ in 0..100 {
                let total: i32 = owned_replicasets(&rss, &d).await.iter().map(replicas).sum();
                most = most.max(total);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            most
        })
    };
    common::eventually("rolled out: new at 3, old at 0", || async {
        let all = owned_replicasets(&rss, &d).await;
        all.len() == 2
            && all.iter().all(|rs| {
                if image(rs) == "nginx:2" {
                    replicas(rs) == 3 && revision(rs).as_deref() == Some("2")
                } else {
                    replicas(rs) == 0
                }
            })
    })
    .await;
    common::eventually("status after the rollout", || async {
        let d = ds.get("roll").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        s.replicas == Some(3)
            && s.updated_replicas == Some(3)
            && s.available_replicas == Some(3)
            && revision(&d).as_deref() == Some("2")
    })
    .await;
    assert!(watch.await.unwrap() <= 4, "maxSurge respected");
    kubelet.abort();
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn old_replicasets_beyond_the_history_limit_go() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let ds: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    // History is pruned only once a rollout is complete: pods must get ready.
    let fake = kubelet(Api::namespaced(server.client.clone(), "default"));
    let mut d = deployment("hist", 1, json!({"type": "Recreate"}));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let d = ds.create(&PostParams::default(), &d).await.unwrap();
    for (i, img) in ["nginx:2", "nginx:3"].into_iter().enumerate() {
        common::eventually("rolled out", || async {
            let all = owned_replicasets(&rss, &d).await;
            all.len() == i + 1 && all.iter().any(|rs| replicas(rs) == 1)
        })
        .await;
        set_image(&ds, "hist", img).await;
    }
    common::eventually("the new one and one old one are left", || async {
        let all = owned_replicasets(&rss, &d).await;
        all.len() == 2
            && all.iter().any(|rs| {
                image(rs) == "nginx:3" && replicas(rs) == 1 && revision(rs).as_deref() == Some("3")
            })
            && all
                .iter()
                .any(|rs| image(rs) == "nginx:2" && replicas(rs) == 0)
    })
    .await;
    fake.abort();
    stop.cancel();
    task.await.unwrap();
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn pair(status: &str, reason: &str) -> Option<(String, String)> {
    Some((status.to_owned(), reason.to_owned()))
}

#[tokio::test]
async fn conditions_report_progress_completion_and_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let ds: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let fake = kubelet(Api::namespaced(server.client.clone(), "default"));
    let mut d = deployment("cond", 2, json!({}));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    ds.create(&PostParams::default(), &d).await.unwrap();
    common::eventually("complete: Available and NewReplicaSetAvailable", || async {
        let d = ds.get("cond").await.unwrap();
        condition(&d, "Available") == pair("True", "MinimumReplicasAvailable")
            && condition(&d, "Progressing") == pair("True", "NewReplicaSetAvailable")
    })
    .await;
    // No kubelet any more: the next rollout cannot progress.
    fake.abort();
    set_image(&ds, "cond", "nginx:2").await;
    common::eventually("the rollout times out", || async {
        let d = ds.get("cond").await.unwrap();
        condition(&d, "Progressing") == pair("False", "ProgressDeadlineExceeded")
    })
    .await;
    let d = ds.get("cond").await.unwrap();
    let progressing = d
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert!(
        progressing
            .message
            .unwrap()
            .ends_with("has timed out progressing."),
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn resizing_mid_rollout_is_proportional() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let ds: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    let fake = kubelet(Api::namespaced(server.client.clone(), "default"));
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    let d = ds
        .create(&PostParams::default(), &deployment("prop", 10, strategy))
        .await
        .unwrap();
    common::eventually("10 available", || async {
        let s = ds.get("prop").await.unwrap().status.unwrap_or_default();
        s.available_replicas == Some(10)
    })
    .await;
    // The new pods never get ready: the rollout stops at 8 old + 5 new
    // (upstream's documented example).
    fake.abort();
    set_image(&ds, "prop", "nginx:2").await;
    let sizes = || async {
        let all = owned_replicasets(&rss, &d).await;
        let of = |img: &str| all.iter().find(|rs| image(rs) == img).map_or(-1, replicas);
        (of("nginx:1"), of("nginx:2"))
    };
    common::eventually("8 old and 5 new", || async { sizes().await == (8, 5) }).await;
    let patch = json!({"spec": {"replicas": 15}});
    ds.patch("prop", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::eventually("the 5 extra pods split 3:2", || async {
        sizes().await == (11, 7)
    })
    .await;
    // `kubectl describe` shows the scaling as Events.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(server.client.clone(), "default");
    common::eventually("ScalingReplicaSet events", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ScalingReplicaSet")
                    && e.message.as_deref().is_some_and(|m| {
                        m.starts_with("Scaled up replica set prop-") && m.ends_with(" to 11 from 8")
                    })
            })
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn rolling_back_reuses_the_old_replicaset_and_pausing_holds_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    let ds: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(server.client.clone(), "default");
    let fake = kubelet(Api::namespaced(server.client.clone(), "default"));
    let mut d = deployment("back", 2, json!({}));
    d.metadata
        .annotations
        .get_or_insert_default()
        .insert("kubernetes.io/change-cause".into(), "first".into());
    let d = ds.create(&PostParams::default(), &d).await.unwrap();
    common::eventually("revision 1 complete", || async {
        let s = ds.get("back").await.unwrap().status.unwrap_or_default();
        s.updated_replicas == Some(2) && s.available_replicas == Some(2) && s.replicas == Some(2)
    })
    .await;
    let first = owned_replicasets(&rss, &d).await.remove(0);
    assert_eq!(
        first
            .annotations()
            .get("kubernetes.io/change-cause")
            .map(String::as_str),
        Some("first"),
        "the change cause is copied for `kubectl rollout history`"
    );
    set_image(&ds, "back", "nginx:2").await;
    common::eventually("revision 2 complete", || async {
        let all = owned_replicasets(&rss, &d).await;
        all.len() == 2
            && all
                .iter()
                .any(|rs| image(rs) == "nginx:2" && replicas(rs) == 2)
            && all
                .iter()
                .any(|rs| image(rs) == "nginx:1" && replicas(rs) == 0)
    })
    .await;
    // What `kubectl rollout undo` does: the old template goes back.
    set_image(&ds, "back", "nginx:1").await;
    common::eventually("the first ReplicaSet is revision 3 again", || async {
        let rs = rss.get(&first.name_any()).await.unwrap();
        let d = ds.get("back").await.unwrap();
        replicas(&rs) == 2
            && revision(&rs).as_deref() == Some("3")
            && rs
                .annotations()
                .get("deployment.kubernetes.io/revision-history")
                .map(String::as_str)
                == Some("1")
            && revision(&d).as_deref() == Some("3")
    })
    .await;
    assert_eq!(owned_replicasets(&rss, &d).await.len(), 2);

    // Paused: a template change makes no ReplicaSet, a resize still applies.
    let patch = json!({"spec": {"paused": true}});
    ds.patch("back", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::eventually("Progressing=Unknown DeploymentPaused", || async {
        let d = ds.get("back").await.unwrap();
        condition(&d, "Progressing") == pair("Unknown", "DeploymentPaused")
    })
    .await;
    set_image(&ds, "back", "nginx:3").await;
    let patch = json!({"spec": {"replicas": 3}});
    ds.patch("back", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::eventually("resized while paused", || async {
        replicas(&rss.get(&first.name_any()).await.unwrap()) == 3
    })
    .await;
    assert!(
        owned_replicasets(&rss, &d)
            .await
            .iter()
            .all(|rs| image(rs) != "nginx:3"),
        "a paused Deployment rolled out"
    );
    let patch = json!({"spec": {"paused": false}});
    ds.patch("back", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::eventually("resumed: nginx:3 rolls out", || async {
        owned_replicasets(&rss, &d)
            .await
            .iter()
            .any(|rs| image(rs) == "nginx:3" && replicas(rs) == 3)
    })
    .await;
    fake.abort();
    stop.cancel();
    task.await.unwrap();
}
