#![allow(clippy::unwrap_used)]
//! The DaemonSet controller against a real API server in this process (no
//! scheduler, no kubelet: the tests create Node objects, read where pods
//! are pinned from their node affinity, and mark them Ready themselves).

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

fn daemonset(name: &str, extra_spec: Value, pod_spec: Value) -> DaemonSet {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "agent:1"}]},
            },
        },
    });
    for (k, x) in extra_spec.as_object().cloned().unwrap_or_default() {
        v["spec"][k] = x;
    }
    for (k, x) in pod_spec.as_object().cloned().unwrap_or_default() {
        v["spec"]["template"]["spec"][k] = x;
    }
    serde_json::from_value(v).unwrap()
}

fn node(name: &str, labels: Value, taints: Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))
    .unwrap()
}

/// The node a daemon pod is pinned to by its required node affinity.
fn pinned_node(pod: &Pod) -> String {
    let terms = &pod
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    let field = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(
        (field.key.as_str(), field.operator.as_str()),
        ("metadata.name", "In")
    );
    field.values.as_ref().unwrap()[0].clone()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn hash(p: &Pod) -> String {
    p.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

struct Env {
    _dir: tempfile::TempDir,
    server: common::Running,
    sets: Api<DaemonSet>,
    pods: Api<Pod>,
    nodes: Api<Node>,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    Env {
        _dir: dir,
        sets: Api::namespaced(client.clone(), "default"),
        pods: Api::namespaced(client.clone(), "default"),
        nodes: Api::all(client),
        server,
    }
}

impl Env {
    /// Live pods of `app`, by the node they are pinned to.
    async fn by_node(&self, app: &str) -> BTreeMap<String, Vec<Pod>> {
        let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
        for p in self
            .pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            out.entry(pinned_node(&p)).or_default().push(p);
        }
        out
    }

    async fn nodes_of(&self, app: &str) -> Vec<String> {
        self.by_node(app).await.into_keys().collect()
    }

    async fn add_node(&self, n: Node) {
        self.nodes.create(&PostParams::default(), &n).await.unwrap();
    }

    async fn mark(&self, name: &str, ready: bool) {
        let status = if ready { "True" } else { "False" };
        let patch = json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": "2020-01-01T00:00:00Z"}],
        }});
        self.pods
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn ready_all(&self, app: &str) {
        for pods in self.by_node(app).await.values() {
            for p in pods {
                if !is_ready(p) {
                    self.mark(&p.name_any(), true).await;
                }
            }
        }
    }

    async fn status(&self, name: &str) -> DaemonSetStatus {
        self.sets
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    }
}

async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
}

