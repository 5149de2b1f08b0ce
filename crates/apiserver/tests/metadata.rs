#![allow(clippy::unwrap_used)]
//! Metadata-only reads (`as=PartialObjectMetadata[List]`), as kube-rs
//! `list_metadata` / `metadata_watcher` and upstream's metadata informers
//! request them: the objects' metadata, nothing else.

mod common;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_gets_and_watches_of_metadata_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("meta".into());
    cm.metadata.labels = Some([("app".to_owned(), "x".to_owned())].into());
    cm.data = Some([("big".to_owned(), "x".repeat(1000))].into());
    api.create(&PostParams::default(), &cm).await.unwrap();

    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.labels.as_ref().unwrap()["app"], "x");
    let one = api.get_metadata("meta").await.unwrap();
    assert_eq!(one.metadata.name.as_deref(), Some("meta"));

    let meta_api: Api<PartialObjectMeta<ConfigMap>> =
        Api::namespaced(server.client.clone(), "default");
    let mut events = watcher(meta_api, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("meta"));
    cm.metadata.name = Some("second".into());
    api.create(&PostParams::default(), &cm).await.unwrap();
    let second = events.next().await.unwrap().unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("second"));

    // The raw answer carries no data.
    let request = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .body(Vec::new())
        .unwrap();
    let raw: serde_json::Value = server.client.request(request).await.unwrap();
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert!(raw["items"][0].get("data").is_none());
    server.stop().await;
}
