#![allow(clippy::unwrap_used)]
//! CustomResourceDefinitions end to end through the kube crate: a
//! definition derived with `#[derive(CustomResource)]` becomes a served
//! resource (discovery, all verbs, watch, status and scale), a kube-rs
//! controller reconciles its objects, and deleting the definition deletes
//! them.

mod common;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, Discovery, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "stable.example.com",
    version = "v1",
    kind = "CronTab",
    namespaced,
    status = "CronTabStatus",
    shortname = "ct",
    scale = r#"{"specReplicasPath":".spec.replicas", "statusReplicasPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Spec", "type":"string", "jsonPath":".spec.cronSpec"}"#
)]
struct CronTabSpec {
    cron_spec: String,
    image: String,
    replicas: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
struct CronTabStatus {
    replicas: i32,
    observed: Option<String>,
}

async fn established(crds: &Api<CustomResourceDefinition>, name: &str) {
    for _ in 0..100 {
        let crd = crds.get(name).await.unwrap();
        let ok = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never became Established");
}

fn crontab(name: &str, replicas: i32) -> CronTab {
    let mut c = CronTab::new(
        name,
        CronTabSpec {
            cron_spec: "* * * * */5".into(),
            image: "busybox".into(),
            replicas,
        },
    );
    c.metadata.namespace = Some("default".into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_custom_resources_are_served_reconciled_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .create(&PostParams::default(), &CronTab::crd())
        .await
        .unwrap();
    let name = crd.name_any();
    established(&crds, &name).await;

    // Discovery lists it, with its short name.
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.plural == "crontabs")
        .expect("crontabs discovered");
    assert_eq!(resource.group, "stable.example.com");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "crontabs/status" || s.plural == "status")
    );

