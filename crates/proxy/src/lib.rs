//! skiff's kube-proxy: turns Services and EndpointSlices into one
//! nftables table per address family, like upstream kube-proxy's
//! nftables mode, as an API client.
//!
//! Start reading at [`run`]: reflectors of Services, EndpointSlices and
//! this node's Node object feed [`model::State`] (plain structs); the pure
//! function [`ruleset::ruleset`] renders the whole table from it; an
//! [`nft::Applier`] writes it in one atomic `nft -f -` transaction
//! ([`nft::partial_transaction`]: only what changed). Syncs happen on changes (at most once per
//! `min_sync_period`, upstream's 1 s), every `sync_period` (skipped when
//! the generated text is unchanged) and every `full_sync_period` (always
//! rewritten, repairing a table someone else changed). [`server`] serves
//! `/healthz` and `/metrics`. After each sync, [`conntrack`] clears the UDP
//! conntrack entries the change made stale. [`cleanup`] (`--cleanup`) deletes the tables.

pub mod cidr;
pub mod conntrack;
pub mod model;
pub mod nft;
pub mod ruleset;
pub mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

pub use model::State;
pub use nft::{Applier, NftApplier, Recorder};
pub use server::Health;

/// What the proxy runs with.
#[derive(Clone)]
pub struct Config {
    /// The proxy's API client (its own identity).
    pub client: kube::Client,
    /// This node: its InternalIPs serve NodePorts, endpoints on it are
    /// local for the `Local` traffic policies.
    pub node_name: String,
    /// Pod CIDRs (upstream `--cluster-cidr`): ClusterIP traffic from
    /// elsewhere is masqueraded.
    pub cluster_cidrs: Vec<String>,
    /// Masquerade all ClusterIP traffic (upstream `--masquerade-all`).
    pub masquerade_all: bool,
    /// `/healthz` address; port 0 disables it (upstream 0.0.0.0:10256).
    pub healthz_address: IpAddr,
    pub healthz_port: u16,
    /// `/metrics` address; port 0 disables it (upstream 127.0.0.1:10249).
    pub metrics_address: IpAddr,
    pub metrics_port: u16,
    /// The least time between two syncs (upstream `--min-sync-period`).
    pub min_sync_period: Duration,
    /// Recompute the ruleset at least this often (upstream `--sync-period`).
    pub sync_period: Duration,
    /// Rewrite the ruleset even if unchanged this often.
    pub full_sync_period: Duration,
    /// Writes the ruleset; [`NftApplier`] unless testing.
    pub applier: Arc<dyn Applier>,
}

