//! `/healthz` (upstream's proxier health JSON) and `/metrics` (Prometheus
//! text, rendered by hand).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::ProxyError;

/// Upper bounds of the sync duration histogram (upstream: exponential,
/// 1 ms doubling, 15 buckets).
fn buckets() -> impl Iterator<Item = f64> {
    (0..15).map(|i| 0.001 * f64::from(1u32 << i))
}

#[derive(Default)]
struct Inner {
    /// When rules were last known to match the cluster.
    last_updated: Option<(Instant, jiff::Timestamp)>,
    /// The oldest change not yet applied.
    queued: Option<Instant>,
    sync_counts: Vec<u64>,
    sync_sum: f64,
    sync_count: u64,
    failures: u64,
    rules: usize,
    elements: usize,
    last_sync_unix: f64,
}

/// What the sync loop reports and the HTTP endpoints show.
pub struct Health {
    timeout: Duration,
    inner: Mutex<Inner>,
}

impl Health {
    /// Unhealthy when a queued change waits longer than `timeout`
    /// (upstream: twice the sync period).
    pub fn new(timeout: Duration) -> Health {
        Health {
            timeout,
            inner: Mutex::new(Inner {
                sync_counts: vec![0; 15],
                ..Inner::default()
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> Option<R> {
        self.inner.lock().ok().map(|mut i| f(&mut i))
    }

    /// A change arrived that the rules do not reflect yet.
    pub fn queued(&self) {
        self.with(|i| {
            i.queued.get_or_insert_with(Instant::now);
        });
    }

    /// The rules match the cluster (synced, or nothing to change).
    pub fn updated(&self) {
        self.with(|i| {
            i.queued = None;
            i.last_updated = Some((Instant::now(), jiff::Timestamp::now()));
        });
    }

    /// A ruleset write took `took`.
    pub fn synced(&self, took: Duration, rules: usize, elements: usize) {
        let secs = took.as_secs_f64();
        self.with(|i| {
            for (n, upper) in buckets().enumerate() {
                if secs <= upper {
                    i.sync_counts[n] += 1;
                }
            }
            i.sync_sum += secs;
            i.sync_count += 1;
            i.rules = rules;
            i.elements = elements;
            i.last_sync_unix = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        });
    }

    pub fn failed(&self) {
        self.with(|i| i.failures += 1);
    }

    /// Healthy, and the JSON body (`lastUpdated`, `currentTime`,
    /// `nodeEligible`).
    pub fn check(&self) -> (bool, serde_json::Value) {
        let now = jiff::Timestamp::now();
        self.with(|i| {
            let healthy =
                i.last_updated.is_some() && i.queued.is_none_or(|q| q.elapsed() < self.timeout);
            let last = i
                .last_updated
                .map(|(_, t)| t.to_string())
                .unwrap_or_default();
            (
                healthy,
                serde_json::json!({
                    "lastUpdated": last,
                    "currentTime": now.to_string(),
                    "nodeEligible": true,
                }),
            )
        })
        .unwrap_or((false, serde_json::json!({})))
    }

    /// The Prometheus text exposition.
    pub fn metrics(&self) -> String {
        self.with(|i| {
            let mut s = String::new();
            let h = "kubeproxy_sync_proxy_rules_duration_seconds";
            let _ = writeln!(s, "# HELP {h} SyncProxyRules latency in seconds");
            let _ = writeln!(s, "# TYPE {h} histogram");
            for (n, upper) in buckets().enumerate() {
                let _ = writeln!(s, "{h}_bucket{{le=\"{upper}\"}} {}", i.sync_counts[n]);
            }
            let _ = writeln!(s, "{h}_bucket{{le=\"+Inf\"}} {}", i.sync_count);
            let _ = writeln!(s, "{h}_sum {}", i.sync_sum);
            let _ = writeln!(s, "{h}_count {}", i.sync_count);
            let g = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
            let _ = writeln!(
                s,
                "# HELP {g} The last time proxy rules were successfully synced"
            );
            let _ = writeln!(s, "# TYPE {g} gauge\n{g} {}", i.last_sync_unix);
            let r = "kubeproxy_sync_proxy_rules_nftables_rules";
            let _ = writeln!(
                s,
                "# HELP {r} Number of rules in the proxy's nftables chains after the last sync"
            );
            let _ = writeln!(s, "# TYPE {r} gauge\n{r} {}", i.rules);
            let e = "kubeproxy_sync_proxy_rules_nftables_elements";
            let _ = writeln!(
                s,
                "# HELP {e} Number of set and map elements after the last sync"
            );
            let _ = writeln!(s, "# TYPE {e} gauge\n{e} {}", i.elements);
            let f = "kubeproxy_sync_proxy_rules_nftables_sync_failures_total";
            let _ = writeln!(s, "# HELP {f} Number of failed nftables transactions");
            let _ = writeln!(s, "# TYPE {f} counter\n{f} {}", i.failures);
            s
        })
        .unwrap_or_default()
    }
}

async fn healthz(health: Arc<Health>) -> impl IntoResponse {
    let (ok, body) = health.check();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics(health: Arc<Health>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        health.metrics(),
    )
}

fn router(health: Arc<Health>) -> Router {
    let h1 = health.clone();
    let h2 = health.clone();
    Router::new()
        .route("/healthz", get(move || healthz(h1.clone())))
        .route("/livez", get(move || healthz(h2.clone())))
        .route("/metrics", get(move || metrics(health.clone())))
}

/// Binds `addr` and serves health and metrics until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ProxyError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ProxyError::Bind(addr, e))?;
    tracing::info!(%addr, "proxy health and metrics listening");
    Ok(tokio::spawn(async move {
        let app = router(health);
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            tracing::warn!(error = %e, "proxy health server failed");
        }
    }))
}