    // Every verb, through the typed client.
    let api: Api<CronTab> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &crontab("a", 1))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    api.create(&PostParams::default(), &crontab("b", 2))
        .await
        .unwrap();
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, 3);
    assert_eq!(patched.metadata.generation, Some(2));

    // The status subresource: status is ignored on the main resource.
    let ignored = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert!(ignored.status.is_none());
    let with_status = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.unwrap().replicas, 3);
    assert_eq!(with_status.metadata.generation, Some(2));

    // The scale subresource reads the declared paths.
    let scale = api.get_scale("a").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().replicas, 3);

    // A kube-rs controller reconciles every object.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let controller = {
        let api = api.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            Controller::new(api.clone(), watcher::Config::default())
                .graceful_shutdown_on(shutdown.cancelled_owned())
                .run(
                    move |tab: std::sync::Arc<CronTab>, api: std::sync::Arc<Api<CronTab>>| async move {
                        let observed = json!({"status": {"replicas": tab.spec.replicas, "observed": tab.spec.image}});
                        api.patch_status(&tab.name_any(), &PatchParams::default(), &Patch::Merge(observed))
                            .await?;
                        Ok::<_, kube::Error>(Action::await_change())
                    },
                    |_, _, _| Action::requeue(Duration::from_millis(200)),
                    std::sync::Arc::new(api),
                )
                .for_each(|_| async {})
                .await;
        })
    };
    let mut reconciled = false;
    for _ in 0..100 {
        let b = api.get("b").await.unwrap();
        if b.status.as_ref().and_then(|s| s.observed.as_deref()) == Some("busybox") {
            reconciled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    controller.await.unwrap();
    assert!(reconciled, "the controller never reconciled crontab b");

    // Deleting the definition deletes its objects, then the definition.
    eprintln!(
        "finalizers: {:?}",
        crds.get(&name).await.unwrap().metadata.finalizers
    );
    crds.delete(&name, &DeleteParams::default()).await.unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if crds.get_opt(&name).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the definition was never removed");
    let left = server
        .store
        .list("/stable.example.com/crontabs/", Default::default())
        .await
        .unwrap();
    assert!(left.items.is_empty());
    server.stop().await;
}

/// Sends a raw request; returns the status code and the JSON body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
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
    (
        code,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structural_schemas_prune_default_and_validate_custom_objects() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.count"}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                                             {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1}],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 1, "maximum": 10},
                            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                        }
                    }}
                }}
            }]
        }
    });
    let (code, created) = send(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    assert_eq!(code, 201, "{created}");
    // Defaulted like upstream.
    assert_eq!(created["spec"]["names"]["singular"], "widget");
    assert_eq!(created["spec"]["names"]["listKind"], "WidgetList");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    established(&crds, "widgets.example.com").await;

    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let (code, obj) = send(
        &client,
        "POST",
        path,
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"size": 3, "extra": 1, "free": {"anything": [1, 2]}}}),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(obj["spec"]["color"], "red", "defaulted");
    assert!(obj["spec"].get("extra").is_none(), "pruned: {obj}");
    assert_eq!(obj["spec"]["free"]["anything"], json!([1, 2]), "preserved");

    // Scale reads and writes the declared paths.
    let (code, scale) = send(&client, "GET", &format!("{path}/w/scale"), json!(null)).await;
    assert_eq!(code, 200, "{scale}");
    assert_eq!(scale["spec"]["replicas"], 3);
    let mut wanted = scale.clone();
    wanted["spec"]["replicas"] = json!(5);
    let (code, scaled) = send(&client, "PUT", &format!("{path}/w/scale"), wanted).await;
    assert_eq!(code, 200, "{scaled}");
    let (_, w) = send(&client, "GET", &format!("{path}/w"), json!(null)).await;
    assert_eq!(w["spec"]["size"], 5);

    // Tables print the declared columns.
    let request = http::Request::get(path)
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: serde_json::Value = client.request(request).await.unwrap();
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Size", "Color"]);
    assert_eq!(table["rows"][0]["cells"], json!(["w", 5, "red"]));

    let (code, status) = send(
        &client,
        "POST",
        path,
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"},
               "spec": {"size": 11, "color": "green"}}),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains(
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
        ),
        "{message}"
    );
    assert!(
        message.contains("spec.color: Unsupported value: \"green\""),
        "{message}"
    );

    let (_, index) = send(&client, "GET", "/openapi/v3", json!(null)).await;
    assert!(
        index["paths"].get("apis/example.com/v1").is_some(),
        "{index}"
    );
    let (code, status) = send(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "strict"},
               "spec": {"size": 1, "extra": true}}),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.extra\""),
        "{status}"
    );

    let (code, status) = send(
        &client,
        "POST",
        path,
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "missing"}, "spec": {}}),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.size: Required value"),
        "{status}"
    );

    // A definition that is not valid is refused with field paths.
    let (code, status) = send(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "wrong.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "gadgets", "kind": "Gadget"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                                      "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("metadata.name"),
        "{status}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_version_reads_the_same_objects() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = server.client.clone();
    let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}});
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "gizmos", "kind": "Gizmo"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema},
                {"name": "v1beta1", "served": true, "storage": false, "schema": schema},
                {"name": "v1alpha1", "served": false, "storage": false, "schema": schema}
            ]
        }
    });
    let (code, body) = send(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    established(&crds, "gizmos.example.com").await;
    let stored = crds.get("gizmos.example.com").await.unwrap();
    assert_eq!(
        stored.status.unwrap().stored_versions,
        Some(vec!["v1".to_owned()])
    );

    let (code, body) = send(
        &client,
        "POST",
        "/apis/example.com/v1beta1/gizmos",
        json!({"apiVersion": "example.com/v1beta1", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {"size": 2}}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, v1) = send(&client, "GET", "/apis/example.com/v1/gizmos/g", json!(null)).await;
    assert_eq!(code, 200);
    assert_eq!(v1["apiVersion"], "example.com/v1");
    assert_eq!(v1["spec"]["size"], 2);
    let (_, list) = send(
        &client,
        "GET",
        "/apis/example.com/v1beta1/gizmos",
        json!(null),
    )
    .await;
    assert_eq!(list["items"][0]["apiVersion"], "example.com/v1beta1");
    let (code, _) = send(
        &client,
        "GET",
        "/apis/example.com/v1alpha1/gizmos",
        json!(null),
    )
    .await;
    assert_eq!(code, 404, "unserved versions are not served");
    server.stop().await;
}
