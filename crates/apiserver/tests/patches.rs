#![allow(clippy::unwrap_used)]
//! PATCH through the kube crate: server-side apply with two managers,
//! conflicts and force; managedFields on plain writes; strategic merge by
//! the schema's merge keys.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect()
}

fn config(data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_tracks_owners_conflicts_and_force() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    let a = PatchParams::apply("a");
    let b = PatchParams::apply("b");

    // Apply creates, and applying again changes nothing.
    let created = api
        .patch(
            "ssa",
            &a,
            &Patch::Apply(config(json!({"x": "1", "keep": "k"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        managers(&created),
        vec![("a".to_owned(), "Apply".to_owned())]
    );
    let again = api
        .patch(
            "ssa",
            &a,
            &Patch::Apply(config(json!({"x": "1", "keep": "k"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );

    // A second manager owns another field.
    let both = api
        .patch("ssa", &b, &Patch::Apply(config(json!({"y": "2"}))))
        .await
        .unwrap();
    assert_eq!(both.data.as_ref().unwrap().len(), 3);
    assert_eq!(managers(&both).len(), 2);

    // A different value for a field "a" owns conflicts...
    let err = api
        .patch(
            "ssa",
            &b,
            &Patch::Apply(config(json!({"y": "2", "x": "9"}))),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error")
    };
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .contains("Apply failed with 1 conflict: conflict with \"a\": .data.x"),
        "{}",
        status.message
    );
    // ...unless forced; then "b" owns it.
    let forced = api
        .patch(
            "ssa",
            &b.clone().force(),
            &Patch::Apply(config(json!({"y": "2", "x": "9"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "9");

    // "a" drops "keep" from its configuration: nobody else owns it, so it
    // goes; "x" now belongs to "b" and stays.
    let dropped = api
        .patch("ssa", &a, &Patch::Apply(config(json!({}))))
        .await
        .unwrap();
    let data = dropped.data.unwrap();
    assert!(!data.contains_key("keep"), "{data:?}");
    assert_eq!(data["x"], "9");
    assert_eq!(data["y"], "2");

    // A plain update is recorded as an Update by its field manager.
    let updated = api
        .patch(
            "ssa",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"z": "3"}})),
        )
        .await
        .unwrap();
    assert!(
        managers(&updated).contains(&("editor".to_owned(), "Update".to_owned())),
        "{:?}",
        managers(&updated)
    );

    // A create records its creator.
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("plain".into());
    cm.data = Some([("k".to_owned(), "v".to_owned())].into());
    let plain = api
        .create(
            &PostParams {
                field_manager: Some("creator".into()),
                ..Default::default()
            },
            &cm,
        )
        .await
        .unwrap();
    assert_eq!(
        managers(&plain),
        vec![("creator".to_owned(), "Update".to_owned())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_patches_merge_containers_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &deploy).await.unwrap();
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}})))
        .await
        .unwrap();
    let names: Vec<String> = patched
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["sidecar", "web"]);
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": "delete"}]}}}})))
        .await
        .unwrap();
    let names: Vec<String> = patched
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["sidecar"]);
    server.stop().await;
}
