//! The kubelet's own HTTP API, as upstream: HTTPS on 10250 (mutual TLS:
//! client certificates signed by the cluster CA) serving `/healthz` and
//! `/containerLogs/{namespace}/{pod}/{container}` (what the API server's
//! `pods/log` proxies to), `/exec`, `/attach` and `/portForward` (its
//! `pods/exec`, `pods/attach`, `pods/portforward`; `streaming.rs`), and
//! plain-HTTP `/healthz` on 127.0.0.1:10248.
//!
//! Start at [`serve`]; the log reading is in `logs.rs`, the CRI log format
//! in `cri_log.rs`.

pub mod cri_log;
pub mod logs;
mod streaming;
mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::cri::Cri;
use logs::{LogError, LogOptions, RunningCheck};
pub use tls::Peer;

/// The kubelet's TLS material, as PEM: its serving certificate (SANs: node
/// name and addresses) and the CA client certificates must be signed by.
#[derive(Clone, Debug)]
pub struct KubeletTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

/// How the kubelet API runs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where 10250 listens (all addresses by default).
    pub bind_address: IpAddr,
    /// HTTPS API, 10250 by default.
    pub port: u16,
    /// Plain-HTTP `/healthz` on 127.0.0.1, 10248 by default; 0 disables it.
    pub healthz_port: u16,
    pub tls: KubeletTls,
    /// Where containers' CRI logs are (`/var/log/pods`).
    pub pod_log_dir: PathBuf,
    /// Tells whether a container still runs (`follow` ends when it stops)
    /// and serves exec, attach and port-forward; `None`: nothing is
    /// considered running and streaming is unavailable.
    pub cri: Option<Cri>,
    /// exec/attach/port-forward sessions with no traffic for this long are
    /// closed (upstream `--streaming-connection-idle-timeout`, 4 h).
    pub streaming_idle_timeout: Duration,
}

impl ServerConfig {
    /// Upstream's defaults: 0.0.0.0:10250, healthz on 127.0.0.1:10248.
    pub fn new(tls: KubeletTls, pod_log_dir: PathBuf, cri: Option<Cri>) -> Self {
        ServerConfig {
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 10250,
            healthz_port: 10248,
            tls,
            pod_log_dir,
            cri,
            streaming_idle_timeout: skiff_streaming::idle::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("kubelet TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How long in-flight requests get at shutdown (log streams end at once).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

struct App {
    pod_log_dir: PathBuf,
    /// exec, attach and port-forward ask it for streaming URLs.
    cri: Option<Cri>,
    streaming_idle_timeout: Duration,
    running: RunningCheck,
    shutdown: CancellationToken,
}

/// Serves the kubelet API until `shutdown` is cancelled.
pub async fn serve(config: ServerConfig, shutdown: CancellationToken) -> Result<(), ServerError> {
    let tls = tls::server_config(&config.tls)?;
    let addr = SocketAddr::new(config.bind_address, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let healthz = if config.healthz_port == 0 {
        None
    } else {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), config.healthz_port);
        Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?,
        )
    };
    let app = Arc::new(App {
        pod_log_dir: config.pod_log_dir,
        cri: config.cri.clone(),
        streaming_idle_timeout: config.streaming_idle_timeout,
        running: match config.cri {
            Some(cri) => RunningCheck::Cri(Box::new(cri)),
            None => RunningCheck::Never,
        },
        shutdown: shutdown.clone(),
    });
    let router = Router::new()
        .route("/healthz", get(healthz_ok))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(streaming::exec).post(streaming::exec),
        )
        .route(
            "/exec/{namespace}/{pod}/{uid}/{container}",
            get(streaming::exec).post(streaming::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(streaming::attach).post(streaming::attach),
        )
        .route(
            "/attach/{namespace}/{pod}/{uid}/{container}",
            get(streaming::attach).post(streaming::attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(streaming::port_forward_pod).post(streaming::port_forward_pod),
        )
        .route(
            "/portForward/{namespace}/{pod}/{uid}",
            get(streaming::port_forward_pod).post(streaming::port_forward_pod),
        )
        .with_state(app);
    tracing::info!(%addr, "kubelet API listening");
    let health = healthz.map(|listener| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let router = Router::new().route("/healthz", get(healthz_ok));
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        })
    });
    accept_loop(listener, TlsAcceptor::from(tls), router, shutdown).await;
    if let Some(health) = health {
        let _ = health.await;
    }
    Ok(())
}

async fn healthz_ok() -> &'static str {
    "ok"
}

fn text(status: u16, message: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

async fn container_logs(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !peer.may_read_logs() {
        return text(
            403,
            format!(
                "Forbidden (user={}, verb=get, resource=nodes, subresource=proxy)",
                peer.user
            ),
        );
    }
    let options = match LogOptions::from_query(&query, jiff::Timestamp::now()) {
        Ok(o) => o,
        Err(LogError { status, message }) => return text(status, message),
    };
    let dir = app.pod_log_dir.clone();
    let previous = options.previous;
    let located = tokio::task::spawn_blocking(move || {
        logs::locate(&dir, &namespace, &pod, &container, previous)
    })
    .await;
    let file = match located {
        Ok(Ok(file)) => file,
        Ok(Err(LogError { status, message })) => return text(status, message),
        Err(e) => return text(500, e.to_string()),
    };
    tracing::debug!(path = %file.path.display(), follow = options.follow, user = %peer.user, "serving container logs");
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(logs::stream(
        file,
        options,
        app.running.clone(),
        tx,
        app.shutdown.clone(),
    ));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    (
        [(http::header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response()
}

/// TLS handshakes (a verified client certificate is required), then
/// HTTP/1.1 or HTTP/2 with the client's identity in the request.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet API: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer_addr, error = %e, "kubelet API: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| Peer::from_certificate(cert.as_ref()))
                .unwrap_or_default();
            let service = hyper::service::service_fn(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(peer.clone());
                    router.clone().oneshot(request.map(Body::new))
                },
            );
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().writev(false);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer_addr, error = %e, "kubelet API: connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("kubelet API: some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
}
