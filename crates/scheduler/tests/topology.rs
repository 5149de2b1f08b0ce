//! PodTopologySpread and InterPodAffinity against an in-process API
//! server: pods spread evenly over zones, and required anti-affinity
//! keeps one pod per node with the extra pod Pending and upstream's
//! message.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use skiff_apiserver::testing::start;
use support::start_scheduler;

const ZONE: &str = "topology.kubernetes.io/zone";

/// A Ready node in `zone` (with its hostname label, as kubelets set).
async fn create_node(client: &kube::Client, name: &str, zone: &str) {
    let labels = json!({ZONE: zone, "kubernetes.io/hostname": name});
    support::ready_node(client, name, "4", "8Gi", labels, json!([])).await;
}

async fn create_pod(
    client: &kube::Client,
    name: &str,
    labels: serde_json::Value,
    extra: serde_json::Value,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

async fn wait_bound(client: &kube::Client, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Some(node) = pods
            .get(name)
            .await
            .ok()
            .and_then(|p| p.spec)
            .and_then(|s| s.node_name)
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for pod {name} to be bound");
}

#[tokio::test]
async fn pods_spread_evenly_over_zones() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    // Zones of unequal size: a, b have two nodes, c one.
    for (node, zone) in [
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("b2", "b"),
        ("c1", "c"),
    ] {
        create_node(&client, node, zone).await;
    }
    let stop = start_scheduler(client.clone());

    let spread = json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}}}]});
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let name = format!("spread-{i}");
        create_pod(&client, &name, json!({"app": "spread"}), spread.clone()).await;
        let node = wait_bound(&client, &name).await;
        *per_zone.entry(node[..1].to_owned()).or_default() += 1;
    }
    assert_eq!(
        per_zone,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)]),
        "6 pods with maxSkew 1 over 3 zones"
    );

    // Created all at once (scheduled back to back, each seeing the ones
    // assumed before it), 3 more still keep the zones within 1.
    for i in 6..9 {
        create_pod(
            &client,
            &format!("spread-{i}"),
            json!({"app": "spread"}),
            spread.clone(),
        )
        .await;
    }
    for i in 6..9 {
        let node = wait_bound(&client, &format!("spread-{i}")).await;
        *per_zone.entry(node[..1].to_owned()).or_default() += 1;
    }
    assert_eq!(
        per_zone,
        BTreeMap::from([("a".into(), 3), ("b".into(), 3), ("c".into(), 3)])
    );
    stop.cancel();
    server.stop().await;
}

#[tokio::test]
async fn anti_affinity_keeps_one_pod_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    for (node, zone) in [("n1", "a"), ("n2", "b"), ("n3", "c")] {
        create_node(&client, node, zone).await;
    }
    let stop = start_scheduler(client.clone());

    let solo = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"app": "solo"}},
        "topologyKey": "kubernetes.io/hostname"}]}}});
    for i in 0..4 {
        create_pod(
            &client,
            &format!("solo-{i}"),
            json!({"app": "solo"}),
            solo.clone(),
        )
        .await;
    }
    let mut nodes: Vec<String> = Vec::new();
    let mut pending = None;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Three are bound, each on its own node; the fourth stays Pending.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        nodes.clear();
        pending = None;
        for i in 0..4 {
            let pod = pods.get(&format!("solo-{i}")).await.unwrap();
            match pod.spec.and_then(|s| s.node_name) {
                Some(n) => nodes.push(n),
                None => {
                    let msg = pod
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .into_iter()
                        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                        .and_then(|c| c.message);
                    pending = Some(msg);
                }
            }
        }
        if nodes.len() == 3 && pending.as_ref().is_some_and(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"], "one solo pod per node");
    let msg = pending.flatten().unwrap_or_default();
    // DefaultPreemption, when present, appends its own sentence.
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."),
        "{msg}"
    );

    // A pod that is not "solo" is blocked by the existing pods'
    // anti-affinity only if it matches it: it is not, so it binds.
    create_pod(&client, "other", json!({"app": "other"}), json!({})).await;
    wait_bound(&client, "other").await;

    // Freeing a node lets the pending pod in.
    let bound: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..4 {
            let pod = pods.get(&format!("solo-{i}")).await.unwrap();
            if pod.spec.and_then(|s| s.node_name).is_some() {
                v.push(format!("solo-{i}"));
            }
        }
        v
    };
    let victim = bound.first().cloned().unwrap();
    pods.delete(&victim, &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let waiting = (0..4)
        .map(|i| format!("solo-{i}"))
        .find(|n| !bound.contains(n))
        .unwrap();
    wait_bound(&client, &waiting).await;
    stop.cancel();
    server.stop().await;
}

#[tokio::test]
async fn existing_pods_anti_affinity_is_symmetric() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    for (node, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
        create_node(&client, node, zone).await;
    }
    // A guard on n1 (bound at creation, in the scheduler's first list)
    // refuses "web" pods in its zone.
    create_pod(
        &client,
        "guard",
        json!({"app": "guard"}),
        json!({"nodeName": "n1",
               "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                   "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": ZONE}]}}}),
    )
    .await;
    let stop = start_scheduler(client.clone());
    for i in 0..3 {
        create_pod(
            &client,
            &format!("web-{i}"),
            json!({"app": "web"}),
            json!({}),
        )
        .await;
        assert_eq!(wait_bound(&client, &format!("web-{i}")).await, "n3");
    }
    stop.cancel();
    server.stop().await;
}
