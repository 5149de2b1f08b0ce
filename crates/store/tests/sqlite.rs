#![allow(clippy::unwrap_used)]
//! Behaviour specific to the embedded SQLite backend.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::next_event;
use futures::StreamExt;
use skiff_store::{ListOptions, SqliteConfig, SqliteStore, Store, StoreError};

#[tokio::test]
async fn state_and_revision_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::in_data_dir(dir.path());
    let store = SqliteStore::open(config.clone()).await.unwrap();
    let a = store.create("/a", Bytes::from("1"), None).await.unwrap();
    let a2 = store
        .update("/a", Bytes::from("2"), a.mod_revision, None)
        .await
        .unwrap();
    store.create("/b", Bytes::from("b"), None).await.unwrap();
    let gone = store.delete("/b", None).await.unwrap();
    drop(store);

    let store = SqliteStore::open(config).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), gone.revision);
    assert_eq!(store.get("/a").await.unwrap(), Some(a2.clone()));
    assert_eq!(store.get("/b").await.unwrap(), None);
    // History from before the restart can still be watched.
    let mut stream = store.watch("/", a.mod_revision).await.unwrap();
    assert_eq!(next_event(&mut stream).await.kv, a2);
    let next = store.create("/c", Bytes::new(), None).await.unwrap();
    assert_eq!(next.mod_revision, gone.revision + 1);
}

#[tokio::test]
async fn a_corrupt_database_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let garbage = b"this is not a sqlite database, it is garbage ".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = SqliteStore::open(SqliteConfig::at(path.clone()))
        .await
        .err()
        .expect("opening garbage must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("state.db"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file was modified"
    );
}

#[tokio::test]
async fn damaged_pages_are_detected_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(SqliteConfig::at(path.clone()))
            .await
            .unwrap();
        for i in 0..300 {
            store
                .create(&format!("/k/{i:04}"), Bytes::from(vec![b'v'; 2000]), None)
                .await
                .unwrap();
        }
    }
    // Checkpoint the WAL into the main file, then scribble over its middle.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 8192] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = SqliteStore::open(SqliteConfig::at(path.clone()))
        .await
        .err()
        .expect("a damaged file must not open");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was modified"
    );
}

#[tokio::test]
async fn one_process_per_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::in_data_dir(dir.path());
    let _first = SqliteStore::open(config.clone()).await.unwrap();
    let err = SqliteStore::open(config)
        .await
        .err()
        .expect("second open must fail");
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_is_cut_off_and_never_blocks_writers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SqliteConfig::in_data_dir(dir.path());
    config.watch_queue = 16;
    let store = SqliteStore::open(config).await.unwrap();
    let mut slow = store.watch("/", 0).await.unwrap();
    // A reader that keeps up, and when cut off anyway (a busy machine)
    // watches again from its last revision, as the contract says: it still
    // sees every event exactly once, in order.
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut stream = store.watch("/", last).await.unwrap();
            while last < 3000 {
                match stream.next().await {
                    Some(Ok(event)) => {
                        assert_eq!(event.revision(), last + 1, "gap or repeat");
                        last = event.revision();
                    }
                    Some(Err(StoreError::WatchLagged)) => {
                        stream = store.watch("/", last).await.unwrap();
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            last
        })
    };
    // Writes complete although `slow` reads nothing.
    for i in 0..3000 {
        store
            .create(&format!("/k/{i}"), Bytes::from("v"), None)
            .await
            .unwrap();
    }
    assert_eq!(reader.await.unwrap(), 3000);
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match slow.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Some(e),
                None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(outcome, Some(StoreError::WatchLagged)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn compaction_keeps_the_latest_state_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::in_data_dir(dir.path());
    let store = SqliteStore::open(config.clone()).await.unwrap();
    let mut rev = store
        .create("/x", Bytes::from("0"), None)
        .await
        .unwrap()
        .mod_revision;
    for i in 1..=12_000 {
        rev = store
            .update("/x", Bytes::from(i.to_string()), rev, None)
            .await
            .unwrap()
            .mod_revision;
    }
    store.create("/y", Bytes::from("y"), None).await.unwrap();
    store.delete("/y", None).await.unwrap();
    store.compact(rev).await.unwrap();
    drop(store);
    let store = SqliteStore::open(config).await.unwrap();
    let listed = store.list("/", ListOptions::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].value, Bytes::from("12000"));
    let err = store.watch("/", rev - 1).await.err().expect("compacted");
    assert!(matches!(err, StoreError::Compacted { .. }), "{err}");
    // Listing exactly at the compacted revision still works.
    let at = store
        .list(
            "/",
            ListOptions {
                revision: Some(rev),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at.items.len(), 1);
}

#[tokio::test]
async fn a_watch_replays_long_histories_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path()))
        .await
        .unwrap();
    for i in 0..2500 {
        store
            .create(&format!("/k/{i:05}"), Bytes::new(), None)
            .await
            .unwrap();
        store
            .create(&format!("/other/{i:05}"), Bytes::new(), None)
            .await
            .unwrap();
    }
    let mut stream = store.watch("/k/", 0).await.unwrap();
    for i in 0..2500 {
        assert_eq!(next_event(&mut stream).await.kv.key, format!("/k/{i:05}"));
    }
}
