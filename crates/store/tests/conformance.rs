#![allow(clippy::unwrap_used)]
//! One conformance suite, run against both backends: the semantics the API
//! server relies on must not depend on where state is kept.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Fixture, assert_quiet, next_event};
use futures::StreamExt;
use skiff_store::{EventKind, ListOptions, MAX_VALUE_BYTES, Store, StoreError};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn create_get_update_delete(f: Fixture) {
    let s = &f.store;
    let created = s.create("/pods/default/a", b("one"), None).await.unwrap();
    assert_eq!(created.create_revision, created.mod_revision);
    assert_eq!(s.current_revision().await.unwrap(), created.mod_revision);

    let got = s.get("/pods/default/a").await.unwrap().unwrap();
    assert_eq!(got, created);

    let err = s
        .create("/pods/default/a", b("again"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");

    let updated = s
        .update("/pods/default/a", b("two"), created.mod_revision, None)
        .await
        .unwrap();
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(updated.create_revision, created.create_revision);
    assert_eq!(updated.value, b("two"));

    let stale = s
        .update("/pods/default/a", b("three"), created.mod_revision, None)
        .await
        .unwrap_err();
    match stale {
        StoreError::Conflict {
            expected, actual, ..
        } => {
            assert_eq!(
                (expected, actual),
                (created.mod_revision, updated.mod_revision)
            );
        }
        other => panic!("expected Conflict, got {other}"),
    }
    let err = s
        .delete("/pods/default/a", Some(created.mod_revision))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");

    let deleted = s
        .delete("/pods/default/a", Some(updated.mod_revision))
        .await
        .unwrap();
    assert_eq!(deleted.prev, updated);
    assert!(deleted.revision > updated.mod_revision);
    assert_eq!(s.get("/pods/default/a").await.unwrap(), None);

    let err = s.delete("/pods/default/a", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = s
        .update("/pods/default/a", b("x"), 1, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // A key can be created again after deletion, with a new create revision.
    let again = s.create("/pods/default/a", b("new"), None).await.unwrap();
    assert!(again.create_revision > deleted.revision);
}

async fn revisions_increase_with_every_write(f: Fixture) {
    let s = &f.store;
    let mut last = s.current_revision().await.unwrap();
    for i in 0..20 {
        let kv = s.create(&format!("/r/{i}"), b("v"), None).await.unwrap();
        assert!(kv.mod_revision > last);
        last = kv.mod_revision;
    }
    assert_eq!(s.current_revision().await.unwrap(), last);
}

async fn list_and_count_respect_prefixes(f: Fixture) {
    let s = &f.store;
    for name in ["a", "b", "c"] {
        s.create(&format!("/pods/ns1/{name}"), b(name), None)
            .await
            .unwrap();
    }
    s.create("/pods/ns10/x", b("x"), None).await.unwrap();
    s.create("/services/ns1/a", b("svc"), None).await.unwrap();

    let listed = s.list("/pods/ns1/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/pods/ns1/a", "/pods/ns1/b", "/pods/ns1/c"]);
    assert_eq!(listed.revision, s.current_revision().await.unwrap());
    assert_eq!(listed.remaining, 0);
    assert_eq!(s.count("/pods/").await.unwrap(), 4);
    assert_eq!(s.count("/pods/ns1/").await.unwrap(), 3);
    assert_eq!(s.count("/nothing/").await.unwrap(), 0);
}

async fn paged_list_is_one_snapshot_while_writes_go_on(f: Fixture) {
    let s = f.store.clone();
    for i in 0..100 {
        s.create(&format!("/cm/{i:03}"), b(&format!("v{i}")), None)
            .await
            .unwrap();
    }
    let first = s
        .list(
            "/cm/",
            ListOptions {
                limit: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.remaining, 90);
    let snapshot = first.revision;

    // Writers change every key, delete some and add more while we page.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let key = format!("/cm/{i:03}");
                let kv = s.get(&key).await.unwrap().unwrap();
                if i % 3 == 0 {
                    s.delete(&key, None).await.unwrap();
                } else {
                    s.update(&key, b("changed"), kv.mod_revision, None)
                        .await
                        .unwrap();
                }
                s.create(&format!("/cm/{i:03}-new"), b("new"), None)
                    .await
                    .unwrap();
            }
        })
    };
    let mut items = first.items.clone();
    let mut page = first;
    while page.more() {
        tokio::task::yield_now().await;
        let after = page.items.last().unwrap().key.clone();
        page = s
            .list(
                "/cm/",
                ListOptions {
                    limit: Some(10),
                    continue_after: Some(after),
                    revision: Some(snapshot),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, snapshot);
        items.extend(page.items.clone());
    }
    writer.await.unwrap();
    assert_eq!(items.len(), 100);
    for (i, kv) in items.iter().enumerate() {
        assert_eq!(kv.key, format!("/cm/{i:03}"));
        assert_eq!(kv.value, b(&format!("v{i}")));
        assert!(kv.mod_revision <= snapshot);
    }
    // The latest state reflects the writes.
    let now = s.list("/cm/", ListOptions::default()).await.unwrap();
    assert_eq!(now.items.len(), 100 - 34 + 100);
}

async fn watch_replays_exactly_the_missing_events(f: Fixture) {
    let s = &f.store;
    let a = s.create("/w/a", b("a1"), None).await.unwrap();
    let from = a.mod_revision;
    let a2 = s
        .update("/w/a", b("a2"), a.mod_revision, None)
        .await
        .unwrap();
    let other = s.create("/other/x", b("x"), None).await.unwrap();
    let bkv = s.create("/w/b", b("b1"), None).await.unwrap();
    let gone = s.delete("/w/a", None).await.unwrap();

    let mut stream = s.watch("/w/", from).await.unwrap();
    let e = next_event(&mut stream).await;
    assert_eq!(
        (e.kind, e.kv.clone(), e.prev.clone()),
        (EventKind::Put, a2.clone(), Some(a.clone()))
    );
    let e = next_event(&mut stream).await;
    assert_eq!(
        (e.kind, e.kv.clone(), e.prev.clone()),
        (EventKind::Put, bkv.clone(), None)
    );
    let e = next_event(&mut stream).await;
    assert_eq!(e.kind, EventKind::Delete);
    assert_eq!(e.kv.key, "/w/a");
    assert_eq!(e.revision(), gone.revision);
    assert_eq!(e.prev, Some(a2.clone()));
    assert!(other.mod_revision < bkv.mod_revision);

    // Then live events, in order.
    let c = s.create("/w/c", b("c1"), None).await.unwrap();
    s.create("/other/y", b("y"), None).await.unwrap();
    let c2 = s
        .update("/w/c", b("c2"), c.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut stream).await.kv, c);
    let e = next_event(&mut stream).await;
    assert_eq!((e.kv, e.prev), (c2.clone(), Some(c)));
    assert_quiet(&mut stream).await;

    // Watching from the latest revision replays nothing.
    let mut fresh = s.watch("/w/", c2.mod_revision).await.unwrap();
    assert_quiet(&mut fresh).await;
}

