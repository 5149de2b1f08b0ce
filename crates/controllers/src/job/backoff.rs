//! The delay before a Job replaces failed pods: exponential in the failures
//! since the last success (upstream's backoff record), computed from the
//! pods themselves so it survives a restart.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::pods::{finish_time, phase};

/// How long to wait, from `now`, before creating pods again: `base ·
/// 2^(n-1)` (capped at `max`) after the last of `n` failures that followed
/// the last success; zero when there is none or the delay has passed.
pub fn remaining(pods: &[&Pod], base: Duration, max: Duration, now: Timestamp) -> Duration {
    let mut finished: Vec<(Timestamp, bool)> = pods
        .iter()
        .filter_map(|p| match phase(p) {
            Some("Succeeded") => Some((finish_time(p), true)),
            Some("Failed") => Some((finish_time(p), false)),
            _ => None,
        })
        .collect();
    finished.sort_by_key(|(t, _)| *t);
    let failures: Vec<Timestamp> = finished
        .iter()
        .rev()
        .take_while(|(_, ok)| !ok)
        .map(|(t, _)| *t)
        .collect();
    let Some(last) = failures.first() else {
        return Duration::ZERO;
    };
    let exponent = u32::try_from(failures.len() - 1)
        .unwrap_or(u32::MAX)
        .min(30);
    let delay = base.saturating_mul(1 << exponent).min(max);
    let elapsed_ms = now.as_millisecond() - last.as_millisecond();
    let elapsed = Duration::from_millis(u64::try_from(elapsed_ms).unwrap_or(0));
    delay.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(phase: &str, finished: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "finishedAt": finished}}}]},
        }))
        .unwrap()
    }

    #[test]
    fn doubles_per_failure_after_the_last_success() {
        let s = Duration::from_secs(10);
        let max = Duration::from_secs(360);
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let ok = pod("Succeeded", "2024-01-01T00:01:00Z");
        let f1 = pod("Failed", "2024-01-01T00:09:50Z");
        let f2 = pod("Failed", "2024-01-01T00:09:55Z");
        let old = pod("Failed", "2024-01-01T00:00:30Z");
        assert_eq!(remaining(&[], s, max, now), Duration::ZERO);
        assert_eq!(remaining(&[&ok], s, max, now), Duration::ZERO);
        // One failure: 10 s from 00:09:50.
        assert_eq!(remaining(&[&ok, &f1], s, max, now), Duration::ZERO);
        // Two: 20 s from 00:09:55.
        assert_eq!(
            remaining(&[&f1, &ok, &f2], s, max, now),
            Duration::from_secs(15)
        );
        // The failure before the success does not count.
        assert_eq!(
            remaining(&[&old, &ok, &f2], s, max, now),
            Duration::from_secs(5)
        );
        let many: Vec<Pod> = (0..10)
            .map(|_| pod("Failed", "2024-01-01T00:09:55Z"))
            .collect();
        let refs: Vec<&Pod> = many.iter().collect();
        assert_eq!(remaining(&refs, s, max, now), Duration::from_secs(355));
    }
}
