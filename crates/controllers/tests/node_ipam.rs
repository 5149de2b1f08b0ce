#![allow(clippy::unwrap_used)]
//! Node IPAM against a real API server in this process: every node gets a
//! distinct /24 of 10.42.0.0/16, claimed CIDRs are respected.

mod common;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

async fn add(nodes: &Api<Node>, name: &str, cidr: Option<&str>) {
    let mut node = json!({"metadata": {"name": name}});
    if let Some(c) = cidr {
        node["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
    }
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node).unwrap(),
        )
        .await
        .unwrap();
}

async fn cidr(nodes: &Api<Node>, name: &str) -> Option<String> {
    nodes.get(name).await.unwrap().spec?.pod_cidr
}

#[tokio::test]
async fn each_node_gets_its_own_pod_cidr() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let nodes: Api<Node> = Api::all(server.client.clone());
    add(&nodes, "server", Some("10.42.0.0/24")).await;
    let (stop, task) = common::start_controllers(server.client.clone());
    for n in ["a", "b", "c"] {
        add(&nodes, n, None).await;
    }
    common::eventually("a, b and c have CIDRs", || async {
        let mut all = BTreeSet::new();
        for n in ["a", "b", "c"] {
            let Some(c) = cidr(&nodes, n).await else {
                return false;
            };
            all.insert(c);
        }
        all == BTreeSet::from([
            "10.42.1.0/24".to_owned(),
            "10.42.2.0/24".to_owned(),
            "10.42.3.0/24".to_owned(),
        ])
    })
    .await;
    assert_eq!(
        cidr(&nodes, "server").await.as_deref(),
        Some("10.42.0.0/24")
    );
    let podcidrs = nodes
        .get("a")
        .await
        .unwrap()
        .spec
        .unwrap()
        .pod_cidrs
        .unwrap();
    assert_eq!(podcidrs.len(), 1);

    // A deleted node's CIDR is free again.
    let freed = cidr(&nodes, "b").await.unwrap();
    nodes.delete("b", &DeleteParams::default()).await.unwrap();
    common::eventually("b is gone", || async {
        nodes.get_opt("b").await.unwrap().is_none()
    })
    .await;
    add(&nodes, "d", None).await;
    common::eventually("d reuses b's CIDR", || async {
        cidr(&nodes, "d").await.as_deref() == Some(freed.as_str())
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