impl Config {
    pub fn new(client: kube::Client, node_name: &str) -> Config {
        Config {
            client,
            node_name: node_name.to_owned(),
            cluster_cidrs: vec!["10.42.0.0/16".to_owned()],
            masquerade_all: false,
            healthz_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            healthz_port: 10256,
            metrics_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            metrics_port: 10249,
            min_sync_period: Duration::from_secs(1),
            sync_period: Duration::from_secs(30),
            full_sync_period: Duration::from_secs(3600),
            applier: Arc::new(NftApplier::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
    #[error("running nft: {0}")]
    NftSpawn(std::io::Error),
    #[error("nft failed ({status}): {stderr}")]
    Nft { status: String, stderr: String },
    #[error("running conntrack: {0}")]
    ConntrackSpawn(std::io::Error),
    #[error("conntrack failed ({status}): {stderr}")]
    Conntrack { status: String, stderr: String },
    #[error("binding {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Deletes the proxy's nftables tables (`--cleanup`).
pub async fn cleanup() -> Result<(), ProxyError> {
    NftApplier::new().cleanup().await
}

fn watch_stream<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    reflector::reflector(writer, watcher(api, config).default_backoff()).boxed()
}

struct Caches {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
}

impl Caches {
    fn state(&self, config: &Config) -> State {
        let services = self.services.state();
        let slices = self.slices.state();
        let node = self
            .nodes
            .state()
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some(config.node_name.as_str()));
        State::from_objects(
            &config.node_name,
            node.as_deref(),
            &config.cluster_cidrs,
            config.masquerade_all,
            services.iter().map(|s| &**s),
            slices.iter().map(|s| &**s),
        )
    }
}

/// Keeps the node's nftables rules in step with the cluster until
/// `shutdown`. The tables stay in place when it returns (use [`cleanup`]).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ProxyError> {
    tracing::info!(node = %config.node_name, "proxy starting (nftables)");
    let health = Arc::new(Health::new(config.sync_period * 2));
    if config.healthz_port != 0 {
        server::serve(
            SocketAddr::new(config.healthz_address, config.healthz_port),
            health.clone(),
            shutdown.clone(),
        )
        .await?;
    }
    if config.metrics_port != 0 && config.metrics_port != config.healthz_port {
        server::serve(
            SocketAddr::new(config.metrics_address, config.metrics_port),
            health.clone(),
            shutdown.clone(),
        )
        .await?;
    }
    let (services, sw) = reflector::store::<Service>();
    let (slices, ew) = reflector::store::<EndpointSlice>();
    let (nodes, nw) = reflector::store::<Node>();
    let mut service_events = watch_stream(
        Api::<Service>::all(config.client.clone()),
        watcher::Config::default(),
        sw,
    );
    let mut slice_events = watch_stream(
        Api::<EndpointSlice>::all(config.client.clone()),
        watcher::Config::default().labels(model::SERVICE_NAME_LABEL),
        ew,
    );
    let mut node_events = watch_stream(
        Api::<Node>::all(config.client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", config.node_name)),
        nw,
    );
    let caches = Caches {
        services,
        slices,
        nodes,
    };
    let mut synced = [false; 3];
    let mut sync = Syncer {
        config: &config,
        health: &health,
        last_text: None,
        last_state: None,
        last_sync: None,
        last_full: Instant::now(),
        dirty: true,
        retry: None,
    };
    loop {
        let ready = synced.iter().all(|s| *s);
        let wake = sync.next_wake();
        tokio::select! {
            () = shutdown.cancelled() => {
                tracing::info!("proxy stopping");
                return Ok(());
            }
            e = service_events.try_next() => on_event(e, &mut synced[0], &mut sync, "services")?,
            e = slice_events.try_next() => on_event(e, &mut synced[1], &mut sync, "endpointslices")?,
            e = node_events.try_next() => on_event(e, &mut synced[2], &mut sync, "nodes")?,
            () = tokio::time::sleep_until(wake.into()), if ready => {
                let state = caches.state(&config);
                sync.sync(&state).await;
            }
        }
    }
}

fn on_event<K>(
    event: Result<Option<watcher::Event<K>>, watcher::Error>,
    synced: &mut bool,
    sync: &mut Syncer<'_>,
    what: &'static str,
) -> Result<(), ProxyError> {
    match event {
        Ok(Some(watcher::Event::InitDone)) => {
            *synced = true;
            sync.changed();
        }
        Ok(Some(watcher::Event::Init | watcher::Event::InitApply(_))) => {}
        Ok(Some(watcher::Event::Apply(_) | watcher::Event::Delete(_))) => sync.changed(),
        Ok(None) => return Err(ProxyError::WatchEnded(what)),
        Err(e) => tracing::warn!(error = %e, "{what} watch failed; retrying"),
    }
    Ok(())
}

/// When and whether to write the ruleset.
struct Syncer<'a> {
    config: &'a Config,
    health: &'a Health,
    /// The text last written successfully.
    last_text: Option<String>,
    /// The state in effect in the kernel (rules written, stale conntrack
    /// entries cleared): what the next sync's stale entries are computed
    /// against.
    last_state: Option<State>,
    last_sync: Option<Instant>,
    last_full: Instant,
    dirty: bool,
    /// Back-off after a failed write.
    retry: Option<Duration>,
}

impl Syncer<'_> {
    /// Clears the UDP conntrack entries that the move from the last state
    /// to `state` made stale (the rules for `state` are in place).
    async fn clear_stale_conntrack(&mut self, state: &State) {
        let empty = State::default();
        let flushes = conntrack::stale_udp(self.last_state.as_ref().unwrap_or(&empty), state);
        if !flushes.is_empty() {
            self.config.applier.flush_conntrack(&flushes).await;
        }
        self.last_state = Some(state.clone());
    }

    fn changed(&mut self) {
        self.dirty = true;
        self.health.queued();
    }

    fn next_wake(&self) -> Instant {
        let Some(last) = self.last_sync else {
            return Instant::now();
        };
        if let Some(retry) = self.retry {
            return last + retry;
        }
        if self.dirty {
            last + self.config.min_sync_period
        } else {
            last + self.config.sync_period.min(self.config.full_sync_period)
        }
    }

    async fn sync(&mut self, state: &State) {
        let now = Instant::now();
        self.last_sync = Some(now);
        self.dirty = false;
        let full = now.duration_since(self.last_full) >= self.config.full_sync_period;
        let rules = ruleset::build(state);
        let text = rules.to_string();
        if !full && self.last_text.as_deref() == Some(text.as_str()) {
            tracing::debug!("proxy rules unchanged");
            self.health.updated();
            self.clear_stale_conntrack(state).await;
            return;
        }
        let started = Instant::now();
        let applied = if full {
            self.config.applier.apply_full(&rules).await
        } else {
            self.config.applier.apply(&rules).await
        };
        match applied {
            Ok(()) => {
                let took = started.elapsed();
                let (n_rules, n_elements) = rules.counts();
                self.health.synced(took, n_rules, n_elements);
                self.health.updated();
                if full {
                    self.last_full = now;
                }
                tracing::info!(
                    services = state.services.len(),
                    rules = n_rules,
                    elements = n_elements,
                    took_ms = took.as_millis() as u64,
                    full,
                    "proxy rules synced"
                );
                self.last_text = Some(text);
                self.retry = None;
                self.clear_stale_conntrack(state).await;
            }
            Err(e) => {
                self.health.failed();
                self.dirty = true;
                let next = self
                    .retry
                    .map_or(self.config.min_sync_period, |r| r * 2)
                    .min(self.config.sync_period);
                tracing::warn!(error = %e, retry_in = ?next, "writing proxy rules failed");
                self.retry = Some(next);
                self.last_text = None;
            }
        }
    }
}
