#![allow(clippy::unwrap_used)]
//! The StatefulSet controller against a real API server in this process
//! (no kubelet: the tests mark pods Running and Ready themselves): ordered
//! and parallel creation, scale-down from the highest ordinal, claims from
//! volumeClaimTemplates, RollingUpdate with a partition, OnDelete,
//! ControllerRevisions, failed pods and status.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

fn statefulset(name: &str, replicas: i32, extra: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": format!("{name}-svc"),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

struct Env {
    _dir: tempfile::TempDir,
    _server: common::Running,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    sets: Api<StatefulSet>,
    pods: Api<Pod>,
    client: kube::Client,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let (stop, task) = common::start_controllers(client.clone());
    Env {
        _dir: dir,
        sets: Api::namespaced(client.clone(), "default"),
        pods: Api::namespaced(client.clone(), "default"),
        client,
        _server: server,
        stop,
        task,
    }
}

impl Env {
    async fn finish(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    /// Live pods of `app` by name.
    async fn pods_of(&self, app: &str) -> BTreeMap<String, Pod> {
        self.pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (p.name_any(), p))
            .collect()
    }

    async fn names(&self, app: &str) -> Vec<String> {
        self.pods_of(app).await.into_keys().collect()
    }

    async fn mark_ready(&self, name: &str) {
        let patch = json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}],
        }});
        self.pods
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn status(&self, name: &str) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
        self.sets
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    }

    /// Acts as the kubelet until `n` pods of `app` are ready.
    async fn ready_all(&self, app: &str, n: usize) {
        common::eventually(&format!("{n} ready pods of {app}"), || async {
            let pods = self.pods_of(app).await;
            for (name, p) in &pods {
                if !is_ready(p) {
                    self.mark_ready(name).await;
                }
            }
            pods.len() == n && pods.values().all(is_ready)
        })
        .await;
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn revision(p: &Pod) -> String {
    p.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
}

#[tokio::test]
async fn ordered_ready_creates_in_order_and_scales_down_from_the_top() {
    let env = env().await;
    let set = env
        .sets
        .create(&PostParams::default(), &{
            let mut set = statefulset("web", 3, json!({}));
            let spec = set.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
            spec.node_name = Some("n1".to_owned());
            set
        })
        .await
        .unwrap();
    common::eventually("web-0", || async { env.names("web").await == ["web-0"] }).await;
    pause().await;
    assert_eq!(env.names("web").await, ["web-0"], "web-1 waits for web-0");
    let pod = env.pods.get("web-0").await.unwrap();
    let labels = pod.labels();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    assert!(labels["controller-revision-hash"].starts_with("web-"));
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web-svc"));
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller, Some(&owner.uid)),
        ("StatefulSet", Some(true), set.metadata.uid.as_ref())
    );

    // Running but not Ready is not enough.
    env.pods
        .patch_status(
            "web-0",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    pause().await;
    assert_eq!(env.names("web").await, ["web-0"]);
    env.mark_ready("web-0").await;
    common::eventually("web-1", || async {
        env.names("web").await == ["web-0", "web-1"]
    })
    .await;
    pause().await;
    assert_eq!(env.names("web").await, ["web-0", "web-1"], "web-2 waits");
    env.mark_ready("web-1").await;
    common::eventually("web-2", || async { env.names("web").await.len() == 3 }).await;
    env.ready_all("web", 3).await;
    common::eventually("status", || async {
        let s = env.status("web").await;
        s.replicas == 3
            && s.ready_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.current_replicas == Some(3)
            && s.updated_replicas == Some(3)
            && s.current_revision.is_some()
            && s.current_revision == s.update_revision
            && s.observed_generation == set.metadata.generation
    })
    .await;

    // Scale down: web-2 goes before web-1.
    env.sets
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    // The pods are bound to a node, so deletion is graceful and, with no
    // kubelet, lasts until the test removes the pod.
    let terminating = |name: &'static str| {
        let pods = &env.pods;
        async move {
            pods.get_opt(name)
                .await
                .unwrap()
                .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
        }
    };
    common::eventually("web-2 terminating", || terminating("web-2")).await;
    pause().await;
    assert_eq!(
        env.names("web").await,
        ["web-0", "web-1"],
        "web-1 waits until web-2 is gone"
    );
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    env.pods.delete("web-2", &now).await.unwrap();
    common::eventually("web-1 terminating", || terminating("web-1")).await;
    env.pods.delete("web-1", &now).await.unwrap();
    common::eventually("scaled to 1", || async {
        env.pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len()
            == 1
    })
    .await;
    assert_eq!(env.names("web").await, ["web-0"]);
    common::eventually("status after scale-down", || async {
        let s = env.status("web").await;
        s.replicas == 1 && s.ready_replicas == Some(1) && s.observed_generation == Some(2)
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn parallel_creates_all_at_once_and_replaces_failed_pods() {
    let env = env().await;
    env.sets
        .create(
            &PostParams::default(),
            &statefulset("par", 3, json!({"podManagementPolicy": "Parallel"})),
        )
        .await
        .unwrap();
    common::eventually("3 pods without any ready", || async {
        env.names("par").await == ["par-0", "par-1", "par-2"]
    })
    .await;
    let before = env.pods.get("par-1").await.unwrap().uid();
    env.pods
        .patch_status(
            "par-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": "Failed"}})),
        )
        .await
        .unwrap();
    common::eventually("failed par-1 recreated", || async {
        env.pods_of("par")
            .await
            .get("par-1")
            .is_some_and(|p| p.uid() != before)
    })
    .await;
    // Scale down all at once too.
    env.sets
        .patch(
            "par",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    common::eventually("no pods", || async { env.names("par").await.is_empty() }).await;
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let reasons: Vec<(String, String, String)> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("par"))
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.source.and_then(|s| s.component).unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect();
    for wanted in [
        "create Pod par-0 in StatefulSet par successful",
        "delete Pod par-2 in StatefulSet par successful",
    ] {
        assert!(
            reasons
                .iter()
                .any(|(_, c, m)| c == "statefulset-controller" && m == wanted),
            "{wanted}: {reasons:?}"
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn claims_from_volume_claim_templates() {
    let env = env().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), "default");
    let mut set = statefulset(
        "db",
        2,
        json!({
            "podManagementPolicy": "Parallel",
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"},
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        }),
    );
    let template_spec = set.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    template_spec.volumes = Some(vec![
        serde_json::from_value(json!({"name": "data", "emptyDir": {}})).unwrap(),
    ]);
    template_spec.containers[0].volume_mounts = Some(vec![
        serde_json::from_value(json!({"name": "data", "mountPath": "/data"})).unwrap(),
    ]);
    env.sets.create(&PostParams::default(), &set).await.unwrap();
    common::eventually("2 pods", || async { env.names("db").await.len() == 2 }).await;
    for i in 0..2 {
        let claim = claims.get(&format!("data-db-{i}")).await.unwrap();
        assert_eq!(claim.labels()["app"], "db");
        let pod = env.pods.get(&format!("db-{i}")).await.unwrap();
        // (Besides the service account token volume admission adds.)
        let volumes: Vec<_> = pod
            .spec
            .unwrap()
            .volumes
            .unwrap()
            .into_iter()
            .filter(|v| !v.name.starts_with("kube-api-access-"))
            .collect();
        assert_eq!(volumes.len(), 1, "the template volume is replaced");
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some(format!("data-db-{i}").as_str())
        );
    }
    // whenScaled: Delete: the scaled-away pod's claim goes with it.
    env.sets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    common::eventually("data-db-1 deleted, data-db-0 kept", || async {
        claims.get_opt("data-db-1").await.unwrap().is_none()
            && claims.get_opt("data-db-0").await.unwrap().is_some()
    })
    .await;

    // whenDeleted: Delete makes the set an owner of its claims, so they go
    // with it; Retain (db) keeps them.
    let gone = statefulset(
        "gone",
        1,
        json!({
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
        }),
    );
    env.sets
        .create(&PostParams::default(), &gone)
        .await
        .unwrap();
    common::eventually("data-gone-0", || async {
        claims.get_opt("data-gone-0").await.unwrap().is_some()
    })
    .await;
    for name in ["db", "gone"] {
        env.sets
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    common::eventually("data-gone-0 deleted with its set", || async {
        claims.get_opt("data-gone-0").await.unwrap().is_none() && env.names("gone").await.is_empty()
    })
    .await;
    pause().await;
    assert!(
        claims.get_opt("data-db-0").await.unwrap().is_some(),
        "Retain"
    );
    env.finish().await;
}

