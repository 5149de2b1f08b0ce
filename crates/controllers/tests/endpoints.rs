#![allow(clippy::unwrap_used)]
//! The Endpoints controller against a real API server in this process:
//! an Endpoints per selecting Service, following pods becoming ready,
//! unready and terminating, named target ports, headless services with
//! publishNotReadyAddresses; the API server's `kubernetes` Endpoints is
//! left alone; Endpoints are deleted with their Service.

mod common;

use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Pod, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, app: &str, http: i32) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": http}]}],
        },
    }))
    .unwrap()
}

async fn set_status(api: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": "2020-01-01T00:00:00Z"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// (ready pod names, not-ready pod names, ports) per subset.
type Shape = Vec<(Vec<String>, Vec<String>, Vec<i32>)>;

fn shape(subsets: &[EndpointSubset]) -> Shape {
    let names = |l: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| -> Vec<String> {
        l.iter()
            .flatten()
            .filter_map(|a| a.target_ref.as_ref().and_then(|r| r.name.clone()))
            .collect()
    };
    let mut out: Shape = subsets
        .iter()
        .map(|s| {
            (
                names(&s.addresses),
                names(&s.not_ready_addresses),
                s.ports.iter().flatten().map(|p| p.port).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

fn want(v: &[(&[&str], &[&str], &[i32])]) -> Shape {
    let strings = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let mut out: Shape = v
        .iter()
        .map(|(r, n, p)| (strings(r), strings(n), p.to_vec()))
        .collect();
    out.sort();
    out
}

async fn wait_for(api: &Api<Endpoints>, name: &str, expected: Shape) -> Endpoints {
    let mut last = None;
    for _ in 0..300 {
        if let Some(e) = api.get_opt(name).await.unwrap() {
            if shape(e.subsets.as_deref().unwrap_or_default()) == expected {
                return e;
            }
            last = Some(shape(e.subsets.as_deref().unwrap_or_default()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("endpoints {name}: {last:?}, wanted {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pods() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let (stop, task) = common::start_controllers(client.clone());
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &service(json!({
                "metadata": {"name": "web", "labels": {"tier": "front"}},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            })),
        )
        .await
        .unwrap();
    let empty = wait_for(&endpoints, "web", Vec::new()).await;
    assert_eq!(
        empty.labels()["endpointslice.kubernetes.io/skip-mirror"],
        "true"
    );
    assert_eq!(empty.labels()["tier"], "front");

    for (name, port) in [("a", 8080), ("b", 8080), ("c", 9090), ("pending", 8080)] {
        pods.create(&PostParams::default(), &pod(name, "web", port))
            .await
            .unwrap();
    }
    set_status(&pods, "a", "10.1.0.1", true).await;
    set_status(&pods, "b", "10.1.0.2", false).await;
    set_status(&pods, "c", "10.1.0.3", true).await;
    let e = wait_for(
        &endpoints,
        "web",
        want(&[(&["a"], &["b"], &[8080]), (&["c"], &[], &[9090])]),
    )
    .await;
    let subset = e
        .subsets
        .unwrap()
        .into_iter()
        .find(|s| s.ports.as_ref().unwrap()[0].port == 8080)
        .unwrap();
    let a = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(a.ip, "10.1.0.1");
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let port = &subset.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.protocol.as_deref()),
        (Some("http"), Some("TCP"))
    );

    // b becomes ready; a terminates (dropped: not publishNotReadyAddresses).
    set_status(&pods, "b", "10.1.0.2", true).await;
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    wait_for(
        &endpoints,
        "web",
        want(&[(&["b"], &[], &[8080]), (&["c"], &[], &[9090])]),
    )
    .await;
    set_status(&pods, "c", "10.1.0.3", false).await;
    wait_for(
        &endpoints,
        "web",
        want(&[(&["b"], &[], &[8080]), (&[], &["c"], &[9090])]),
    )
    .await;

    // The service goes: so do its Endpoints.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("endpoints deleted with the service", || async {
        endpoints.get_opt("web").await.unwrap().is_none()
    })
    .await;
    // The API server's Endpoints are untouched.
    let kubernetes = endpoints.get("kubernetes").await.unwrap();
    assert!(kubernetes.subsets.is_some());
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_publish_not_ready_and_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    // Left over from a Service deleted while the controller was down.
    let leftover: Endpoints = serde_json::from_value(
        json!({"metadata": {"name": "gone"}, "subsets": [{"addresses": [{"ip": "192.0.2.1"}]}]}),
    )
    .unwrap();
    endpoints
        .create(&PostParams::default(), &leftover)
        .await
        .unwrap();
    let (stop, task) = common::start_controllers(client.clone());
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &service(json!({
                "metadata": {"name": "db"},
                "spec": {"selector": {"app": "db"}, "clusterIP": "None", "publishNotReadyAddresses": true},
            })),
        )
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("db-0", "db", 5432))
        .await
        .unwrap();
    set_status(&pods, "db-0", "10.1.0.9", false).await;
    let e = wait_for(&endpoints, "db", want(&[(&["db-0"], &[], &[])])).await;
    assert_eq!(
        e.labels()
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
    common::eventually("the leftover is deleted", || async {
        endpoints.get_opt("gone").await.unwrap().is_none()
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}
