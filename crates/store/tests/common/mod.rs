//! Fixtures shared by the store's integration tests: a fresh store of each
//! backend, kept alive (with its temp dir or etcd process) by the fixture.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_store::{EtcdConfig, EtcdStore, Event, SqliteConfig, SqliteStore, Store, WatchStream};
use skiff_testkit::EtcdServer;

pub struct Fixture {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

pub async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path()))
        .await
        .expect("open sqlite store");
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

pub async fn etcd() -> Fixture {
    let server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("join")
        .expect("start etcd (apt-get install etcd-server)");
    let store = EtcdStore::connect(EtcdConfig::new(vec![server.client_url()]))
        .await
        .expect("connect to etcd");
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(server),
    }
}

/// The next event, failing the test if none arrives within 10 s.
pub async fn next_event(stream: &mut WatchStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10s")
        .expect("stream still open")
        .expect("event, not error")
}

/// Asserts that nothing arrives on the stream for a short while.
pub async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}
