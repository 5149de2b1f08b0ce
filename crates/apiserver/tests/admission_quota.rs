#![allow(clippy::unwrap_used)]
//! ResourceQuota admission: a quota of 2 pods admits exactly 2 of 10
//! concurrent creates and refuses the rest in upstream's words, charges
//! `status.used`, requires requests/limits once compute resources are
//! limited, counts objects of other kinds, and leaves dry runs uncharged.

mod common;

use futures::future::join_all;
use serde_json::{Value, json};

/// Sends a request; returns the status code and the JSON body.
async fn send(client: &kube::Client, method: &str, path: &str, body: Value) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn pod(name: &str, resources: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]},
    })
}

async fn quota(client: &kube::Client, ns: &str, name: &str, hard: Value) {
    let (code, body) = send(
        client,
        "POST",
        &format!("/api/v1/namespaces/{ns}/resourcequotas"),
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_of_two_pods_admits_two_of_ten_concurrent_creates() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    quota(&client, "default", "two-pods", json!({"pods": "2"})).await;

    let creates = (0..10).map(|i| {
        let client = client.clone();
        async move {
            send(
                &client,
                "POST",
                "/api/v1/namespaces/default/pods",
                pod(&format!("p{i}"), json!({})),
            )
            .await
        }
    });
    let results = join_all(creates).await;
    let created = results.iter().filter(|(code, _)| *code == 201).count();
    assert_eq!(created, 2, "{results:?}");
    for (code, body) in results.iter().filter(|(code, _)| *code != 201) {
        assert_eq!(*code, 403, "{body}");
        assert_eq!(body["reason"], "Forbidden");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.ends_with(
                "is forbidden: exceeded quota: two-pods, requested: pods=1, used: pods=2, limited: pods=2"
            ),
            "{message}"
        );
    }
    let (_, list) = send(
        &client,
        "GET",
        "/api/v1/namespaces/default/pods",
        json!(null),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (_, q) = send(
        &client,
        "GET",
        "/api/v1/namespaces/default/resourcequotas/two-pods",
        json!(null),
    )
    .await;
    assert_eq!(q["status"]["used"]["pods"], "2");
    assert_eq!(q["status"]["hard"]["pods"], "2");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_quotas_need_requests_and_count_what_pods_ask() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    quota(
        &client,
        "default",
        "compute",
        json!({"requests.cpu": "1", "limits.memory": "1Gi"}),
    )
    .await;
    let path = "/api/v1/namespaces/default/pods";
    let (code, body) = send(&client, "POST", path, pod("bare", json!({}))).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"bare\" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c"
    );
    let sized = json!({"requests": {"cpu": "600m"}, "limits": {"memory": "512Mi"}});
    let (code, body) = send(&client, "POST", path, pod("one", sized.clone())).await;
    assert_eq!(code, 201, "{body}");
    // A dry run is checked but not charged.
    let (code, body) = send(
        &client,
        "POST",
        &format!("{path}?dryRun=All"),
        pod(
            "dry",
            json!({"requests": {"cpu": "100m"}, "limits": {"memory": "1Mi"}}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = send(&client, "POST", path, pod("two", sized)).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"two\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
    );
    let (_, q) = send(
        &client,
        "GET",
        "/api/v1/namespaces/default/resourcequotas/compute",
        json!(null),
    )
    .await;
    assert_eq!(q["status"]["used"]["requests.cpu"], "600m");
    assert_eq!(q["status"]["used"]["limits.memory"], "512Mi");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_counts_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    quota(
        &client,
        "default",
        "objects",
        json!({"configmaps": "1", "count/deployments.apps": "0"}),
    )
    .await;
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let path = "/api/v1/namespaces/default/configmaps";
    assert_eq!(send(&client, "POST", path, cm("a")).await.0, 201);
    let (code, body) = send(&client, "POST", path, cm("b")).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "configmaps \"b\" is forbidden: exceeded quota: objects, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"
    );
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    });
    let (code, body) = send(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        deployment,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "deployments.apps \"d\" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=0, limited: count/deployments.apps=0"
    );
    // Another namespace is not limited.
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "free"}});
    assert_eq!(send(&client, "POST", "/api/v1/namespaces", ns).await.0, 201);
    assert_eq!(
        send(
            &client,
            "POST",
            "/api/v1/namespaces/free/configmaps",
            cm("b")
        )
        .await
        .0,
        201
    );
    server.stop().await;
}