#[tokio::test]
async fn rolling_update_with_partition_goes_from_the_top_one_at_a_time() {
    let env = env().await;
    let revisions: Api<ControllerRevision> = Api::namespaced(env.client.clone(), "default");
    env.sets
        .create(
            &PostParams::default(),
            &statefulset(
                "roll",
                4,
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
            ),
        )
        .await
        .unwrap();
    env.ready_all("roll", 4).await;
    let old = revision(&env.pods.get("roll-0").await.unwrap());
    common::eventually("current revision recorded", || async {
        env.status("roll").await.current_revision.as_deref() == Some(old.as_str())
    })
    .await;

    env.sets
        .patch(
            "roll",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})),
        )
        .await
        .unwrap();
    // Act as the kubelet, slowly, and record the order of updates.
    let order = RefCell::new(Vec::<String>::new());
    let worst = Cell::new(0);
    common::eventually("roll-3 and roll-2 updated", || async {
        let pods = env.pods_of("roll").await;
        let unavailable = 4 - pods.values().filter(|p| is_ready(p)).count();
        worst.set(worst.get().max(unavailable));
        for (name, p) in &pods {
            let mut order = order.borrow_mut();
            if revision(p) != old && !order.contains(name) {
                order.push(name.clone());
            }
        }
        for (name, p) in &pods {
            if !is_ready(p) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                env.mark_ready(name).await;
            }
        }
        order.borrow().len() == 2 && pods.len() == 4 && pods.values().all(is_ready)
    })
    .await;
    let (order, worst) = (order.into_inner(), worst.get());
    assert_eq!(order, ["roll-3", "roll-2"]);
    assert!(worst <= 1, "{worst} pods unavailable at once");
    pause().await;
    let pods = env.pods_of("roll").await;
    assert_eq!(revision(&pods["roll-0"]), old);
    assert_eq!(revision(&pods["roll-1"]), old);
    let new = revision(&pods["roll-3"]);
    assert_ne!(new, old);
    common::eventually("partitioned status", || async {
        let s = env.status("roll").await;
        s.current_revision.as_deref() == Some(old.as_str())
            && s.update_revision.as_deref() == Some(new.as_str())
            && s.updated_replicas == Some(2)
            && s.current_replicas == Some(2)
            && s.ready_replicas == Some(4)
    })
    .await;

    // Two ControllerRevisions, named after their hash, numbered.
    let mut revs = revisions.list(&ListParams::default()).await.unwrap().items;
    revs.sort_by_key(|r| r.revision);
    let names: Vec<String> = revs.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, [old.clone(), new.clone()]);
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
    for r in &revs {
        assert_eq!(r.owner_references()[0].kind, "StatefulSet");
        assert!(
            r.name_any()
                .ends_with(&r.labels()["controller-revision-hash"])
        );
    }

    // Partition 0 finishes the rollout; currentRevision follows.
    env.sets
        .patch(
            "roll",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}),
            ),
        )
        .await
        .unwrap();
    common::eventually("all updated", || async {
        let pods = env.pods_of("roll").await;
        for (name, p) in &pods {
            if !is_ready(p) {
                env.mark_ready(name).await;
            }
        }
        pods.len() == 4 && pods.values().all(|p| revision(p) == new && is_ready(p))
    })
    .await;
    common::eventually("rollout complete", || async {
        let s = env.status("roll").await;
        s.current_revision.as_deref() == Some(new.as_str())
            && s.current_replicas == Some(4)
            && s.updated_replicas == Some(4)
    })
    .await;

    // `kubectl rollout undo`: the first revision's data, applied as a
    // strategic merge patch, restores its template; that revision becomes
    // the newest (3) instead of a new one being made.
    let first = revisions.get(&old).await.unwrap();
    let data = first.data.unwrap().0;
    env.sets
        .patch("roll", &PatchParams::default(), &Patch::Strategic(&data))
        .await
        .unwrap();
    common::eventually("rolled back", || async {
        let s = env.status("roll").await;
        let rev = revisions.get(&old).await.unwrap().revision;
        s.update_revision.as_deref() == Some(old.as_str()) && rev == 3
    })
    .await;
    assert_eq!(
        revisions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    env.finish().await;
}

