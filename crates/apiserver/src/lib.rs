//! skiff's Kubernetes API server: the only component that touches the
//! store. Every other component and every user talks to it over HTTPS.
//!
//! Start reading at [`ApiServer`] (startup: certificates, bootstrap objects,
//! listening), then `http.rs` (routing), then `registry/` (the one generic
//! code path that serves every resource in `resources.rs`).

mod allocator;
mod auth;
mod bootstrap;
mod crd;
mod discovery;
pub mod encryption;
mod http;
mod kubelet_client;
mod object;
mod openapi;
pub mod pki;
mod registry;
mod request;
mod resources;
mod serve;
mod status;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod watch_cache;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use skiff_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use allocator::Ranges;
pub use http::version_info;
pub use tls::UserInfo;

/// How to run the API server.
pub struct Config {
    /// Certificates and `admin.kubeconfig` live here.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// 6443 by default; 0 picks a free port (tests).
    pub https_port: u16,
    /// The address other hosts reach this server on (defaults to the host's
    /// primary address, else loopback).
    pub advertise_address: Option<IpAddr>,
    pub store: Arc<dyn Store>,
    pub ranges: Ranges,
    /// Upstream's `--token-auth-file` (static bearer tokens).
    pub token_auth_file: Option<PathBuf>,
    /// Upstream's EncryptionConfiguration: which resources are encrypted
    /// at rest, with which keys.
    pub encryption_provider_config: Option<PathBuf>,
}

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("--encryption-provider-config: {0}")]
    Encryption(#[from] encryption::ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("building the OpenAPI documents: {0}")]
    OpenApi(String),
    #[error("writing bootstrap objects: {0}")]
    Bootstrap(#[from] skiff_store::StoreError),
    #[error(transparent)]
    TokenFile(#[from] auth::token_file::TokenFileError),
    #[error(transparent)]
    SaKey(#[from] auth::sa_key::SaKeyError),
}

/// A bound, bootstrapped API server, ready to [`run`](ApiServer::run).
pub struct ApiServer {
    listener: TcpListener,
    authenticator: auth::Authenticator,
    openapi: skiff_openapi::OpenApi,
    tls: Arc<rustls::ServerConfig>,
    kubelet: Arc<kubelet_client::KubeletClient>,
    sa_key: Arc<auth::sa_key::SaKey>,
    /// The cluster CA (PEM), for legacy service account token Secrets.
    ca_pem: String,
    config: Config,
    pub local_addr: SocketAddr,
    pub kubeconfig: PathBuf,
}

/// The host's primary address: the source address of a route to a public
/// address (no packet is sent).
pub fn primary_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:1").ok()?;
    socket
        .local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

/// The kernel's host name (the default node name).
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

impl ApiServer {
    /// Creates or loads certificates, writes `admin.kubeconfig`, writes the
    /// bootstrap objects and binds the port.
    pub async fn bind(mut config: Config) -> Result<Self, ApiServerError> {
        if let Some(path) = &config.encryption_provider_config {
            let rules = encryption::load(path)?;
            config.store = Arc::new(encryption::EncryptedStore::new(config.store.clone(), rules));
        }
        let advertise = config
            .advertise_address
            .or_else(|| Some(config.bind_address).filter(|a| !a.is_unspecified()))
            .or_else(primary_address)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut ips = vec![advertise];
        if !config.bind_address.is_unspecified() {
            ips.push(config.bind_address);
        }
        let names: Vec<String> = host_name().into_iter().collect();
        let pki = pki::ClusterPki::load_or_create(&config.data_dir, &ips, &names)?;
        let tls = tls::server_config(&pki)?;
        let authenticator = auth::Authenticator::new(config.token_auth_file.as_deref())?;
        let kubelet = Arc::new(kubelet_client::KubeletClient::new(&pki)?);
        let sa_key = Arc::new(auth::sa_key::SaKey::load_or_create(
            &config.data_dir.join("tls"),
        )?);
        let addr = SocketAddr::new(config.bind_address, config.https_port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ApiServerError::Bind { addr, source })?;
        let client_host =
            if config.bind_address.is_unspecified() || config.bind_address.is_loopback() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                config.bind_address
            };
        let url = format!(
            "https://{}",
            SocketAddr::new(client_host, local_addr.port())
        );
        let kubeconfig = config.data_dir.join("admin.kubeconfig");
        pki.write_admin_kubeconfig(&kubeconfig, &url)?;
        let openapi = tokio::task::spawn_blocking(|| skiff_openapi::builtin().build())
            .await
            .map_err(|e| ApiServerError::OpenApi(e.to_string()))?
            .map_err(|e| ApiServerError::OpenApi(e.to_string()))?;
        let service_ip = config.ranges.api_service_ip().to_string();
        bootstrap::run(
            config.store.as_ref(),
            advertise,
            local_addr.port(),
            &service_ip,
            &pki.ca.cert_pem,
        )
        .await?;
        Ok(ApiServer {
            listener,
            authenticator,
            openapi,
            tls,
            kubelet,
            sa_key,
            ca_pem: pki.ca.cert_pem.clone(),
            config,
            local_addr,
            kubeconfig,
        })
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, ends
    /// watches and lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let store = self.config.store.clone();
        let resources = resources::ResourceTable::new(resources::builtin());
        let (cache, following) = loop {
            match watch_cache::WatchCache::start(
                store.clone(),
                &resources.snapshot(),
                shutdown.clone(),
            )
            .await
            {
                Ok(started) => break started,
                Err(e) => {
                    tracing::warn!(error = %e, "loading the watch cache failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        };
        let app = Arc::new(http::App {
            registry: registry::Registry {
                store: store.clone(),
                resources,
                allocator: allocator::Allocator::new(store, self.config.ranges.clone()),
                cache,
                openapi: openapi::Documents::new(self.openapi),
                shutdown: shutdown.clone(),
                kubelet: self.kubelet,
                sa_key: self.sa_key,
                ca_pem: Arc::new(self.ca_pem),
            },
            server_address: self.local_addr.to_string(),
            authenticator: self.authenticator,
            authorizer: auth::authorize::Authorizer::default(),
        });
        crd::sync(&app).await;
        let crds = tokio::spawn(crd::run(app.clone(), shutdown.clone()));
        let rbac = tokio::spawn(auth::authorize::follow(app.clone(), shutdown.clone()));
        tracing::info!(addr = %self.local_addr, "API server listening");
        serve::serve(self.listener, self.tls, http::router(app), shutdown).await;
        let _ = following.await;
        let _ = crds.await;
        let _ = rbac.await;
        tracing::info!("API server stopped");
    }
}
