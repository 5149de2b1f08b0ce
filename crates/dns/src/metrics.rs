//! Query metrics and the HTTP endpoint that shows them: `/metrics` in
//! Prometheus text (rendered by hand) and `/health`. Counting is lock-free
//! (fixed arrays of atomics) so it costs nothing next to a query.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio_util::sync::CancellationToken;

const TYPES: [&str; 11] = [
    "A", "AAAA", "CNAME", "PTR", "SRV", "TXT", "SOA", "NS", "MX", "ANY", "other",
];
const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];
/// Upper bounds of the latency histogram (CoreDNS's: 0.25 ms doubling).
const BUCKETS: usize = 16;

fn bucket_bound(i: usize) -> f64 {
    0.000_25 * f64::from(1u32 << i)
}

fn type_slot(t: RecordType) -> usize {
    match t {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        RecordType::CNAME => 2,
        RecordType::PTR => 3,
        RecordType::SRV => 4,
        RecordType::TXT => 5,
        RecordType::SOA => 6,
        RecordType::NS => 7,
        RecordType::MX => 8,
        RecordType::ANY => 9,
        _ => 10,
    }
}

fn rcode_slot(r: ResponseCode) -> usize {
    match r {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        _ => 6,
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cluster index.
    Cluster,
    /// The forwarding cache.
    Cache,
    /// An upstream resolver.
    Upstream,
}

/// The DNS server's counters.
pub struct Metrics {
    responses: [[AtomicU64; RCODES.len()]; TYPES.len()],
    /// Counts per bucket (not cumulative), the last slot is +Inf.
    latency: [AtomicU64; BUCKETS + 1],
    latency_sum_us: AtomicU64,
    sources: [AtomicU64; 3],
    forward_failures: AtomicU64,
    index_names: AtomicU64,
    index_builds: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            responses: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_us: AtomicU64::new(0),
            sources: std::array::from_fn(|_| AtomicU64::new(0)),
            forward_failures: AtomicU64::new(0),
            index_names: AtomicU64::new(0),
            index_builds: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// One answered query.
    pub fn query(&self, qtype: RecordType, rcode: ResponseCode, source: Source, took: Duration) {
        self.responses[type_slot(qtype)][rcode_slot(rcode)].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let slot = (0..BUCKETS)
            .find(|i| secs <= bucket_bound(*i))
            .unwrap_or(BUCKETS);
        self.latency[slot].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        let source = match source {
            Source::Cluster => 0,
            Source::Cache => 1,
            Source::Upstream => 2,
        };
        self.sources[source].fetch_add(1, Ordering::Relaxed);
    }

    /// No upstream could answer a forwarded query.
    pub fn forward_failed(&self) {
        self.forward_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A new index with `names` names is in use.
    pub fn index_built(&self, names: usize) {
        self.index_names.store(names as u64, Ordering::Relaxed);
        self.index_builds.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of all counters.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP skiff_dns_responses_total Responses sent, by query type and rcode.\n");
        out.push_str("# TYPE skiff_dns_responses_total counter\n");
        for (t, row) in TYPES.iter().zip(&self.responses) {
            for (r, n) in RCODES.iter().zip(row) {
                let n = load(n);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "skiff_dns_responses_total{{type=\"{t}\",rcode=\"{r}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP skiff_dns_request_duration_seconds Time to answer a query.\n");
        out.push_str("# TYPE skiff_dns_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for i in 0..BUCKETS {
            cumulative += load(&self.latency[i]);
            let _ = writeln!(
                out,
                "skiff_dns_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                bucket_bound(i)
            );
        }
        cumulative += load(&self.latency[BUCKETS]);
        let _ = writeln!(
            out,
            "skiff_dns_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = load(&self.latency_sum_us) as f64 / 1e6;
        let _ = writeln!(out, "skiff_dns_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "skiff_dns_request_duration_seconds_count {cumulative}");
        out.push_str("# HELP skiff_dns_answers_total Answers by where they came from.\n");
        out.push_str("# TYPE skiff_dns_answers_total counter\n");
        for (name, n) in ["cluster", "cache", "upstream"].iter().zip(&self.sources) {
            let _ = writeln!(
                out,
                "skiff_dns_answers_total{{source=\"{name}\"}} {}",
                load(n)
            );
        }
        out.push_str(
            "# HELP skiff_dns_forward_failures_total Forwarded queries no upstream answered.\n",
        );
        out.push_str("# TYPE skiff_dns_forward_failures_total counter\n");
        let _ = writeln!(
            out,
            "skiff_dns_forward_failures_total {}",
            load(&self.forward_failures)
        );
        out.push_str("# HELP skiff_dns_index_names Names in the cluster record index.\n");
        out.push_str("# TYPE skiff_dns_index_names gauge\n");
        let _ = writeln!(out, "skiff_dns_index_names {}", load(&self.index_names));
        out.push_str("# HELP skiff_dns_index_builds_total Times the record index was rebuilt.\n");
        out.push_str("# TYPE skiff_dns_index_builds_total counter\n");
        let _ = writeln!(
            out,
            "skiff_dns_index_builds_total {}",
            load(&self.index_builds)
        );
        out
    }
}

/// Serves `/metrics` and `/health` on `listener` until `shutdown`.
pub fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
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
        .route("/health", get(|| async { "OK" }));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "dns metrics server failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histogram() {
        let m = Metrics::default();
        m.query(
            RecordType::A,
            ResponseCode::NoError,
            Source::Cluster,
            Duration::from_micros(100),
        );
        m.query(
            RecordType::AAAA,
            ResponseCode::NXDomain,
            Source::Upstream,
            Duration::from_secs(60),
        );
        let text = m.render();
        assert!(text.contains("skiff_dns_responses_total{type=\"A\",rcode=\"NOERROR\"} 1\n"));
        assert!(text.contains("skiff_dns_responses_total{type=\"AAAA\",rcode=\"NXDOMAIN\"} 1\n"));
        assert!(text.contains("skiff_dns_request_duration_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("skiff_dns_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("skiff_dns_request_duration_seconds_count 2\n"));
        assert!(text.contains("skiff_dns_answers_total{source=\"upstream\"} 1\n"));
    }
}