#[tokio::test]
async fn on_delete_replaces_only_deleted_pods() {
    let env = env().await;
    env.sets
        .create(
            &PostParams::default(),
            &statefulset(
                "od",
                2,
                json!({"podManagementPolicy": "Parallel", "updateStrategy": {"type": "OnDelete"}}),
            ),
        )
        .await
        .unwrap();
    env.ready_all("od", 2).await;
    let old = revision(&env.pods.get("od-0").await.unwrap());
    env.sets
        .patch(
            "od",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"template": {"metadata": {"labels": {"app": "od", "v": "2"}}}}}),
            ),
        )
        .await
        .unwrap();
    common::eventually("update revision", || async {
        env.status("od")
            .await
            .update_revision
            .is_some_and(|u| u != old)
    })
    .await;
    pause().await;
    let pods = env.pods_of("od").await;
    assert!(
        pods.values().all(|p| revision(p) == old),
        "nothing replaced"
    );
    env.pods.delete("od-1", &Default::default()).await.unwrap();
    common::eventually("od-1 recreated at the new revision", || async {
        env.pods_of("od")
            .await
            .get("od-1")
            .is_some_and(|p| revision(p) != old && p.labels().get("v").is_some())
    })
    .await;
    assert_eq!(revision(&env.pods.get("od-0").await.unwrap()), old);
    env.finish().await;
}

