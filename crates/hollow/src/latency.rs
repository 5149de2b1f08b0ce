//! API call latencies as the hollow nodes see them, per verb: the client
//! side of upstream's `apiserver_request_duration_seconds`, for benchmarks
//! against servers that do not export it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// Latency samples (milliseconds) by verb (`create`, `patch`, `update`,
/// `delete`, `get`, ...).
#[derive(Default)]
pub struct Latencies {
    samples: Mutex<HashMap<&'static str, Vec<f32>>>,
}

/// A summary of one verb's samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Whether a verb changes state (upstream's SLO for mutating calls).
pub fn mutating(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete")
}

impl Latencies {
    pub fn record(&self, verb: &'static str, took: Duration) {
        if let Ok(mut samples) = self.samples.lock() {
            samples
                .entry(verb)
                .or_default()
                .push(took.as_secs_f32() * 1000.0);
        }
    }

    /// Drops every sample so far (to measure one phase only).
    pub fn clear(&self) {
        if let Ok(mut samples) = self.samples.lock() {
            samples.clear();
        }
    }

    /// p50 and p99 per verb.
    pub fn summary(&self) -> BTreeMap<String, Summary> {
        let Ok(samples) = self.samples.lock() else {
            return BTreeMap::new();
        };
        samples
            .iter()
            .map(|(verb, s)| ((*verb).to_owned(), summarize(s.clone())))
            .collect()
    }

    /// p50 and p99 over every mutating verb together.
    pub fn mutating_summary(&self) -> Summary {
        let Ok(samples) = self.samples.lock() else {
            return summarize(Vec::new());
        };
        summarize(
            samples
                .iter()
                .filter(|(verb, _)| mutating(verb))
                .flat_map(|(_, s)| s.iter().copied())
                .collect(),
        )
    }
}

fn summarize(mut s: Vec<f32>) -> Summary {
    s.sort_by(f32::total_cmp);
    let at = |q: f64| -> f64 {
        if s.is_empty() {
            return 0.0;
        }
        f64::from(s[((s.len() - 1) as f64 * q).round() as usize])
    };
    Summary {
        count: s.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_per_verb_and_for_mutating_calls() {
        let l = Latencies::default();
        for ms in 1..=100 {
            l.record("patch", Duration::from_millis(ms));
        }
        l.record("get", Duration::from_secs(5));
        let all = l.summary();
        assert_eq!(all["patch"].count, 100);
        assert!((all["patch"].p50_ms - 50.0).abs() < 1.5);
        assert!((all["patch"].p99_ms - 99.0).abs() < 1.5);
        // A slow read does not count against the mutating SLO.
        assert!(l.mutating_summary().p99_ms < 101.0);
        l.clear();
        assert!(l.summary().is_empty());
    }
}
