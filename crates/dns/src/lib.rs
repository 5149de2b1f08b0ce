//! skiff's cluster DNS: answers the Kubernetes DNS schema
//! (`<svc>.<ns>.svc.cluster.local` and friends) from an in-memory index of
//! Services and EndpointSlices, and forwards every other name to the
//! upstream resolvers, as CoreDNS's `kubernetes` and `forward` plugins do.
//!
//! Start reading at [`DnsServer`] (`server.rs`): it binds the sockets,
//! [`watch`] keeps an [`index::Index`] in step with the cluster through
//! reflectors, and [`handler`] answers each query from the index
//! ([`index::Index::lookup`], a pure function) or through
//! [`forward::Forwarder`] (upstream resolvers plus a TTL cache).
//! [`metrics`] serves `/metrics` and `/health`.

pub mod forward;
pub mod handler;
pub mod index;
pub mod metrics;
pub mod names;
pub mod resolv_conf;
pub mod server;
pub mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use server::DnsServer;

/// What the DNS server runs with.
#[derive(Clone)]
pub struct Config {
    /// The server's API client (its own identity; it needs list/watch on
    /// Services and EndpointSlices).
    pub client: kube::Client,
    /// Where to answer; UDP and TCP on each (default `0.0.0.0:53`).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (upstream's `--cluster-domain`, `cluster.local`).
    pub cluster_domain: String,
    /// Resolvers for every name outside the cluster (default: the
    /// `nameserver` lines of `/etc/resolv.conf`).
    pub upstreams: Vec<SocketAddr>,
    /// `/metrics` and `/health` (CoreDNS's `:9153`); `None` disables them.
    pub metrics_address: Option<SocketAddr>,
    /// How long to wait for one upstream before trying the next.
    pub forward_timeout: Duration,
    /// Forwarded answers are cached for their TTL, at most this many
    /// seconds (k3s's Corefile: `cache 30`).
    pub cache_max_ttl: u32,
    /// Idle TCP connections are closed after this long.
    pub tcp_timeout: Duration,
    /// How long to wait for the first lists before serving anyway.
    pub initial_sync_timeout: Duration,
}

impl Config {
    /// The defaults users know from CoreDNS in k3s.
    pub fn new(client: kube::Client) -> Config {
        Config {
            client,
            listen: vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53))],
            cluster_domain: "cluster.local".to_owned(),
            upstreams: resolv_conf::read_nameservers(Path::new(resolv_conf::RESOLV_CONF)),
            metrics_address: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9153))),
            forward_timeout: Duration::from_secs(2),
            cache_max_ttl: 30,
            tcp_timeout: Duration::from_secs(10),
            initial_sync_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the DNS server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid cluster domain {0:?}: {1}")]
    Domain(String, hickory_proto::ProtoError),
    #[error("no listen addresses")]
    NoListen,
    #[error("binding {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
    #[error("dns server: {0}")]
    Server(hickory_proto::ProtoError),
}

/// Binds and serves until `shutdown` (see [`DnsServer`] to learn the
/// bound ports first).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    DnsServer::bind(config).await?.run(shutdown).await
}
