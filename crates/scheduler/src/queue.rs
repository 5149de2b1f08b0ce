//! The scheduling queue, as upstream's `PriorityQueue`: an active queue
//! ordered by priority (highest first) then arrival; a backoff queue
//! (exponential per pod, 1 s doubling to 10 s by default); unschedulable
//! pods parked until a cluster event that one of the plugins which
//! rejected them cares about (or a periodic flush); gated pods
//! (`schedulingGates`) held until their gates are gone.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Parked pods are retried at least this often (upstream: 5 min; shorter
/// here because not every event upstream watches — volumes, say — is).
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Where {
    Active,
    Backoff(Instant),
    Unschedulable {
        since: Instant,
        plugins: HashSet<&'static str>,
    },
    Gated,
    InFlight,
}

#[derive(Debug, Clone)]
struct Entry {
    priority: i32,
    seq: u64,
    attempts: u32,
    /// Hash of what scheduling reads from the pod (spec, labels): a
    /// status-only change (our own PodScheduled=False) does not retry it.
    fingerprint: u64,
    /// When the pod entered the queue (for the e2e duration metric).
    added: Instant,
    /// Not before this instant (backoff after the last failure).
    backoff_until: Instant,
    place: Where,
}

/// Pod counts per sub-queue (the `scheduler_pending_pods` gauge).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

/// Pods by `namespace/name`.
#[derive(Debug)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BTreeSet<(Reverse<i32>, u64, String)>,
    backoff: BTreeSet<(Instant, u64, String)>,
    unschedulable: BTreeSet<(Instant, u64, String)>,
    seq: u64,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for Queue {
    fn default() -> Self {
        Queue::new(INITIAL_BACKOFF, MAX_BACKOFF)
    }
}

