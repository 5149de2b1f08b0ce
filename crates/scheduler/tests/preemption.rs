//! Preemption against an in-process API server: a higher-priority pod
//! that fits nowhere evicts lower-priority pods and is bound where they
//! were. There is no kubelet here: a victim deleted with a grace period
//! stays `Terminating`, so the tests delete it again with a grace period
//! of 0, as a kubelet would once its containers stopped (or create the
//! victims with `terminationGracePeriodSeconds: 0`).
#![allow(clippy::unwrap_used)]

mod support;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff_apiserver::testing::start;
use support::{start_scheduler, until};

async fn create_node(client: &kube::Client, name: &str, cpu: &str) {
    support::ready_node(client, name, cpu, "8Gi", json!({}), json!([])).await;
}

/// PriorityClasses `low` (10) and `high` (1000): the Priority admission
/// fills `spec.priority` from `priorityClassName` (setting it directly
/// is forbidden).
async fn priority_classes(client: &kube::Client) {
    let classes: Api<PriorityClass> = Api::all(client.clone());
    for (name, value) in [("low", 10), ("high", 1000)] {
        let class =
            serde_json::from_value(json!({"metadata": {"name": name}, "value": value})).unwrap();
        classes
            .create(&PostParams::default(), &class)
            .await
            .unwrap();
    }
}

/// A pod asking for `cpu`; `extra` is merged into the object (spec
/// fields under `spec`, labels under `metadata`).
async fn create_pod(client: &kube::Client, name: &str, cpu: &str, extra: Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
    });
    for part in ["metadata", "spec"] {
        if let (Some(into), Some(from)) = (
            pod.get_mut(part).and_then(Value::as_object_mut),
            extra.get(part).and_then(Value::as_object),
        ) {
            for (k, v) in from {
                into.insert(k.clone(), v.clone());
            }
        }
    }
    let pod: Pod = serde_json::from_value(pod).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn get_pod(client: &kube::Client, name: &str) -> Option<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.get_opt(name).await.unwrap()
}

fn preempted_by_scheduler(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("PreemptionByScheduler")
                && c.message.as_deref()
                    == Some("default-scheduler: preempting to accommodate a higher priority pod")
        })
}

async fn wait_bound(client: &kube::Client, name: &str) -> String {
    until(&format!("{name} bound"), || async {
        get_pod(client, name).await?.spec?.node_name
    })
    .await
}

#[tokio::test]
async fn a_higher_priority_pod_preempts_and_takes_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    create_node(&client, "n1", "1").await;
    priority_classes(&client).await;
    // The node is full of low-priority pods (bound directly).
    for i in 0..4 {
        create_pod(
            &client,
            &format!("low-{i}"),
            "250m",
            json!({"spec": {"nodeName": "n1", "priorityClassName": "low"}}),
        )
        .await;
    }
    // A low-priority pod waiting for n1 (nominated by an earlier
    // preemption, say); it cannot be scheduled anywhere meanwhile.
    create_pod(
        &client,
        "waiting",
        "100m",
        json!({"spec": {"priorityClassName": "low", "nodeSelector": {"no": "such-node"}}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.patch_status(
        "waiting",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"nominatedNodeName": "n1"}})),
    )
    .await
    .unwrap();
    let waiting = get_pod(&client, "waiting").await.unwrap();
    assert_eq!(
        waiting
            .status
            .and_then(|s| s.nominated_node_name)
            .as_deref(),
        Some("n1")
    );
    let stop = start_scheduler(client.clone());
    create_pod(
        &client,
        "high",
        "500m",
        json!({"spec": {"priorityClassName": "high"}}),
    )
    .await;

    // Two victims (the fewest that make room) get DisruptionTarget and
    // are deleted: with their default grace period they stay Terminating.
    let victims: Vec<String> = until("two victims terminating", || async {
        let mut victims = Vec::new();
        for i in 0..4 {
            let name = format!("low-{i}");
            let pod = get_pod(&client, &name).await.unwrap();
            if pod.metadata.deletion_timestamp.is_some() {
                assert!(
                    preempted_by_scheduler(&pod),
                    "{name} deleted without condition"
                );
                victims.push(name);
            }
        }
        (victims.len() == 2).then_some(victims)
    })
    .await;
    until("high nominated to n1", || async {
        let pod = get_pod(&client, "high").await.unwrap();
        (pod.status?.nominated_node_name.as_deref() == Some("n1")).then_some(())
    })
    .await;
    let high_uid = get_pod(&client, "high")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let message = format!("Preempted by pod {high_uid} on node n1");
    until("Preempted events", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        victims
            .iter()
            .all(|v| {
                list.iter().any(|e| {
                    e.reason.as_deref() == Some("Preempted")
                        && e.involved_object.name.as_deref() == Some(v.as_str())
                        && e.message.as_deref() == Some(message.as_str())
                })
            })
            .then_some(())
    })
    .await;
    // The lower-priority nomination to n1 is cleared (the room is taken).
    until("waiting's nomination cleared", || async {
        let pod = get_pod(&client, "waiting").await.unwrap();
        pod.status
            .and_then(|s| s.nominated_node_name)
            .is_none()
            .then_some(())
    })
    .await;
    // Still pending while the victims terminate.
    assert!(
        get_pod(&client, "high")
            .await
            .and_then(|p| p.spec?.node_name)
            .is_none()
    );

    // The "kubelet" finishes the victims: the pod is bound to n1.
    for v in &victims {
        pods.delete(v, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
    assert_eq!(wait_bound(&client, "high").await, "n1");
    // The two others were spared.
    let spared = (0..4)
        .map(|i| format!("low-{i}"))
        .filter(|n| !victims.contains(n))
        .collect::<Vec<_>>();
    for name in spared {
        let pod = get_pod(&client, &name).await.unwrap();
        assert!(pod.metadata.deletion_timestamp.is_none(), "{name} deleted");
    }
    stop.cancel();
    server.stop().await;
}

#[tokio::test]
async fn preemption_avoids_breaking_a_pod_disruption_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    create_node(&client, "n1", "1").await;
    create_node(&client, "n2", "1").await;
    priority_classes(&client).await;
    // Victims stop at once (as if a kubelet had finished them).
    let low = |node: &str| {
        json!({"spec": {"nodeName": node, "priorityClassName": "low",
                        "terminationGracePeriodSeconds": 0}})
    };
    let mut db = low("n1");
    db["metadata"] = json!({"labels": {"app": "db"}});
    create_pod(&client, "db", "1", db).await;
    create_pod(&client, "web", "1", low("n2")).await;
    // No disruption controller runs here: the budget's status says no
    // disruption is allowed.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pdb = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();

    let stop = start_scheduler(client.clone());
    create_pod(
        &client,
        "high",
        "1",
        json!({"spec": {"priorityClassName": "high"}}),
    )
    .await;
    assert_eq!(wait_bound(&client, "high").await, "n2");
    assert!(
        get_pod(&client, "web").await.is_none(),
        "web was not evicted"
    );
    let db = get_pod(&client, "db").await.unwrap();
    assert!(db.metadata.deletion_timestamp.is_none(), "db was evicted");
    stop.cancel();
    server.stop().await;
}
