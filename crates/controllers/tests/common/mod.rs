//! An API server in this process, over a SQLite store in a temp dir.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use skiff_apiserver::{ApiServer, Config, Ranges};
use skiff_store::{SqliteConfig, SqliteStore, Store};
use tokio_util::sync::CancellationToken;

pub struct Running {
    pub client: kube::Client,
    pub store: Arc<dyn Store>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

pub async fn start(dir: &std::path::Path) -> Running {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteConfig::in_data_dir(dir))
            .await
            .unwrap(),
    );
    let server = ApiServer::bind(Config {
        data_dir: dir.to_owned(),
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        https_port: 0,
        advertise_address: None,
        store: store.clone(),
        ranges: Ranges::default(),
    })
    .await
    .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Running {
        client,
        store,
        shutdown,
        task,
    }
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

/// The controller manager (leader election on, quick resync) against
/// `client` until the returned token is cancelled.
pub fn start_controllers(client: kube::Client) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = skiff_controllers::Config::new(client);
    config.garbage_collector.resync = std::time::Duration::from_secs(1);
    config.garbage_collector.rediscover = std::time::Duration::from_secs(2);
    let token = CancellationToken::new();
    let task = tokio::spawn({
        let token = token.clone();
        async move {
            skiff_controllers::run(config, token).await.unwrap();
        }
    });
    (token, task)
}

/// Polls `check` every 50 ms for up to 15 s; panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
