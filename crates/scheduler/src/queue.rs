//! The scheduling queue: pending pods ordered by priority (highest first)
//! then arrival, with per-pod exponential backoff after a failed attempt
//! (1 s doubling to 10 s). A pod that did not fit is parked until the
//! cluster changes (a node, or a pod leaving a node) or its flush time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Parked pods are retried at least this often (upstream: 5 min).
pub const PARKED_FLUSH: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Entry {
    priority: i32,
    seq: u64,
    attempts: u32,
    /// Not before this instant (backoff).
    ready_at: Instant,
    /// Waiting for a cluster change (or `flush_at`).
    parked: bool,
    flush_at: Instant,
    in_flight: bool,
}

/// Pods by `namespace/name`.
#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    seq: u64,
}

/// Backoff after `attempts` failures: 1 s, 2 s, 4 s, 8 s, 10 s, ...
pub fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

impl Queue {
    /// Adds a pending pod (or updates its priority), keeping its backoff.
    pub fn add(&mut self, key: &str, priority: i32, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.priority = priority;
            return;
        }
        self.seq += 1;
        self.entries.insert(
            key.to_owned(),
            Entry {
                priority,
                seq: self.seq,
                attempts: 0,
                ready_at: now,
                parked: false,
                flush_at: now,
                in_flight: false,
            },
        );
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn ready(e: &Entry, now: Instant) -> bool {
        !e.in_flight && now >= e.ready_at && (!e.parked || now >= e.flush_at)
    }

    /// The highest-priority, oldest pod ready now; it stays in the queue,
    /// in flight, until [`Queue::done`] or [`Queue::failed`].
    pub fn pop(&mut self, now: Instant) -> Option<String> {
        let key = self
            .entries
            .iter()
            .filter(|(_, e)| Self::ready(e, now))
            .min_by_key(|(_, e)| (std::cmp::Reverse(e.priority), e.seq))
            .map(|(k, _)| k.clone())?;
        if let Some(e) = self.entries.get_mut(&key) {
            e.in_flight = true;
        }
        Some(key)
    }

    /// When the next pod becomes ready (for the scheduler to sleep until).
    pub fn next_ready(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| !e.in_flight)
            .map(|e| {
                if e.parked {
                    e.ready_at.max(e.flush_at)
                } else {
                    e.ready_at
                }
            })
            .min()
    }

    /// Scheduled (or gone): forget it.
    pub fn done(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Did not fit (`unschedulable`) or an error: back off; an
    /// unschedulable pod also waits for a cluster change.
    pub fn failed(&mut self, key: &str, unschedulable: bool, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.in_flight = false;
            e.attempts += 1;
            e.ready_at = now + backoff(e.attempts);
            e.parked = unschedulable;
            e.flush_at = now + PARKED_FLUSH;
        }
    }

    /// Something changed that may make parked pods fit: they become
    /// ready once their backoff ends.
    pub fn cluster_changed(&mut self) {
        for e in self.entries.values_mut() {
            e.parked = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_fifo() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a", 0, now);
        q.add("b", 10, now);
        q.add("c", 0, now);
        q.add("d", 10, now);
        let order: Vec<String> = std::iter::from_fn(|| {
            let k = q.pop(now)?;
            q.done(&k);
            Some(k)
        })
        .collect();
        assert_eq!(order, vec!["b", "d", "a", "c"]);
    }

    #[test]
    fn backoff_and_parking() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), Duration::from_secs(10));
        assert_eq!(backoff(40), Duration::from_secs(10));
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a", 0, now);
        assert_eq!(q.pop(now).as_deref(), Some("a"));
        assert_eq!(q.pop(now), None, "in flight");
        q.add("a", 0, now); // a watch event while in flight keeps it
        q.failed("a", true, now);
        assert_eq!(q.pop(now + Duration::from_secs(2)), None, "parked");
        q.cluster_changed();
        assert_eq!(q.pop(now + Duration::from_millis(500)), None, "backing off");
        assert_eq!(q.pop(now + Duration::from_secs(1)).as_deref(), Some("a"));
        q.failed("a", true, now);
        assert_eq!(
            q.pop(now + PARKED_FLUSH).as_deref(),
            Some("a"),
            "flushed after a while"
        );
        q.failed("a", false, now);
        assert_eq!(
            q.pop(now + Duration::from_secs(3)),
            None,
            "third backoff is 4 s"
        );
        assert_eq!(q.pop(now + Duration::from_secs(4)).as_deref(), Some("a"));
    }
}
