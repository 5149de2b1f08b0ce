//! The listening side: [`DnsServer::bind`] takes the sockets (so tests
//! and callers learn the real ports before anything runs), and
//! [`DnsServer::run`] serves them with hickory's `ServerFuture` once the
//! index has its first contents.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use hickory_server::ServerFuture;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::forward::Forwarder;
use crate::handler::Handler;
use crate::index::{self, Index};
use crate::metrics::{self, Metrics};
use crate::watch::Watch;
use crate::{Config, Error};

/// How often to retry when the TCP port of a UDP socket bound to port 0
/// is already taken.
const BIND_ATTEMPTS: usize = 10;

/// A DNS server with its sockets bound, not yet answering.
pub struct DnsServer {
    config: Config,
    domain: hickory_proto::rr::Name,
    sockets: Vec<(UdpSocket, TcpListener)>,
    local_addrs: Vec<SocketAddr>,
    metrics_listener: Option<TcpListener>,
}

async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let bind_err = |e| Error::Bind(addr, e);
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await.map_err(bind_err)?;
        let tcp = TcpListener::bind(addr).await.map_err(bind_err)?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(addr).await.map_err(bind_err)?;
        let port = udp.local_addr().map_err(bind_err)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(bind_err(
        last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    ))
}

impl DnsServer {
    /// Binds UDP and TCP on every `config.listen` address (the same port
    /// for both when the port is 0) and the metrics address.
    pub async fn bind(config: Config) -> Result<DnsServer, Error> {
        let domain = index::domain_name(&config.cluster_domain)
            .map_err(|e| Error::Domain(config.cluster_domain.clone(), e))?;
        if config.listen.is_empty() {
            return Err(Error::NoListen);
        }
        let mut sockets = Vec::new();
        let mut local_addrs = Vec::new();
        for addr in &config.listen {
            let (udp, tcp) = bind_pair(*addr).await?;
            local_addrs.push(udp.local_addr().map_err(|e| Error::Bind(*addr, e))?);
            sockets.push((udp, tcp));
        }
        let metrics_listener = match config.metrics_address {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::Bind(addr, e))?,
            ),
            None => None,
        };
        Ok(DnsServer {
            config,
            domain,
            sockets,
            local_addrs,
            metrics_listener,
        })
    }

    /// The bound DNS addresses (UDP and TCP share each), in `listen` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The bound `/metrics` address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Answers queries until `shutdown`. Serving starts once Services and
    /// EndpointSlices are listed (queries wait in the socket buffers), or
    /// after `initial_sync_timeout` with whatever is known, as CoreDNS
    /// does, so that an unreachable API server does not stop forwarding.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let DnsServer {
            config,
            domain,
            sockets,
            local_addrs,
            metrics_listener,
        } = self;
        let metrics = Arc::new(Metrics::default());
        if let Some(listener) = metrics_listener {
            metrics::serve(listener, metrics.clone(), shutdown.clone());
        }
        let shared = Arc::new(RwLock::new(Arc::new(Index::empty(&domain, 1))));
        let mut watch = Watch::new(
            config.client.clone(),
            domain,
            shared.clone(),
            metrics.clone(),
        );
        let deadline = Instant::now() + config.initial_sync_timeout;
        while !watch.ready() {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(deadline.into()) => {
                    tracing::warn!("dns: serving before Services and EndpointSlices are listed");
                    break;
                }
                step = watch.step() => step?,
            }
        }
        let handler = Handler {
            index: shared,
            forwarder: Arc::new(Forwarder::new(
                config.upstreams.clone(),
                config.forward_timeout,
                config.cache_max_ttl,
            )),
            metrics,
        };
        let mut server = ServerFuture::new(handler);
        for (udp, tcp) in sockets {
            server.register_socket(udp);
            server.register_listener(tcp, config.tcp_timeout);
        }
        tracing::info!(
            listen = ?local_addrs,
            domain = %config.cluster_domain,
            upstreams = ?config.upstreams,
            "dns serving"
        );
        let result = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                step = watch.step() => if let Err(e) = step { break Err(e) },
            }
        };
        tracing::info!("dns stopping");
        server.shutdown_gracefully().await.map_err(Error::Server)?;
        result
    }
}
