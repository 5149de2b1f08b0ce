#![allow(clippy::unwrap_used)]
//! The namespace controller against a real API server in this process:
//! DELETE marks a namespace Terminating (finalizer `kubernetes`), creates
//! in it are refused, its content (built-in and custom resources) is
//! deleted, objects held by finalizers are reported in its conditions,
//! and once they are gone it is finalized and removed.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, ResourceExt};
use serde_json::json;

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"a": "1"}})).unwrap()
}

fn condition(ns: &Namespace, kind: &str) -> Option<(String, String, String)> {
    ns.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

async fn widget_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    common::eventually("the CRD is established", || async {
        crds.get("widgets.example.com")
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    })
    .await;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

fn widget(name: &str, finalizers: &[&str]) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {"size": 1},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_its_content_then_the_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &namespace("doomed"))
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &configmap(name))
            .await
            .unwrap();
    }
    let widgets = widget_api(&client, "doomed").await;
    widgets
        .create(&PostParams::default(), &widget("plain", &[]))
        .await
        .unwrap();
    widgets
        .create(
            &PostParams::default(),
            &widget("held", &["example.com/hold"]),
        )
        .await
        .unwrap();

    // Without the controller: DELETE only marks the namespace.
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let marked = namespaces.get("doomed").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(
        marked.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    assert_eq!(
        marked.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["kubernetes".to_owned()])
    );
    // A second DELETE changes nothing.
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    assert!(namespaces.get("doomed").await.is_ok());
    let Err(kube::Error::Api(refused)) = cms.create(&PostParams::default(), &configmap("c")).await
    else {
        panic!("created content in a terminating namespace");
    };
    assert_eq!(refused.code, 403);
    assert!(
        refused.message.contains(
            "unable to create new content in namespace doomed because it is being terminated"
        ),
        "{}",
        refused.message
    );
    assert_eq!(cms.list(&Default::default()).await.unwrap().items.len(), 2);

    let (stop, task) = common::start_controllers(client.clone());
    common::eventually("content deleted but the held widget", || async {
        cms.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
            && widgets
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>()
                == ["held"]
    })
    .await;
    common::eventually("conditions report the finalizer", || async {
        let ns = namespaces.get("doomed").await.unwrap();
        condition(&ns, "NamespaceFinalizersRemaining").is_some_and(|(s, r, m)| {
            s == "True"
                && r == "SomeFinalizersRemain"
                && m == "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
        }) && condition(&ns, "NamespaceContentRemaining").is_some_and(|(s, r, m)| {
            s == "True"
                && r == "SomeResourcesRemain"
                && m == "Some resources are remaining: widgets.example.com has 1 resource instances"
        }) && condition(&ns, "NamespaceDeletionDiscoveryFailure")
            .is_some_and(|(s, r, _)| s == "False" && r == "ResourcesDiscovered")
    })
    .await;
    assert!(namespaces.get("doomed").await.is_ok());

    // The finalizer goes: the widget, then the namespace.
    widgets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    common::eventually("the namespace is gone", || async {
        matches!(namespaces.get_opt("doomed").await, Ok(None))
    })
    .await;
    // A namespace of the same name starts empty.
    namespaces
        .create(&PostParams::default(), &namespace("doomed"))
        .await
        .unwrap();
    // (The root CA publisher's ConfigMap may already be back.)
    assert!(
        cms.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|cm| cm.metadata.name.as_deref() == Some("kube-root-ca.crt"))
    );
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_namespace_is_finalized_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let (stop, task) = common::start_controllers(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &namespace("empty"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    namespaces
        .delete("empty", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("the namespace is gone", || async {
        matches!(namespaces.get_opt("empty").await, Ok(None))
    })
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    stop.cancel();
    task.await.unwrap();
    server.stop().await;
}