async fn many_watchers_see_the_same_order(f: Fixture) {
    let s = f.store.clone();
    let from = s.current_revision().await.unwrap();
    let mut watchers = Vec::new();
    for _ in 0..5 {
        watchers.push(s.watch("/many/", from).await.unwrap());
    }
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    s.create(&format!("/many/{w}-{i}"), b("v"), None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut orders = Vec::new();
    for stream in &mut watchers {
        let mut revs = Vec::new();
        for _ in 0..200 {
            revs.push(next_event(stream).await.revision());
        }
        assert!(revs.windows(2).all(|w| w[0] < w[1]), "revision order");
        orders.push(revs);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]));
}

async fn compacted_history_is_a_distinct_error(f: Fixture) {
    let s = &f.store;
    let first = s.create("/c/a", b("1"), None).await.unwrap();
    let mut rev = first.mod_revision;
    for i in 2..10 {
        rev = s
            .update("/c/a", b(&i.to_string()), rev, None)
            .await
            .unwrap()
            .mod_revision;
    }
    let kept = s.create("/c/b", b("b"), None).await.unwrap();
    s.compact(kept.mod_revision).await.unwrap();

    let err = match s.watch("/c/", first.mod_revision).await {
        Ok(mut stream) => stream.next().await.unwrap().unwrap_err(),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Compacted { .. }), "{err}");
    let err = s
        .list(
            "/c/",
            ListOptions {
                revision: Some(first.mod_revision),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err}");

    // The latest state survives compaction, and watching from it works.
    let listed = s.list("/c/", ListOptions::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(listed.items[0].value, b("9"));
    let mut stream = s.watch("/c/", kept.mod_revision).await.unwrap();
    let d = s.create("/c/d", b("d"), None).await.unwrap();
    assert_eq!(next_event(&mut stream).await.kv, d);
    // Compacting again to an older revision is harmless.
    s.compact(first.mod_revision).await.unwrap();
}

async fn keys_with_a_ttl_expire_with_a_delete_event(f: Fixture) {
    let s = &f.store;
    let from = s.current_revision().await.unwrap();
    let mut stream = s.watch("/events/", from).await.unwrap();
    let kv = s
        .create(
            "/events/default/e1",
            b("event"),
            Some(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    s.create("/events/default/keep", b("stays"), None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut stream).await.kv, kv);
    next_event(&mut stream).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let expired = loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the key expires within 30s")
            .unwrap()
            .unwrap();
        if item.kind == EventKind::Delete {
            break item;
        }
    };
    assert_eq!(expired.kv.key, "/events/default/e1");
    assert_eq!(expired.prev.map(|p| p.value), Some(b("event")));
    assert_eq!(s.get("/events/default/e1").await.unwrap(), None);
    assert!(s.get("/events/default/keep").await.unwrap().is_some());
}

async fn concurrent_cas_writers_never_lose_an_update(f: Fixture) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 40;
    let s = f.store.clone();
    s.create("/counter", b("0"), None).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let s: Arc<dyn Store> = s.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..INCREMENTS {
                    loop {
                        let kv = s.get("/counter").await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                        match s
                            .update("/counter", b(&(n + 1).to_string()), kv.mod_revision, None)
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let kv = s.get("/counter").await.unwrap().unwrap();
    assert_eq!(kv.value, b(&(TASKS * INCREMENTS).to_string()));
    eprintln!("{conflicts} conflicts retried");
}

async fn oversized_values_are_rejected(f: Fixture) {
    let s = &f.store;
    let big = Bytes::from(vec![b'x'; MAX_VALUE_BYTES + 1]);
    let err = s.create("/big", big.clone(), None).await.unwrap_err();
    assert!(matches!(err, StoreError::ValueTooLarge { .. }), "{err}");
    assert_eq!(s.get("/big").await.unwrap(), None);
    let kv = s.create("/big", b("small"), None).await.unwrap();
    let err = s
        .update("/big", big, kv.mod_revision, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ValueTooLarge { .. }), "{err}");
    // A large value within the limit round-trips.
    let large = Bytes::from(vec![b'y'; 1024 * 1024]);
    s.update("/big", large.clone(), kv.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(s.get("/big").await.unwrap().unwrap().value, large);
}

async fn list_at_an_older_revision_shows_that_state(f: Fixture) {
    let s = &f.store;
    let a = s.create("/h/a", b("a1"), None).await.unwrap();
    let b1 = s.create("/h/b", b("b1"), None).await.unwrap();
    let at = b1.mod_revision;
    s.update("/h/a", b("a2"), a.mod_revision, None)
        .await
        .unwrap();
    s.delete("/h/b", None).await.unwrap();
    s.create("/h/c", b("c1"), None).await.unwrap();
    let old = s
        .list(
            "/h/",
            ListOptions {
                revision: Some(at),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(old.revision, at);
    assert_eq!(old.items, vec![a, b1]);
    let err = s
        .list(
            "/h/",
            ListOptions {
                revision: Some(at + 1000),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err}");
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::common::sqlite().await).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::common::etcd().await).await;
                }
            )*
        }
    };
}

conformance!(
    create_get_update_delete,
    revisions_increase_with_every_write,
    list_and_count_respect_prefixes,
    paged_list_is_one_snapshot_while_writes_go_on,
    watch_replays_exactly_the_missing_events,
    many_watchers_see_the_same_order,
    compacted_history_is_a_distinct_error,
    keys_with_a_ttl_expire_with_a_delete_event,
    concurrent_cas_writers_never_lose_an_update,
    oversized_values_are_rejected,
    list_at_an_older_revision_shows_that_state,
);
