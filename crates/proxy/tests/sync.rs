//! The proxy against an in-process API server, with a [`Recorder`] in
//! place of nft: Services, hand-made EndpointSlices and the Node turn into
//! the recorded ruleset, which follows every change; `/healthz` and
//! `/metrics` answer.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_apiserver::testing::start;
use skiff_proxy::{Config, Recorder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

async fn wait_for(rx: &mut watch::Receiver<String>, what: &str, check: impl Fn(&str) -> bool) {
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|t| check(t))).await,
        Ok(Ok(_))
    );
    if !ok {
        panic!(
            "timed out waiting for the ruleset to show: {what}\nlast:\n{}",
            rx.borrow().as_str()
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
    (code, body)
}

fn slice(name: &str, addresses: &[(&str, bool)]) -> EndpointSlice {
    let endpoints: Vec<_> = addresses
        .iter()
        .map(|(a, ready)| {
            json!({"addresses": [a], "conditions": {"ready": ready}, "nodeName": "node-a"})
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruleset_follows_services_and_endpoint_slices() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();

    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"addresses": [
                {"type": "InternalIP", "address": "192.168.50.4"}]}})),
        )
        .await
        .unwrap();

    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "clusterIP": "10.43.0.100", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http",
                            "nodePort": 30080}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();

    let recorder = Arc::new(Recorder::new());
    let mut rx = recorder.subscribe();
    let mut config = Config::new(client.clone(), "node-a");
    let healthz = free_port();
    config.healthz_address = "127.0.0.1".parse().unwrap();
    config.healthz_port = healthz;
    config.metrics_port = 0;
    config.min_sync_period = Duration::from_millis(100);
    config.sync_period = Duration::from_millis(200);
    config.applier = recorder.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(skiff_proxy::run(config, shutdown.clone()));

    // No endpoints yet: rejected, on the ClusterIP and the NodePort.
    wait_for(&mut rx, "no endpoints → reject", |t| {
        t.contains("10.43.0.100 . tcp . 80 : goto reject-chain")
            && t.contains("tcp . 30080 : goto reject-chain")
    })
    .await;
    wait_for(&mut rx, "the node's InternalIP serves NodePorts", |t| {
        t.contains("set nodeport-ips {\n\t\ttype ipv4_addr\n\t\telements = { 192.168.50.4 }")
    })
    .await;

    // One ready endpoint.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    slices
        .create(
            &PostParams::default(),
            &slice("web-1", &[("10.42.0.5", true)]),
        )
        .await
        .unwrap();
    wait_for(&mut rx, "the endpoint", |t| {
        t.contains("10.43.0.100 . tcp . 80 : goto service-default/web/tcp/http")
            && t.contains("tcp . 30080 : goto external-default/web/tcp/http")
            && t.contains("meta l4proto tcp dnat to 10.42.0.5:8080")
            && !t.contains("goto reject-chain }")
    })
    .await;

    // A second slice adds an endpoint; a not-ready one is ignored.
    slices
        .create(
            &PostParams::default(),
            &slice("web-2", &[("10.42.0.6", true), ("10.42.0.7", false)]),
        )
        .await
        .unwrap();
    wait_for(&mut rx, "two endpoints", |t| {
        t.contains("numgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/http__10.42.0.5/8080, 1 : goto endpoint-default/web/tcp/http__10.42.0.6/8080 }")
            && !t.contains("10.42.0.7")
    })
    .await;

    // The first endpoint goes away.
    slices
        .delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&mut rx, "only the second endpoint", |t| {
        t.contains(
            "numgen random mod 1 vmap { 0 : goto endpoint-default/web/tcp/http__10.42.0.6/8080 }",
        ) && !t.contains("10.42.0.5:8080")
    })
    .await;

    // Nothing changes: periodic syncs (every 200 ms here) write nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = recorder.history().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        recorder.history().len(),
        before,
        "rewrote an unchanged ruleset"
    );

    // Health and metrics.
    let (code, body) = get(healthz, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        health["lastUpdated"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );
    assert!(health["currentTime"].as_str().is_some(), "{body}");
    let (code, metrics) = get(healthz, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "kubeproxy_sync_proxy_rules_duration_seconds_count {before}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_nftables_rules "),
        "{metrics}"
    );

    // The Service is deleted: its rules are gone.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&mut rx, "no trace of the service", |t| {
        !t.contains("default/web") && !t.contains("10.43.0.100") && !t.contains("30080")
    })
    .await;

    shutdown.cancel();
    task.await.unwrap().unwrap();
    server.stop().await;
}

/// Waits (the flushes follow the rules' write) until the recorded
/// conntrack flushes are `want`.
async fn flush_wait(recorder: &Recorder, want: &[skiff_proxy::conntrack::Flush]) -> bool {
    for _ in 0..200 {
        if recorder.flushes() == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn flushes_become(recorder: &Recorder, want: &[skiff_proxy::conntrack::Flush]) {
    assert!(
        flush_wait(recorder, want).await,
        "flushes {:?}, want {want:?}",
        recorder.flushes()
    );
}

/// The sync loop asks the applier to clear stale UDP conntrack entries:
/// all entries to a UDP Service once it gets its first endpoint, those
/// DNATed to an endpoint once it goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_udp_conntrack_entries_follow_endpoint_changes() {
    use skiff_proxy::conntrack::Flush;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let client = server.client.clone();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "dns"},
        "spec": {"clusterIP": "10.43.0.53", "selector": {"app": "dns"},
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let recorder = Arc::new(Recorder::new());
    let mut rx = recorder.subscribe();
    let mut config = Config::new(client.clone(), "node-a");
    config.healthz_port = 0;
    config.metrics_port = 0;
    config.min_sync_period = Duration::from_millis(100);
    config.sync_period = Duration::from_millis(200);
    config.applier = recorder.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(skiff_proxy::run(config, shutdown.clone()));
    wait_for(&mut rx, "no endpoints", |t| {
        t.contains("10.43.0.53 . udp . 53 : goto reject-chain")
    })
    .await;
    assert!(recorder.flushes().is_empty(), "{:?}", recorder.flushes());

    let udp_slice = |addresses: &[&str]| -> EndpointSlice {
        let endpoints: Vec<_> = addresses
            .iter()
            .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "dns-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "dns"}},
            "addressType": "IPv4",
            "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": endpoints,
        }))
        .unwrap()
    };
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    slices
        .create(
            &PostParams::default(),
            &udp_slice(&["10.42.0.5", "10.42.0.6"]),
        )
        .await
        .unwrap();
    wait_for(&mut rx, "two endpoints", |t| {
        t.contains("dnat to 10.42.0.6:5353")
    })
    .await;
    let first = Flush::Destination {
        ip: "10.43.0.53".parse().unwrap(),
        port: 53,
    };
    flushes_become(&recorder, std::slice::from_ref(&first)).await;

    slices
        .replace("dns-1", &PostParams::default(), &{
            let mut s = udp_slice(&["10.42.0.6"]);
            s.metadata.resource_version =
                slices.get("dns-1").await.unwrap().metadata.resource_version;
            s
        })
        .await
        .unwrap();
    wait_for(&mut rx, "one endpoint", |t| {
        !t.contains("dnat to 10.42.0.5:5353")
    })
    .await;
    flushes_become(
        &recorder,
        &[
            first,
            Flush::Nat {
                ip: "10.43.0.53".parse().unwrap(),
                port: 53,
                endpoint: "10.42.0.5".parse().unwrap(),
            },
        ],
    )
    .await;
    shutdown.cancel();
    let _ = task.await;
}
