#![allow(clippy::unwrap_used)]
//! Nothing acknowledged is ever lost: a writer process is killed with SIGKILL
//! at random moments, and every write it reported as acknowledged must be
//! there, intact, when the store is opened again.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use skiff_store::{EtcdConfig, EtcdStore, ListOptions, SqliteConfig, SqliteStore, Store};
use skiff_testkit::EtcdServer;

const ROUNDS: usize = 25;

fn value_for(key: &str) -> Bytes {
    // Must match src/bin/crash_writer.rs.
    let repeat = 1 + key.len() % 7 * 100;
    Bytes::from(format!("value-of-{key}-").repeat(repeat))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_write_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut rng = rand::rng();
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let prefix = format!("/crash/{round:02}/");
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .arg(&db)
            .arg(&prefix)
            .arg("16")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(key) => acked.lock().unwrap().push(key),
                        Err(_) => break,
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = std::mem::take(&mut *acked.lock().unwrap());

        let store = SqliteStore::open(SqliteConfig::at(db.clone()))
            .await
            .unwrap_or_else(|e| panic!("round {round}: store does not reopen after kill -9: {e}"));
        for key in &acked {
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged {key} lost"));
            assert_eq!(kv.value, value_for(key), "round {round}: {key} corrupted");
        }
        let listed = store.list(&prefix, ListOptions::default()).await.unwrap();
        assert!(listed.items.len() >= acked.len());
        // The store is usable after recovery: revisions keep increasing.
        let before = store.current_revision().await.unwrap();
        let kv = store
            .create(&format!("{prefix}after"), Bytes::new(), None)
            .await
            .unwrap();
        assert_eq!(kv.mod_revision, before + 1);
        total_acked += acked.len();
        drop(store);
    }
    eprintln!("{ROUNDS} kills, {total_acked} acknowledged writes, none lost");
    assert!(total_acked > 0, "the writer acknowledged nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_keeps_every_acknowledged_write_across_kill_9() {
    let mut server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .unwrap();
    let url = server.client_url();
    let mut rng = rand::rng();
    for round in 0..3 {
        let store = EtcdStore::connect(EtcdConfig::new(vec![url.clone()]))
            .await
            .unwrap();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (store, acked) = (store.clone(), acked.clone());
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/crash/{round}/{w}-{i:08}");
                        match store.create(&key, value_for(&key), None).await {
                            Ok(_) => acked.lock().unwrap().push(key),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..600))).await;
        server = tokio::task::spawn_blocking(move || {
            server.kill_and_restart().unwrap();
            server
        })
        .await
        .unwrap();
        for w in writers {
            w.abort();
            let _ = w.await;
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        let store = EtcdStore::connect(EtcdConfig::new(vec![url.clone()]))
            .await
            .unwrap();
        for key in &acked {
            let kv = store.get(key).await.unwrap();
            assert_eq!(
                kv.map(|kv| kv.value),
                Some(value_for(key)),
                "round {round}: {key}"
            );
        }
        assert!(!acked.is_empty(), "round {round}: nothing acknowledged");
    }
}
