#![allow(clippy::unwrap_used)]
//! The `kube` crate against skiff: `Api::list`, `watcher` and `Api::patch`
//! round trips, and a watcher recovering by relisting when its
//! resourceVersion was compacted.

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

fn configmap(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

type Events =
    futures::stream::BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

/// The next watcher event (skipping none), failing after a while.
async fn next(events: &mut Events, c: &skiff_testkit::Cluster) -> watcher::Event<ConfigMap> {
    match tokio::time::timeout(Duration::from_secs(60), events.try_next()).await {
        Ok(Ok(Some(e))) => e,
        other => panic!(
            "no watcher event: {other:?}\n--- server log ---\n{}",
            c.logs()
        ),
    }
}

fn describe(e: &watcher::Event<ConfigMap>) -> String {
    match e {
        watcher::Event::Init => "Init".into(),
        watcher::Event::InitDone => "InitDone".into(),
        watcher::Event::InitApply(o) => {
            format!("InitApply({})", o.metadata.name.clone().unwrap_or_default())
        }
        watcher::Event::Apply(o) => {
            format!("Apply({})", o.metadata.name.clone().unwrap_or_default())
        }
        watcher::Event::Delete(o) => {
            format!("Delete({})", o.metadata.name.clone().unwrap_or_default())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_and_patch_round_trip() {
    let c = common::cluster();
    let client = common::kube_client(&c).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, team) in [("a", "red"), ("b", "blue"), ("c", "red")] {
        cms.create(
            &PostParams::default(),
            &configmap(name, serde_json::json!({"team": team})),
        )
        .await
        .unwrap();
    }

    // list with selectors and paging.
    let red = cms
        .list(&ListParams::default().labels("team=red"))
        .await
        .unwrap();
    let names: Vec<_> = red
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    assert_eq!(names, ["a", "c"]);
    let not_red = cms
        .list(
            &ListParams::default()
                .labels("team!=red")
                .fields("metadata.name!=kube-root-ca.crt"),
        )
        .await
        .unwrap();
    assert_eq!(not_red.items.len(), 1);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(
        by_name.items[0].metadata.labels.as_ref().unwrap()["team"],
        "blue"
    );
    // (`team` leaves out the root CA publisher's ConfigMap.)
    let first = cms
        .list(&ListParams::default().labels("team").limit(2))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let rest = cms
        .list(
            &ListParams::default()
                .labels("team")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.metadata.continue_.as_deref().unwrap_or(""), "");

    // watcher: the initial state, then every change.
    let mut events: Events =
        watcher(cms.clone(), watcher::Config::default().labels("team")).boxed();
    assert!(matches!(next(&mut events, &c).await, watcher::Event::Init));
    let mut initial = Vec::new();
    loop {
        match next(&mut events, &c).await {
            watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {}", describe(&other)),
        }
    }
    initial.sort();
    assert_eq!(initial, ["a", "b", "c"]);

    // Api::patch: merge, strategic merge and JSON patch.
    let patched = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"stage": "one"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.as_ref().unwrap()["stage"], "one");
    match next(&mut events, &c).await {
        watcher::Event::Apply(o) => {
            assert_eq!(o.metadata.name.as_deref(), Some("a"));
            assert_eq!(o.metadata.labels.unwrap()["stage"], "one");
            assert_eq!(
                o.metadata.resource_version,
                patched.metadata.resource_version
            );
        }
        other => panic!("expected Apply(a), got {}", describe(&other)),
    }
    let patched = cms
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({"data": {"k2": "v2"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["k"], "v");
    assert_eq!(patched.data.as_ref().unwrap()["k2"], "v2");
    match next(&mut events, &c).await {
        watcher::Event::Apply(o) => assert_eq!(o.data.unwrap()["k2"], "v2"),
        other => panic!("expected Apply(b), got {}", describe(&other)),
    }
    let patched = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"k": "w"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["k"], "w");
    match next(&mut events, &c).await {
        watcher::Event::Apply(o) => assert_eq!(o.data.unwrap()["k"], "w"),
        other => panic!("expected Apply(c), got {}", describe(&other)),
    }
    // A label change that leaves the selection is a delete for the watcher.
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"team": null}}})),
    )
    .await
    .unwrap();
    match next(&mut events, &c).await {
        watcher::Event::Delete(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("expected Delete(b), got {}", describe(&other)),
    }
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    match next(&mut events, &c).await {
        watcher::Event::Delete(o) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("expected Delete(a), got {}", describe(&other)),
    }
    // Round trip: what list says now is what the watcher saw.
    let now = cms
        .list(&ListParams::default().labels("team"))
        .await
        .unwrap();
    let names: Vec<_> = now
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    assert_eq!(names, ["c"]);
}

/// Restarts the server from inside an async test.
fn restart(c: &mut skiff_testkit::Cluster) {
    tokio::task::block_in_place(|| c.restart().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_its_resource_version_is_compacted() {
    let mut c = common::cluster_with(&["--compaction-interval-seconds", "1"]);
    let client = common::kube_client(&c).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &configmap("kept", serde_json::json!({"w": "1"})),
    )
    .await
    .unwrap();
    let mut events: Events = watcher(cms.clone(), watcher::Config::default().labels("w"))
        .default_backoff()
        .boxed();
    assert!(matches!(next(&mut events, &c).await, watcher::Event::Init));
    assert!(matches!(
        next(&mut events, &c).await,
        watcher::Event::InitApply(_)
    ));
    assert!(matches!(
        next(&mut events, &c).await,
        watcher::Event::InitDone
    ));
    let seen_at: i64 = cms
        .get("kept")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();

    // Writes the watcher does not select move the revision on; then the
    // history it would resume from is compacted away.
    let others: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    for i in 0..3 {
        others
            .create(
                &PostParams::default(),
                &configmap(&format!("noise-{i}"), serde_json::json!({})),
            )
            .await
            .unwrap();
    }
    tokio::task::block_in_place(|| {
        common::wait_compacted_past(&c, seen_at + 2, Duration::from_secs(60))
    });

    // The restart cuts the watch; resuming from its resourceVersion gets
    // 410 Gone, and the watcher starts over with a fresh list.
    restart(&mut c);
    let mut relisted = false;
    let mut initial = Vec::new();
    let mut errors = Vec::new();
    while !relisted {
        // The watcher reports errors (connection refused while the server
        // restarts, then 410 Gone) and carries on by itself.
        let item = tokio::time::timeout(Duration::from_secs(60), events.next()).await;
        match item {
            Ok(Some(Ok(watcher::Event::Init))) => initial.clear(),
            Ok(Some(Ok(watcher::Event::InitApply(o)))) => initial.push(o.metadata.name.unwrap()),
            Ok(Some(Ok(watcher::Event::InitDone))) => relisted = true,
            Ok(Some(Err(e))) => errors.push(e),
            other => panic!(
                "expected a relist, got {other:?}; errors so far: {errors:?}\n--- server log ---\n{}",
                c.logs()
            ),
        }
    }
    assert_eq!(initial, ["kept"]);
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, watcher::Error::WatchError(s) if s.code == 410)),
        "resuming from a compacted resourceVersion must be 410 Gone: {errors:?}"
    );
    // And it follows changes again.
    cms.patch(
        "kept",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"after": "restart"}})),
    )
    .await
    .unwrap();
    match next(&mut events, &c).await {
        watcher::Event::Apply(o) => assert_eq!(o.data.unwrap()["after"], "restart"),
        other => panic!("expected Apply(kept), got {}", describe(&other)),
    }
}