#[tokio::test]
async fn one_pod_per_eligible_node_following_node_changes() {
    let env = env().await;
    let (stop, task) = common::start_controllers(env.server.client.clone());
    let worker = json!({"role": "worker"});
    env.add_node(node("n1", worker.clone(), json!([]))).await;
    env.add_node(node(
        "n2",
        worker.clone(),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    ))
    .await;
    env.add_node(node("n3", json!({"role": "other"}), json!([])))
        .await;
    // Cordoned and not ready: the default tolerations cover it.
    env.add_node(node(
        "n4",
        worker.clone(),
        json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
               {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
    ))
    .await;
    let ds = env
        .sets
        .create(
            &PostParams::default(),
            &daemonset(
                "agent",
                json!({}),
                json!({"nodeSelector": {"role": "worker"}}),
            ),
        )
        .await
        .unwrap();
    common::eventually("pods on n1 and n4", || async {
        env.nodes_of("agent").await == ["n1", "n4"]
    })
    .await;
    pause().await;
    let placed = env.by_node("agent").await;
    assert!(placed.values().all(|p| p.len() == 1), "one pod per node");
    let pod = &placed["n1"][0];
    assert_eq!(pod.labels()["pod-template-generation"], "1");
    assert!(!hash(pod).is_empty());
    assert!(pod.name_any().starts_with("agent-"));
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller, Some(&owner.uid)),
        ("DaemonSet", Some(true), ds.metadata.uid.as_ref())
    );
    let tolerations = pod.spec.as_ref().unwrap().tolerations.clone().unwrap();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(
            tolerations.iter().any(|t| t.key.as_deref() == Some(key)),
            "{key} tolerated"
        );
    }
    common::eventually("status before ready", || async {
        let s = env.status("agent").await;
        s.desired_number_scheduled == 2
            && s.current_number_scheduled == 2
            && s.number_misscheduled == 0
            && s.number_ready == 0
            && s.number_unavailable == Some(2)
            && s.updated_number_scheduled == Some(2)
            && s.observed_generation == Some(1)
    })
    .await;
    env.ready_all("agent").await;
    common::eventually("status when ready", || async {
        let s = env.status("agent").await;
        s.number_ready == 2 && s.number_available == Some(2) && s.number_unavailable == Some(0)
    })
    .await;

    // A new node gets a pod; a deleted one loses it; so does one whose
    // labels stop matching, or that gets an untolerated NoExecute taint.
    env.add_node(node("n5", worker.clone(), json!([]))).await;
    env.add_node(node("n6", worker.clone(), json!([]))).await;
    common::eventually("pod on n5 and n6", || async {
        env.nodes_of("agent").await == ["n1", "n4", "n5", "n6"]
    })
    .await;
    env.nodes
        .delete("n1", &DeleteParams::default())
        .await
        .unwrap();
    env.nodes
        .patch(
            "n4",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"role": "other"}}})),
        )
        .await
        .unwrap();
    env.nodes
        .patch(
            "n6",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": [{"key": "evict", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    common::eventually("only n5 left", || async {
        env.nodes_of("agent").await == ["n5"]
    })
    .await;
    common::eventually("desired 1", || async {
        let s = env.status("agent").await;
        s.desired_number_scheduled == 1 && s.current_number_scheduled == 1
    })
    .await;

    // A failed daemon pod is replaced.
    let failed = env.by_node("agent").await["n5"][0].name_any();
    env.pods
        .patch_status(
            &failed,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": "Failed"}})),
        )
        .await
        .unwrap();
    common::eventually("failed pod replaced", || async {
        let pods = env.by_node("agent").await;
        pods.get("n5")
            .is_some_and(|p| p.len() == 1 && p[0].name_any() != failed)
    })
    .await;
    let events: Api<Event> = Api::namespaced(env.server.client.clone(), "default");
    let found: Vec<(String, String)> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("daemonset-controller")
        })
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect();
    for reason in ["SuccessfulCreate", "SuccessfulDelete", "FailedDaemonPod"] {
        assert!(
            found.iter().any(|(r, _)| r == reason),
            "{reason}: {found:?}"
        );
    }
    assert!(found.contains(&(
        "SuccessfulDelete".to_owned(),
        format!("Deleted pod: {failed}")
    )));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn rolling_update_keeps_max_unavailable() {
    let env = env().await;
    let (stop, task) = common::start_controllers(env.server.client.clone());
    let names = ["a", "b", "c", "d", "e"];
    for n in names {
        env.add_node(node(n, json!({}), json!([]))).await;
    }
    env.sets
        .create(
            &PostParams::default(),
            &daemonset(
                "roll",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "40%"}}}),
                json!({}),
            ),
        )
        .await
        .unwrap();
    common::eventually("5 pods ready", || async {
        env.ready_all("roll").await;
        let pods = env.by_node("roll").await;
        pods.len() == 5 && pods.values().all(|p| p.len() == 1 && is_ready(&p[0]))
    })
    .await;
    let old = hash(&env.by_node("roll").await["a"][0]);
    env.sets
        .patch(
            "roll",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}})),
        )
        .await
        .unwrap();
    // 40% of 5 rounds up to 2.
    let worst = Cell::new(0);
    common::eventually("all updated", || async {
        let pods = env.by_node("roll").await;
        let available = pods.values().filter(|p| p.iter().any(is_ready)).count();
        worst.set(worst.get().max(5 - available));
        for p in pods.values().flatten() {
            if !is_ready(p) {
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                env.mark(&p.name_any(), true).await;
            }
        }
        pods.len() == 5
            && pods
                .values()
                .all(|p| p.len() == 1 && hash(&p[0]) != old && is_ready(&p[0]))
    })
    .await;
    assert!(
        worst.get() <= 2,
        "{} nodes unavailable at once",
        worst.get()
    );
    // Two ControllerRevisions, `<ds>-<hash>`, numbered in order.
    let new = hash(&env.by_node("roll").await["a"][0]);
    let revisions: Api<ControllerRevision> = Api::namespaced(env.server.client.clone(), "default");
    let mut revs = revisions.list(&ListParams::default()).await.unwrap().items;
    revs.sort_by_key(|r| r.revision);
    let names: Vec<String> = revs.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, [format!("roll-{old}"), format!("roll-{new}")]);
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
    assert!(worst.get() >= 1, "the rollout replaced pods");
    common::eventually("updated status", || async {
        let s = env.status("roll").await;
        s.updated_number_scheduled == Some(5)
            && s.number_available == Some(5)
            && s.observed_generation == Some(2)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn surge_starts_the_new_pod_before_deleting_the_old() {
    let env = env().await;
    let (stop, task) = common::start_controllers(env.server.client.clone());
    for n in ["a", "b", "c"] {
        env.add_node(node(n, json!({}), json!([]))).await;
    }
    env.sets
        .create(
            &PostParams::default(),
            &daemonset(
                "surge",
                json!({"updateStrategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}),
                json!({}),
            ),
        )
        .await
        .unwrap();
    common::eventually("3 pods ready", || async {
        env.ready_all("surge").await;
        let pods = env.by_node("surge").await;
        pods.len() == 3 && pods.values().all(|p| p.len() == 1 && is_ready(&p[0]))
    })
    .await;
    let old = hash(&env.by_node("surge").await["a"][0]);
    env.sets
        .patch(
            "surge",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}})),
        )
        .await
        .unwrap();
    let (unready_nodes, most_pods) = (Cell::new(0), Cell::new(0));
    common::eventually("all updated", || async {
        let pods = env.by_node("surge").await;
        let down = 3 - pods.values().filter(|p| p.iter().any(is_ready)).count();
        unready_nodes.set(unready_nodes.get().max(down));
        most_pods.set(
            most_pods
                .get()
                .max(pods.values().map(Vec::len).sum::<usize>()),
        );
        for p in pods.values().flatten() {
            if !is_ready(p) {
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                env.mark(&p.name_any(), true).await;
            }
        }
        pods.len() == 3
            && pods
                .values()
                .all(|p| p.len() == 1 && hash(&p[0]) != old && is_ready(&p[0]))
    })
    .await;
    assert_eq!(unready_nodes.get(), 0, "a node went without a ready pod");
    assert_eq!(most_pods.get(), 4, "one surge pod at a time");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn on_delete_and_no_duplicates_after_a_restart() {
    let env = env().await;
    let (stop, task) = common::start_controllers(env.server.client.clone());
    for n in ["a", "b", "c"] {
        env.add_node(node(n, json!({}), json!([]))).await;
    }
    env.sets
        .create(
            &PostParams::default(),
            &daemonset(
                "od",
                json!({"updateStrategy": {"type": "OnDelete"}}),
                json!({}),
            ),
        )
        .await
        .unwrap();
    common::eventually("3 pods", || async {
        let pods = env.by_node("od").await;
        pods.len() == 3 && pods.values().all(|p| p.len() == 1)
    })
    .await;
    let before: Vec<String> = env
        .by_node("od")
        .await
        .values()
        .flatten()
        .map(ResourceExt::name_any)
        .collect();
    // A restarted controller manager finds the pods and creates none.
    stop.cancel();
    task.await.unwrap();
    let (stop, task) = common::start_controllers(env.server.client.clone());
    pause().await;
    pause().await;
    let after: Vec<String> = env
        .by_node("od")
        .await
        .values()
        .flatten()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(before, after);

    let old = hash(&env.by_node("od").await["a"][0]);
    env.sets
        .patch(
            "od",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}})),
        )
        .await
        .unwrap();
    common::eventually("observed", || async {
        env.status("od").await.observed_generation == Some(2)
    })
    .await;
    pause().await;
    assert!(
        env.by_node("od")
            .await
            .values()
            .flatten()
            .all(|p| hash(p) == old),
        "OnDelete replaces nothing by itself"
    );
    let victim = env.by_node("od").await["b"][0].name_any();
    env.pods
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("b gets a new pod", || async {
        let pods = env.by_node("od").await;
        pods.get("b")
            .is_some_and(|p| p.len() == 1 && hash(&p[0]) != old)
    })
    .await;
    let pods = env.by_node("od").await;
    assert_eq!(hash(&pods["a"][0]), old);
    assert_eq!(hash(&pods["c"][0]), old);
    assert_eq!(pods["b"][0].labels()["pod-template-generation"], "2");
    stop.cancel();
    task.await.unwrap();
}
