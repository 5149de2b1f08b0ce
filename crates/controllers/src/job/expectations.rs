//! What the controller waits to see in its pod cache before acting on a
//! Job again: pods it created and deleted (so a slow watch cannot cause
//! duplicate creates), and pods whose tracking finalizer it removed (so a
//! stale cache cannot count a pod twice).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};

use super::pods::has_tracking_finalizer;

/// How long an unmet expectation holds a Job back (upstream's
/// ExpectationsTimeout).
pub const TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// Per Job (by uid): the creates and deletes not yet observed; per pod (by
/// uid): finalizer removals not yet observed.
#[derive(Default)]
pub struct Expectations {
    pods: Mutex<HashMap<String, Pending>>,
    unfinalized: Mutex<HashSet<String>>,
}

impl Expectations {
    /// Ok when the Job's creates and deletes are all observed (or timed
    /// out), else how long until they time out.
    pub fn satisfied(&self, job: &str, ns: &str, cache: &Store<Pod>) -> Result<(), Duration> {
        let mut all = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = all.get_mut(job) else {
            return Ok(());
        };
        e.creates
            .retain(|name| cache.get(&ObjectRef::new(name).within(ns)).is_none());
        let present: HashMap<String, bool> = cache
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .filter_map(|p| {
                Some((
                    p.metadata.uid.clone()?,
                    p.metadata.deletion_timestamp.is_some(),
                ))
            })
            .collect();
        e.deletes
            .retain(|uid| present.get(uid).is_some_and(|deleting| !deleting));
        let waited = e.since.map_or(Duration::ZERO, |s| s.elapsed());
        if e.creates.is_empty() && e.deletes.is_empty() || waited >= TIMEOUT {
            all.remove(job);
            return Ok(());
        }
        Err(TIMEOUT - waited)
    }

    pub fn expect_creates(&self, job: &str, names: impl IntoIterator<Item = String>) {
        self.update(job, |e| e.creates.extend(names));
    }

    pub fn expect_deletes(&self, job: &str, uids: impl IntoIterator<Item = String>) {
        self.update(job, |e| e.deletes.extend(uids));
    }

    /// A delete that failed: stop waiting for it.
    pub fn delete_failed(&self, job: &str, uid: &str) {
        self.update(job, |e| {
            e.deletes.remove(uid);
        });
    }

    /// A pod deletion seen on the watch: whatever was expected of it is met.
    pub fn observe_deleted(&self, job: &str, pod: &Pod) {
        let mut all = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = all.get_mut(job) {
            e.creates
                .remove(pod.metadata.name.as_deref().unwrap_or_default());
            if let Some(uid) = &pod.metadata.uid {
                e.deletes.remove(uid);
            }
        }
    }

    fn update(&self, job: &str, f: impl FnOnce(&mut Pending)) {
        let mut all = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let e = all.entry(job.to_owned()).or_default();
        e.since = Some(Instant::now());
        f(e);
    }

    /// Pod uids whose finalizer removal the cache does not show yet (after
    /// dropping those it shows: gone, or without the finalizer).
    pub fn unfinalized(&self, cache: &Store<Pod>) -> HashSet<String> {
        let mut set = self
            .unfinalized
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !set.is_empty() {
            let holding: HashSet<String> = cache
                .state()
                .iter()
                .filter(|p| has_tracking_finalizer(p))
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            set.retain(|uid| holding.contains(uid));
        }
        set.clone()
    }

    pub fn expect_unfinalized(&self, uid: &str) {
        self.unfinalized
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_owned());
    }

    pub fn unfinalize_failed(&self, uid: &str) {
        self.unfinalized
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }
}
