#![allow(clippy::unwrap_used)]
//! The EndpointSlice controller against a real API server in this
//! process: slices follow pods becoming ready, unready, terminating and
//! done; named target ports split pods into slices; headless services
//! and publishNotReadyAddresses; a placeholder for a service without
//! pods; services without a selector (and the API server's `kubernetes`
//! slice) are left alone; slices go with their service.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
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

async fn set_status(api: &Api<Pod>, name: &str, ip: &str, ready: bool, phase: &str) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": "2020-01-01T00:00:00Z"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn slices(api: &Api<EndpointSlice>, service: &str) -> Vec<EndpointSlice> {
    api.list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .unwrap()
        .items
}

/// pod name → (port numbers, ready, serving, terminating) over all slices.
type Seen = BTreeMap<String, (Vec<i32>, bool, bool, bool)>;

fn seen(slices: &[EndpointSlice]) -> Seen {
    let mut out = Seen::new();
    for s in slices {
        let ports: Vec<i32> = s.ports.iter().flatten().filter_map(|p| p.port).collect();
        for e in &s.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let name = e
                .target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_default();
            out.insert(
                name,
                (
                    ports.clone(),
                    c.ready.unwrap_or(false),
                    c.serving.unwrap_or(false),
                    c.terminating.unwrap_or(false),
                ),
            );
        }
    }
    out
}

fn expect(entries: &[(&str, &[i32], bool, bool, bool)]) -> Seen {
    entries
        .iter()
        .map(|(n, p, r, s, t)| ((*n).to_owned(), (p.to_vec(), *r, *s, *t)))
        .collect()
}

async fn wait_for(api: &Api<EndpointSlice>, service: &str, want: Seen) {
    let mut last = Seen::new();
    for _ in 0..300 {
        last = seen(&slices(api, service).await);
        if last == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("slices of {service}: {last:?}, wanted {want:?}");
}

fn endpoint<'a>(slices: &'a [EndpointSlice], pod: &str) -> &'a Endpoint {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_follow_pods() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let (stop, task) = common::start_controllers(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slice_api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let svc = services
        .create(
            &PostParams::default(),
            &service(json!({
                "metadata": {"name": "web", "labels": {"tier": "front"}},
                "spec": {"selector": {"app": "web"}, "ports": [
                    {"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"},
                ]},
            })),
        )
        .await
        .unwrap();

    // No pods yet: one empty placeholder slice.
    common::eventually("a placeholder slice", || async {
        let s = slices(&slice_api, "web").await;
        s.len() == 1 && s[0].endpoints.is_empty()
    })
    .await;
    let placeholder = slices(&slice_api, "web").await.remove(0);
    assert!(placeholder.name_any().starts_with("web-"));
    assert_eq!(placeholder.name_any().len(), "web-".len() + 5);
    assert_eq!(placeholder.address_type, "IPv4");
    let labels = placeholder.labels();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["tier"], "front");
    let owner = &placeholder.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Service", "web", Some(true))
    );
    assert_eq!(Some(&owner.uid), svc.metadata.uid.as_ref());

    for (name, port) in [("a", 8080), ("b", 8080), ("c", 9090), ("pending", 8080)] {
        pods.create(&PostParams::default(), &pod(name, "web", port))
            .await
            .unwrap();
    }
    set_status(&pods, "a", "10.1.0.1", true, "Running").await;
    set_status(&pods, "b", "10.1.0.2", false, "Running").await;
    set_status(&pods, "c", "10.1.0.3", true, "Running").await;
    // "pending" has no IP: not an endpoint. Different numbers for the
    // named port: different slices.
    wait_for(
        &slice_api,
        "web",
        expect(&[
            ("a", &[8080], true, true, false),
            ("b", &[8080], false, false, false),
            ("c", &[9090], true, true, false),
        ]),
    )
    .await;
    let current = slices(&slice_api, "web").await;
    assert_eq!(current.len(), 2, "the placeholder was reused or removed");
    let a = endpoint(&current, "a");
    assert_eq!(a.addresses, ["10.1.0.1"]);
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    assert_eq!(a.zone.as_deref(), Some("z1"));
    let target = a.target_ref.clone().unwrap();
    assert_eq!(target.kind.as_deref(), Some("Pod"));
    assert_eq!(target.namespace.as_deref(), Some("default"));
    let port = &current[0].ports.as_ref().unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("http"));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(port.app_protocol.as_deref(), Some("http"));
    // Nothing changes: no writes.
    let versions: Vec<Option<String>> = current
        .iter()
        .map(|s| s.metadata.resource_version.clone())
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let again: Vec<Option<String>> = slices(&slice_api, "web")
        .await
        .iter()
        .map(|s| s.metadata.resource_version.clone())
        .collect();
    assert_eq!(versions, again);

    // b becomes ready; a terminates (scheduled: held by its grace period);
    // c is done.
    set_status(&pods, "b", "10.1.0.2", true, "Running").await;
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    set_status(&pods, "c", "10.1.0.3", false, "Succeeded").await;
    wait_for(
        &slice_api,
        "web",
        expect(&[
            ("a", &[8080], false, true, true),
            ("b", &[8080], true, true, false),
        ]),
    )
    .await;
    // a is gone for good.
    pods.delete("a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for(
        &slice_api,
        "web",
        expect(&[("b", &[8080], true, true, false)]),
    )
    .await;

    // The service goes: its slices go with it (garbage collector).
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("slices deleted with the service", || async {
        slices(&slice_api, "web").await.is_empty()
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_publish_not_ready_and_selectorless_services() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let (stop, task) = common::start_controllers(client.clone());
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slice_api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
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
    set_status(&pods, "db-0", "10.1.0.9", false, "Running").await;
    wait_for(
        &slice_api,
        "db",
        expect(&[("db-0", &[], true, false, false)]),
    )
    .await;
    let s = slices(&slice_api, "db").await;
    assert_eq!(
        s[0].labels()
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );

    // A service without a selector: its (user-managed) slices are left alone.
    services
        .create(
            &PostParams::default(),
            &service(json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 80}]}})),
        )
        .await
        .unwrap();
    let mine: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "ext-1", "labels": {"kubernetes.io/service-name": "ext"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.1"]}],
        "ports": [{"port": 80}],
    }))
    .unwrap();
    let mine = slice_api
        .create(&PostParams::default(), &mine)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let ext = slices(&slice_api, "ext").await;
    assert_eq!(ext.len(), 1);
    assert_eq!(
        ext[0].metadata.resource_version,
        mine.metadata.resource_version
    );
    // The API server's own slice stays as it is.
    let kubernetes = slice_api.get("kubernetes").await.unwrap();
    assert_eq!(
        kubernetes.labels()["endpointslice.kubernetes.io/managed-by"],
        "skiff-apiserver"
    );
    assert_eq!(slices(&slice_api, "kubernetes").await.len(), 1);
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}
