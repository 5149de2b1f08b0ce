#![allow(clippy::unwrap_used)]
//! Node lifecycle and taint eviction against a real API server in this
//! process: a node that stops renewing its Lease turns Unknown, gets the
//! unreachable taints, its pods stop being Ready and are evicted when
//! their tolerations run out; NoExecute tainting is rate-limited per zone
//! and stops when every zone is down.

mod common;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn start(client: kube::Client, qps: f64) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = skiff_controllers::Config::new(client);
    config.controllers = vec![
        "node-lifecycle-controller".into(),
        "taint-eviction-controller".into(),
    ];
    config.leader_elect = false;
    config.node_lifecycle.monitor_period = Duration::from_millis(200);
    config.node_lifecycle.grace_period = Duration::from_secs(2);
    config.node_lifecycle.startup_grace_period = Duration::from_secs(2);
    config.node_lifecycle.eviction_qps = qps;
    config.taint_eviction.period = Duration::from_millis(200);
    let token = CancellationToken::new();
    let task = tokio::spawn({
        let token = token.clone();
        async move { skiff_controllers::run(config, token).await.unwrap() }
    });
    (token, task)
}

async fn add_node(client: &kube::Client, name: &str, zone: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {
        "name": name, "labels": {"topology.kubernetes.io/zone": zone},
    }}))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    heartbeat(client, name).await;
}

/// What a kubelet does: Ready=True with a fresh heartbeat, and the Lease.
async fn heartbeat(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "renewTime": MicroTime(Timestamp::now())},
    });
    leases
        .patch(
            name,
            &PatchParams::apply("test-kubelet").force(),
            &Patch::Apply(&lease),
        )
        .await
        .unwrap();
}

/// Keeps `names` alive until aborted.
fn keep_alive(client: kube::Client, names: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for n in &names {
                heartbeat(&client, n).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

async fn ready_pod(client: &kube::Client, name: &str, node: &str, tolerations: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut spec = json!({"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]});
    if !tolerations.is_null() {
        spec["tolerations"] = tolerations;
    }
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let patch = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
    ]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_ready(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

const UNREACHABLE_NO_EXECUTE: &str = "node.kubernetes.io/unreachable:NoExecute";

#[tokio::test]
async fn a_silent_node_is_tainted_and_its_pods_evicted_per_their_tolerations() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    // Two healthy nodes beside it, so its zone is not entirely down.
    for n in ["quiet", "a", "b"] {
        add_node(&client, n, "z1").await;
    }
    let alive = keep_alive(client.clone(), vec!["a".into(), "b".into()]);
    let short = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 1}]);
    let forever = json!([{"operator": "Exists"}]);
    ready_pod(&client, "short", "quiet", short).await;
    ready_pod(
        &client,
        "default-tolerations",
        "quiet",
        serde_json::Value::Null,
    )
    .await;
    ready_pod(&client, "forever", "quiet", forever).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // The API server gave the plain pod upstream's 300 s tolerations.
    let plain = pods.get("default-tolerations").await.unwrap();
    let tolerations = plain.spec.unwrap().tolerations.unwrap_or_default();
    assert!(tolerations.iter().any(|t| {
        t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.toleration_seconds == Some(300)
    }));

    let (stop, task) = start(client.clone(), 100.0);
    let nodes: Api<Node> = Api::all(client.clone());
    common::eventually("quiet is Unknown and tainted", || async {
        let n = nodes.get("quiet").await.unwrap();
        let ready = n
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .clone();
        ready.status == "Unknown"
            && ready.reason.as_deref() == Some("NodeStatusUnknown")
            && taint_keys(&n).contains(&UNREACHABLE_NO_EXECUTE.to_owned())
            && taint_keys(&n).contains(&"node.kubernetes.io/unreachable:NoSchedule".to_owned())
    })
    .await;
    common::eventually("the short-toleration pod is evicted", || async {
        let p = pods.get("short").await.unwrap();
        p.metadata.deletion_timestamp.is_some()
            && p.status.unwrap().conditions.unwrap().iter().any(|c| {
                c.type_ == "DisruptionTarget"
                    && c.reason.as_deref() == Some("DeletionByTaintManager")
            })
    })
    .await;
    for name in ["default-tolerations", "forever"] {
        let p = pods.get(name).await.unwrap();
        assert!(
            p.metadata.deletion_timestamp.is_none(),
            "{name} was evicted early"
        );
        assert_eq!(
            pod_ready(&p).as_deref(),
            Some("False"),
            "{name} still Ready"
        );
    }
    for n in ["a", "b"] {
        assert!(
            taint_keys(&nodes.get(n).await.unwrap()).is_empty(),
            "{n} tainted"
        );
    }

    // The kubelet is back: the taints go.
    let back = keep_alive(client.clone(), vec!["quiet".into()]);
    common::eventually("quiet is untainted", || async {
        taint_keys(&nodes.get("quiet").await.unwrap()).is_empty()
    })
    .await;
    back.abort();
    alive.abort();
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn no_execute_taints_are_rate_limited_and_withheld_when_every_zone_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let healthy: Vec<String> = (0..6).map(|i| format!("ok-{i}")).collect();
    for n in healthy
        .iter()
        .map(String::as_str)
        .chain(["down-1", "down-2"])
    {
        add_node(&client, n, "z1").await;
    }
    add_node(&client, "lonely", "z2").await;
    let alive = keep_alive(client.clone(), healthy);
    // One NoExecute taint every 5 s in zone z1.
    let (stop, task) = start(client.clone(), 0.2);
    let nodes: Api<Node> = Api::all(client.clone());
    let has = |n: Node| taint_keys(&n).contains(&UNREACHABLE_NO_EXECUTE.to_owned());
    common::eventually("one z1 node gets the NoExecute taint", || async {
        has(nodes.get("down-1").await.unwrap()) || has(nodes.get("down-2").await.unwrap())
    })
    .await;
    let both = has(nodes.get("down-1").await.unwrap()) && has(nodes.get("down-2").await.unwrap());
    assert!(!both, "both nodes tainted at once despite the rate limit");
    // z2 is entirely down but z1 is not: z2 is evicted at the normal rate.
    common::eventually("lonely gets it too", || async {
        has(nodes.get("lonely").await.unwrap())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let both = has(nodes.get("down-1").await.unwrap()) && has(nodes.get("down-2").await.unwrap());
    assert!(
        !both,
        "the second z1 node was tainted within the rate limit"
    );

    // Every node silent: every zone fully disrupted, the NoExecute taints go.
    alive.abort();
    common::eventually("no NoExecute taints when everything is down", || async {
        let list = nodes.list(&Default::default()).await.unwrap().items;
        list.iter().all(|n| {
            let keys = taint_keys(n);
            !keys.contains(&UNREACHABLE_NO_EXECUTE.to_owned())
                && keys.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_owned())
        })
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
