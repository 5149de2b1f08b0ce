#![allow(clippy::unwrap_used)]
//! Service addresses: unique under concurrent creates, kept across restarts,
//! released on delete.

mod common;

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use common::start;

fn service(name: &str, kind: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(kind.into()),
            selector: Some([("app".to_owned(), name.to_owned())].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn addresses(svc: &Service) -> (String, i32) {
    let spec = svc.spec.clone().unwrap();
    let port = spec.ports.unwrap()[0].node_port.unwrap_or(0);
    (spec.cluster_ip.unwrap(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_addresses_that_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let api: Api<Service> = Api::default_namespaced(server.client.clone());
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.create(
                    &PostParams::default(),
                    &service(&format!("s{i}"), "NodePort"),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for task in tasks {
        let (ip, port) = addresses(&task.await.unwrap());
        assert!(ip.starts_with("10.43."), "{ip}");
        assert_ne!(
            ip, "10.43.0.1",
            "the kubernetes Service's address was handed out"
        );
        assert!((30000..=32767).contains(&port), "{port}");
        assert!(ips.insert(ip.clone()), "ClusterIP {ip} given twice");
        assert!(ports.insert(port), "NodePort {port} given twice");
    }
    let (taken_ip, taken_port) = addresses(&api.get("s0").await.unwrap());
    server.stop().await;

    // After a restart the allocations are still held.
    let server = start(dir.path()).await;
    let api: Api<Service> = Api::default_namespaced(server.client.clone());
    let mut clash = service("clash", "NodePort");
    clash.spec.as_mut().unwrap().cluster_ip = Some(taken_ip.clone());
    let err = api
        .create(&PostParams::default(), &clash)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already allocated"), "{err}");
    let mut clash = service("clash", "NodePort");
    clash.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(taken_port);
    let err = api
        .create(&PostParams::default(), &clash)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already allocated"), "{err}");

    // Deleting the Service frees its address for reuse.
    api.delete("s0", &DeleteParams::default()).await.unwrap();
    let mut reuse = service("reuse", "NodePort");
    reuse.spec.as_mut().unwrap().cluster_ip = Some(taken_ip.clone());
    reuse.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(taken_port);
    let created = api.create(&PostParams::default(), &reuse).await.unwrap();
    assert_eq!(addresses(&created), (taken_ip, taken_port));
    server.stop().await;
}
