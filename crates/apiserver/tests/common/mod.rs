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
