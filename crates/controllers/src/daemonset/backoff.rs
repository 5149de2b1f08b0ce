//! Backoff for replacing failed daemon pods, per DaemonSet and node
//! (upstream's failedPodsBackoff: 1 s doubling to 15 min), so a node that
//! keeps rejecting the pod is not hot-looped.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const INITIAL: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(15 * 60);

/// Per key (`namespace/name/node`): the current delay and when it was set.
#[derive(Default)]
pub struct Backoff {
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Backoff {
    /// `Some(left)` while `key` is backing off; otherwise starts (or
    /// doubles) its delay and returns `None`: act now.
    pub fn try_act(&self, key: &str) -> Option<Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some((delay, since)) = entries.get(key) {
            let waited = now.duration_since(*since);
            if waited < *delay {
                return Some(*delay - waited);
            }
        }
        let next = entries.get(key).map_or(INITIAL, |(d, since)| {
            // A long quiet spell starts over (upstream's GC of entries).
            if now.duration_since(*since) > MAX * 2 {
                INITIAL
            } else {
                (*d * 2).min(MAX)
            }
        });
        entries.insert(key.to_owned(), (next, now));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_failure_waits() {
        let b = Backoff::default();
        assert_eq!(b.try_act("k"), None);
        assert!(b.try_act("k").is_some_and(|d| d <= INITIAL));
        assert_eq!(b.try_act("other"), None);
    }
}
