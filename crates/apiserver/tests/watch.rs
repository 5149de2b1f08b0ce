#![allow(clippy::unwrap_used)]
//! Watches served from the watch cache: many watchers see the same events in
//! order, old revisions replay, compacted ones get 410, selectors narrow.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("a".to_owned(), "1".to_owned())])),
        ..Default::default()
    }
}

async fn next<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10s")
        .expect("stream open")
        .expect("event")
}

fn name_of(event: &WatchEvent<ConfigMap>) -> (String, String) {
    match event {
        WatchEvent::Added(o) => ("ADDED".into(), o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => (
            "MODIFIED".into(),
            o.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Deleted(o) => (
            "DELETED".into(),
            o.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Bookmark(_) => ("BOOKMARK".into(), String::new()),
        WatchEvent::Error(e) => ("ERROR".into(), e.message.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_watchers_see_every_change_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client.clone());
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut streams = Vec::new();
    for _ in 0..300 {
        streams.push(
            api.watch(&WatchParams::default(), &rv)
                .await
                .unwrap()
                .boxed(),
        );
    }
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let mut changed = api.get("a").await.unwrap();
    changed.data = Some(BTreeMap::from([("a".to_owned(), "2".to_owned())]));
    api.replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    api.delete("a", &Default::default()).await.unwrap();
    for stream in &mut streams {
        let seen =
            [next(stream).await, next(stream).await, next(stream).await].map(|e| name_of(&e));
        assert_eq!(
            seen,
            [
                ("ADDED".into(), "a".into()),
                ("MODIFIED".into(), "a".into()),
                ("DELETED".into(), "a".into())
            ]
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_revisions_replay_and_label_selectors_narrow() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client.clone());
    let first = api
        .create(&PostParams::default(), &cm("one", &[("team", "x")]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("two", &[("team", "y")]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("three", &[("team", "x")]))
        .await
        .unwrap();
    let from = first.metadata.resource_version.unwrap();
    let mut all = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    assert_eq!(name_of(&next(&mut all).await).1, "two");
    assert_eq!(name_of(&next(&mut all).await).1, "three");
    let mut team_x = api
        .watch(&WatchParams::default().labels("team=x"), &from)
        .await
        .unwrap()
        .boxed();
    assert_eq!(name_of(&next(&mut team_x).await).1, "three");
    // Relabelling out of the selector is a DELETED for that watcher.
    let mut three = api.get("three").await.unwrap();
    three.metadata.labels = Some(BTreeMap::from([("team".to_owned(), "z".to_owned())]));
    api.replace("three", &PostParams::default(), &three)
        .await
        .unwrap();
    assert_eq!(
        name_of(&next(&mut team_x).await),
        ("DELETED".into(), "three".into())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compacted_revision_is_410_gone() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client.clone());
    let first = api
        .create(&PostParams::default(), &cm("c1", &[]))
        .await
        .unwrap();
    server.stop().await;
    // A restart empties the cache's event window; then history is compacted.
    let server = common::start(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client.clone());
    let last = api
        .create(&PostParams::default(), &cm("c2", &[]))
        .await
        .unwrap();
    let last_rv: i64 = last.metadata.resource_version.unwrap().parse().unwrap();
    server.store.compact(last_rv).await.unwrap();
    // From before the cache's window (which starts at the restart), so the
    // store must replay it, and that history is gone.
    let first_rv: i64 = first.metadata.resource_version.unwrap().parse().unwrap();
    let from = (first_rv - 1).to_string();
    let mut stream = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired"), "{e:?}"),
        other => panic!("expected 410, got {:?}", name_of(&other)),
    }
    server.stop().await;
}
