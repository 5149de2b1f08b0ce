//! An API server in the calling process, over a SQLite store in a temp
//! dir, with an admin `kube::Client` — for other crates' integration tests
//! (feature `testing`). Panics on setup failures: it only runs in tests.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use skiff_store::{SqliteConfig, SqliteStore, Store};
use tokio_util::sync::CancellationToken;

use crate::{ApiServer, Config, Ranges};

/// A running server; [`Running::stop`] shuts it down gracefully.
pub struct Running {
    pub client: kube::Client,
    pub store: Arc<dyn Store>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a server with its data in `dir`, on a free loopback port.
pub async fn start(dir: &std::path::Path) -> Running {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteConfig::in_data_dir(dir))
            .await
            .expect("opening the test store"),
    );
    let server = ApiServer::bind(Config {
        data_dir: dir.to_owned(),
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        https_port: 0,
        advertise_address: None,
        store: store.clone(),
        ranges: Ranges::default(),
        token_auth_file: None,
        encryption_provider_config: None,
    })
    .await
    .expect("binding the test API server");
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("reading the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a client config from the kubeconfig");
    let client = kube::Client::try_from(config).expect("a kube client");
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
        let _ = self.task.await;
    }
}

/// A JWT with `claims`, signed with the service account key of the server
/// whose data is in `dir` (to test expired or odd tokens).
pub fn sign_service_account_token(dir: &std::path::Path, claims: &serde_json::Value) -> String {
    crate::auth::sa_key::SaKey::load_or_create(&dir.join("tls"))
        .expect("loading the service account key")
        .sign(claims)
        .expect("signing")
}