#[tokio::test]
async fn adopts_orphans_with_its_pod_names() {
    let env = env().await;
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ad-0", "labels": {"app": "ad"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
    }))
    .unwrap();
    let orphan = env
        .pods
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let set = env
        .sets
        .create(
            &PostParams::default(),
            // OnDelete: a RollingUpdate would replace the adopted pod, which
            // lacks a revision label.
            &statefulset(
                "ad",
                2,
                json!({"podManagementPolicy": "Parallel", "updateStrategy": {"type": "OnDelete"}}),
            ),
        )
        .await
        .unwrap();
    common::eventually("ad-0 adopted and labelled, ad-1 created", || async {
        let pods = env.pods_of("ad").await;
        pods.len() == 2
            && pods["ad-0"].uid() == orphan.uid()
            && pods["ad-0"]
                .labels()
                .get("statefulset.kubernetes.io/pod-name")
                == Some(&"ad-0".to_owned())
            && pods["ad-0"]
                .owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == set.metadata.uid.as_ref())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn max_unavailable_replaces_several_at_once() {
    let env = env().await;
    env.sets
        .create(
            &PostParams::default(),
            &statefulset(
                "mu",
                4,
                json!({
                    "podManagementPolicy": "Parallel",
                    "revisionHistoryLimit": 0,
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
                }),
            ),
        )
        .await
        .unwrap();
    env.ready_all("mu", 4).await;
    let old = revision(&env.pods.get("mu-0").await.unwrap());
    env.sets
        .patch(
            "mu",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})),
        )
        .await
        .unwrap();
    let worst = Cell::new(0);
    common::eventually("all updated", || async {
        let pods = env.pods_of("mu").await;
        let unavailable = 4 - pods.values().filter(|p| is_ready(p)).count();
        worst.set(worst.get().max(unavailable));
        for (name, p) in &pods {
            if !is_ready(p) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                env.mark_ready(name).await;
            }
        }
        pods.len() == 4 && pods.values().all(|p| revision(p) != old && is_ready(p))
    })
    .await;
    assert_eq!(worst.get(), 2, "two at a time, never more");
    // revisionHistoryLimit 0: only the live revision is kept.
    let new = revision(&env.pods.get("mu-0").await.unwrap());
    let revisions: Api<ControllerRevision> = Api::namespaced(env.client.clone(), "default");
    common::eventually("old revision pruned", || async {
        let names: Vec<String> = revisions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        names == [new.clone()]
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn start_ordinal_and_min_ready_seconds() {
    let env = env().await;
    env.sets
        .create(
            &PostParams::default(),
            &statefulset(
                "mr",
                2,
                json!({"ordinals": {"start": 5}, "minReadySeconds": 2}),
            ),
        )
        .await
        .unwrap();
    common::eventually("mr-5", || async { env.names("mr").await == ["mr-5"] }).await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    env.pods
        .patch_status("mr-5", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let ready_at = std::time::Instant::now();
    pause().await;
    assert_eq!(
        env.names("mr").await,
        ["mr-5"],
        "mr-6 waits for minReadySeconds"
    );
    common::eventually("mr-6 once mr-5 is available", || async {
        env.names("mr").await == ["mr-5", "mr-6"]
    })
    .await;
    assert!(ready_at.elapsed() >= std::time::Duration::from_secs(1));
    common::eventually("availableReplicas counts only mr-5", || async {
        let s = env.status("mr").await;
        s.ready_replicas == Some(1) && s.available_replicas == Some(1)
    })
    .await;
    env.finish().await;
}
