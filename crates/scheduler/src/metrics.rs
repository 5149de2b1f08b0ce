//! The scheduler's Prometheus metrics, under upstream kube-scheduler's
//! names and labels so existing dashboards and alerts work, and the
//! `/metrics`, `/healthz`, `/livez`, `/readyz` endpoint ([`serve`]).
//!
//! [`Metrics`] is a cheap handle (clones share the same series): the
//! scheduling loop calls its plain methods; it never touches the
//! registry.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// The outcome of one scheduling attempt (upstream's `result` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// Bound (or assumed and sent to binding).
    Scheduled,
    /// No node fits; the pod waits for the cluster to change.
    Unschedulable,
    /// An internal or API error.
    Error,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Scheduled => "scheduled",
            AttemptResult::Unschedulable => "unschedulable",
            AttemptResult::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultProfile {
    result: String,
    profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Attempts {
    attempts: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueEvent {
    queue: String,
    event: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Counters are registered without `_total` (the library appends it to
/// samples); the Prometheus 0.0.4 text format wants it in `# HELP` and
/// `# TYPE` too, see [`Metrics::render`].
const COUNTERS: [&str; 3] = [
    "scheduler_schedule_attempts",
    "scheduler_preemption_attempts",
    "scheduler_queue_incoming_pods",
];

/// Handle to the scheduler's metrics; clones share the series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    schedule_attempts: Family<ResultProfile, Counter>,
    attempt_duration: HistogramFamily<ResultProfile>,
    pod_scheduling_duration: HistogramFamily<Attempts>,
    pending_pods: Family<QueueLabel, Gauge>,
    preemption_attempts: Counter,
    preemption_victims: Histogram,
    incoming_pods: Family<QueueEvent, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every series upstream registers (buckets as
    /// upstream's).
    pub fn new() -> Self {
        let schedule_attempts = Family::<ResultProfile, Counter>::default();
        let attempt_duration: HistogramFamily<ResultProfile> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 15)));
        let pod_scheduling_duration: HistogramFamily<Attempts> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 20)));
        let pending_pods = Family::<QueueLabel, Gauge>::default();
        let preemption_attempts = Counter::default();
        let preemption_victims = Histogram::new(exponential_buckets(1.0, 2.0, 7));
        let incoming_pods = Family::<QueueEvent, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
            schedule_attempts.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            attempt_duration.clone(),
        );
        registry.register(
            "scheduler_pod_scheduling_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue until it is bound; by the number of attempts.",
            pod_scheduling_duration.clone(),
        );
        registry.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
            pending_pods.clone(),
        );
        registry.register(
            "scheduler_preemption_attempts",
            "Total preemption attempts in the cluster till now",
            preemption_attempts.clone(),
        );
        registry.register(
            "scheduler_preemption_victims",
            "Number of selected preemption victims",
            preemption_victims.clone(),
        );
        registry.register(
            "scheduler_queue_incoming_pods",
            "Number of pods added to scheduling queues by event and queue type.",
            incoming_pods.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            schedule_attempts,
            attempt_duration,
            pod_scheduling_duration,
            pending_pods,
            preemption_attempts,
            preemption_victims,
            incoming_pods,
        }
    }

    /// One scheduling attempt of a pod of `profile` that took `seconds`.
    pub fn attempt(&self, result: AttemptResult, profile: &str, seconds: f64) {
        let labels = ResultProfile {
            result: result.as_str().to_owned(),
            profile: profile.to_owned(),
        };
        self.schedule_attempts.get_or_create(&labels).inc();
        self.attempt_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// A pod was bound after `attempts` attempts, `seconds` after it first
    /// entered the queue.
    pub fn pod_scheduled(&self, attempts: u32, seconds: f64) {
        self.pod_scheduling_duration
            .get_or_create(&Attempts {
                attempts: attempts.to_string(),
            })
            .observe(seconds);
    }

    /// The number of pods in a queue: "active", "backoff",
    /// "unschedulable" or "gated".
    pub fn pending(&self, queue: &str, n: i64) {
        self.pending_pods
            .get_or_create(&QueueLabel {
                queue: queue.to_owned(),
            })
            .set(n);
    }

    /// A preemption attempt that chose `victims` pods to evict.
    pub fn preemption(&self, victims: usize) {
        self.preemption_attempts.inc();
        self.preemption_victims.observe(victims as f64);
    }

    /// A pod entered `queue` because of `event` (upstream's event labels,
    /// e.g. "PodAdd", "NodeAdd", "ScheduleAttemptFailure").
    pub fn incoming(&self, queue: &str, event: &str) {
        self.incoming_pods
            .get_or_create(&QueueEvent {
                queue: queue.to_owned(),
                event: event.to_owned(),
            })
            .inc();
    }

    /// Every series in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) =
            prometheus_client::encoding::text::encode_registry(&mut text, &self.registry)
        {
            tracing::warn!(error = %e, "cannot encode the scheduler's metrics");
        }
        let mut out = String::with_capacity(text.len() + 64);
        for line in text.lines() {
            let fixed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                COUNTERS
                    .contains(&name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            match fixed {
                Some(l) => out.push_str(&l),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}

/// Serves `/metrics` and the health endpoints on `addr` until `shutdown`.
/// Plain HTTP (upstream serves HTTPS on 10259): the endpoint is meant for
/// a local scraper or probe.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    healthy: impl Fn() -> bool + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr().unwrap_or(addr), "scheduler metrics and health endpoint listening");
    axum::serve(listener, router(metrics, healthy))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The endpoint's routes (separate from [`serve`] for tests).
pub fn router(metrics: Metrics, healthy: impl Fn() -> bool + Send + Sync + 'static) -> Router {
    let healthy = Arc::new(healthy);
    let health = move || {
        let healthy = healthy.clone();
        async move {
            if healthy() {
                (StatusCode::OK, "ok")
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "unhealthy")
            }
        }
    };
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/healthz", get(health.clone()))
        .route("/livez", get(health.clone()))
        .route("/readyz", get(health))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn renders_upstream_names_in_prometheus_text() {
        let m = Metrics::new();
        m.attempt(AttemptResult::Scheduled, "default-scheduler", 0.003);
        m.clone()
            .attempt(AttemptResult::Unschedulable, "default-scheduler", 0.5);
        m.pod_scheduled(2, 1.5);
        m.pending("active", 3);
        m.pending("backoff", 1);
        m.preemption(2);
        m.incoming("active", "PodAdd");
        let text = m.render();
        let want = [
            "# TYPE scheduler_schedule_attempts_total counter",
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 1",
            "scheduler_schedule_attempts_total{result=\"unschedulable\",profile=\"default-scheduler\"} 1",
            "# TYPE scheduler_scheduling_attempt_duration_seconds histogram",
            "scheduler_scheduling_attempt_duration_seconds_bucket{le=\"0.004\",result=\"scheduled\",profile=\"default-scheduler\"} 1",
            "scheduler_scheduling_attempt_duration_seconds_count{result=\"unschedulable\",profile=\"default-scheduler\"} 1",
            "scheduler_pod_scheduling_duration_seconds_count{attempts=\"2\"} 1",
            "scheduler_pending_pods{queue=\"active\"} 3",
            "scheduler_pending_pods{queue=\"backoff\"} 1",
            "# TYPE scheduler_preemption_attempts_total counter",
            "scheduler_preemption_attempts_total 1",
            "scheduler_preemption_victims_sum 2.0",
            "scheduler_queue_incoming_pods_total{queue=\"active\",event=\"PodAdd\"} 1",
        ];
        for line in want {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("# EOF"));
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let m = Metrics::new();
        m.pending("gated", 4);
        let ok = Arc::new(AtomicBool::new(true));
        let shutdown = CancellationToken::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let task = tokio::spawn(serve(
            addr,
            m,
            {
                let ok = ok.clone();
                move || ok.load(Ordering::SeqCst)
            },
            shutdown.clone(),
        ));
        let get = |path: &'static str| async move {
            for _ in 0..50 {
                if let Ok(r) = raw_get(addr, path).await {
                    return r;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("no answer on {path}");
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{metrics}"
        );
        assert!(metrics.contains("scheduler_pending_pods{queue=\"gated\"} 4"));
        for path in ["/healthz", "/livez", "/readyz"] {
            assert!(get(path).await.starts_with("HTTP/1.1 200"), "{path}");
        }
        ok.store(false, Ordering::SeqCst);
        assert!(get("/healthz").await.starts_with("HTTP/1.1 500"));
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    /// A minimal HTTP/1.1 GET (the crate has no HTTP client).
    async fn raw_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok(out)
    }
}