impl Queue {
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Queue {
            entries: HashMap::new(),
            active: BTreeSet::new(),
            backoff: BTreeSet::new(),
            unschedulable: BTreeSet::new(),
            seq: 0,
            initial_backoff,
            max_backoff,
        }
    }

    /// Backoff after `attempts` failures: 1 s, 2 s, 4 s, 8 s, 10 s, ...
    pub fn backoff(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(16);
        (self.initial_backoff * (1u32 << shift)).min(self.max_backoff)
    }

    fn detach(&mut self, key: &str) {
        let Some(e) = self.entries.get(key) else {
            return;
        };
        match &e.place {
            Where::Active => {
                self.active
                    .remove(&(Reverse(e.priority), e.seq, key.to_owned()));
            }
            Where::Backoff(at) => {
                self.backoff.remove(&(*at, e.seq, key.to_owned()));
            }
            Where::Unschedulable { since, .. } => {
                self.unschedulable.remove(&(*since, e.seq, key.to_owned()));
            }
            Where::Gated | Where::InFlight => {}
        }
    }

    fn attach(&mut self, key: &str, place: Where) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        match &place {
            Where::Active => {
                self.active
                    .insert((Reverse(e.priority), e.seq, key.to_owned()));
            }
            Where::Backoff(at) => {
                self.backoff.insert((*at, e.seq, key.to_owned()));
            }
            Where::Unschedulable { since, .. } => {
                self.unschedulable.insert((*since, e.seq, key.to_owned()));
            }
            Where::Gated | Where::InFlight => {}
        }
        e.place = place;
    }

    /// Active, or backoff when the pod's backoff has not ended.
    fn requeue(&mut self, key: &str, now: Instant) {
        let Some(until) = self.entries.get(key).map(|e| e.backoff_until) else {
            return;
        };
        self.detach(key);
        if until > now {
            self.attach(key, Where::Backoff(until));
        } else {
            self.attach(key, Where::Active);
        }
    }

    /// A pending pod appeared or changed. `gated` when PreEnqueue says it
    /// must wait. A parked pod whose `fingerprint` changed is tried again.
    pub fn add(&mut self, key: &str, priority: i32, gated: bool, fingerprint: u64, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            let changed = e.fingerprint != fingerprint;
            e.fingerprint = fingerprint;
            let place = e.place.clone();
            if e.priority != priority {
                self.detach(key);
                if let Some(e) = self.entries.get_mut(key) {
                    e.priority = priority;
                }
                self.attach(key, place.clone());
            }
            match place {
                Where::InFlight => {}
                Where::Gated | Where::Active | Where::Backoff(_) | Where::Unschedulable { .. }
                    if gated =>
                {
                    self.detach(key);
                    self.attach(key, Where::Gated);
                }
                Where::Gated => self.requeue(key, now),
                Where::Unschedulable { .. } if changed => self.requeue(key, now),
                Where::Unschedulable { .. } | Where::Active | Where::Backoff(_) => {}
            }
            return;
        }
        self.seq += 1;
        self.entries.insert(
            key.to_owned(),
            Entry {
                priority,
                seq: self.seq,
                attempts: 0,
                fingerprint,
                added: now,
                backoff_until: now,
                place: Where::Gated,
            },
        );
        self.attach(key, if gated { Where::Gated } else { Where::Active });
    }

    pub fn remove(&mut self, key: &str) {
        self.detach(key);
        self.entries.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Popped and not yet done or failed (being scheduled or bound).
    pub fn in_flight(&self, key: &str) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.place == Where::InFlight)
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

    /// Moves pods whose backoff ended, and parked pods past the flush
    /// interval, to the active queue.
    fn flush(&mut self, now: Instant) {
        while let Some((at, _, key)) = self.backoff.first().cloned() {
            if at > now {
                break;
            }
            self.detach(&key);
            self.attach(&key, Where::Active);
        }
        while let Some((since, _, key)) = self.unschedulable.first().cloned() {
            if since + UNSCHEDULABLE_FLUSH > now {
                break;
            }
            self.requeue(&key, now);
        }
    }

    /// The highest-priority, oldest pod ready now; it stays known, in
    /// flight, until [`Queue::done`] or [`Queue::failed`].
    pub fn pop(&mut self, now: Instant) -> Option<String> {
        self.flush(now);
        let (_, _, key) = self.active.pop_first()?;
        if let Some(e) = self.entries.get_mut(&key) {
            e.place = Where::InFlight;
        }
        Some(key)
    }

    /// When something becomes ready (for the loop to sleep until).
    pub fn next_ready(&self) -> Option<Instant> {
        if !self.active.is_empty() {
            return Some(Instant::now());
        }
        let backoff = self.backoff.first().map(|(at, _, _)| *at);
        let flush = self
            .unschedulable
            .first()
            .map(|(since, _, _)| *since + UNSCHEDULABLE_FLUSH);
        match (backoff, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Scheduled (or gone): forget it; how long it waited since it was
    /// queued and how many attempts it took.
    pub fn done(&mut self, key: &str) -> Option<(Duration, u32)> {
        self.detach(key);
        let e = self.entries.remove(key)?;
        Some((e.added.elapsed(), e.attempts + 1))
    }

    /// The attempt failed: `rejected_by` holds the plugins that found no
    /// node (the pod parks until one of their events), `None` is an
    /// error (plain backoff).
    pub fn failed(&mut self, key: &str, rejected_by: Option<HashSet<&'static str>>, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.attempts += 1;
        let attempts = e.attempts;
        let until = now + self.backoff(attempts);
        if let Some(e) = self.entries.get_mut(key) {
            e.backoff_until = until;
        }
        self.detach(key);
        match rejected_by {
            Some(plugins) => self.attach(
                key,
                Where::Unschedulable {
                    since: now,
                    plugins,
                },
            ),
            None => self.attach(key, Where::Backoff(until)),
        }
    }

    /// A cluster event: parked pods rejected by a plugin for which
    /// `relevant(plugin)` holds go back (to backoff if theirs has not
    /// ended). An empty rejecting set (no plugin said why) always moves.
    pub fn on_event(&mut self, now: Instant, relevant: impl Fn(&str) -> bool) {
        let moving: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, _, key)| {
                self.entries.get(key).is_some_and(|e| match &e.place {
                    Where::Unschedulable { plugins, .. } => {
                        plugins.is_empty() || plugins.iter().any(|p| relevant(p))
                    }
                    _ => false,
                })
            })
            .map(|(_, _, key)| key.clone())
            .collect();
        for key in moving {
            self.requeue(&key, now);
        }
    }

    pub fn pending(&self) -> Pending {
        let mut p = Pending {
            active: self.active.len(),
            backoff: self.backoff.len(),
            unschedulable: self.unschedulable.len(),
            gated: 0,
        };
        p.gated = self
            .entries
            .values()
            .filter(|e| e.place == Where::Gated)
            .count();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&'static str]) -> Option<HashSet<&'static str>> {
        Some(names.iter().copied().collect())
    }

    #[test]
    fn priority_then_fifo() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a", 0, false, 0, now);
        q.add("b", 10, false, 0, now);
        q.add("c", 0, false, 0, now);
        q.add("d", 10, false, 0, now);
        let order: Vec<String> = std::iter::from_fn(|| {
            let k = q.pop(now)?;
            q.done(&k);
            Some(k)
        })
        .collect();
        assert_eq!(order, vec!["b", "d", "a", "c"]);
    }

    #[test]
    fn backoff_grows_and_caps() {
        let q = Queue::default();
        assert_eq!(q.backoff(1), Duration::from_secs(1));
        assert_eq!(q.backoff(2), Duration::from_secs(2));
        assert_eq!(q.backoff(4), Duration::from_secs(8));
        assert_eq!(q.backoff(5), Duration::from_secs(10));
        assert_eq!(q.backoff(40), Duration::from_secs(10));
    }

    #[test]
    fn parked_until_a_relevant_event_then_backoff() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a", 0, false, 0, now);
        assert_eq!(q.pop(now).as_deref(), Some("a"));
        assert_eq!(q.pop(now), None, "in flight");
        q.add("a", 0, false, 0, now); // a watch event while in flight keeps it
        q.failed("a", set(&["NodeResourcesFit"]), now);
        assert_eq!(q.pending().unschedulable, 1);
        assert_eq!(q.pop(now + Duration::from_secs(2)), None, "parked");
        q.on_event(now, |p| p == "TaintToleration");
        assert_eq!(q.pop(now + Duration::from_secs(2)), None, "not its plugin");
        q.on_event(now, |p| p == "NodeResourcesFit");
        assert_eq!(q.pending().backoff, 1);
        assert_eq!(q.pop(now + Duration::from_millis(500)), None, "backing off");
        assert_eq!(q.pop(now + Duration::from_secs(1)).as_deref(), Some("a"));
        q.failed("a", set(&["X"]), now);
        assert_eq!(
            q.pop(now + UNSCHEDULABLE_FLUSH).as_deref(),
            Some("a"),
            "flushed after a while"
        );
        q.failed("a", None, now);
        assert_eq!(
            q.pop(now + Duration::from_secs(3)),
            None,
            "third backoff is 4 s"
        );
        assert_eq!(q.pop(now + Duration::from_secs(4)).as_deref(), Some("a"));
        let (_, attempts) = q.done("a").expect("known");
        assert_eq!(attempts, 4);
    }

    #[test]
    fn gated_pods_wait_for_their_gates() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("g", 0, true, 0, now);
        assert_eq!(q.pending().gated, 1);
        assert_eq!(q.pop(now), None);
        q.add("g", 0, false, 0, now);
        assert_eq!(q.pop(now).as_deref(), Some("g"));
    }

    #[test]
    fn an_update_to_a_parked_pod_retries_it() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a", 0, false, 0, now);
        q.pop(now);
        q.failed("a", set(&["NodeAffinity"]), now);
        q.add("a", 0, false, 0, now + Duration::from_secs(5));
        assert_eq!(
            q.pop(now + Duration::from_secs(5)),
            None,
            "status-only change"
        );
        q.add("a", 5, false, 1, now + Duration::from_secs(5));
        assert_eq!(q.pop(now + Duration::from_secs(5)).as_deref(), Some("a"));
    }
}
