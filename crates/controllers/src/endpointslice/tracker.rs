//! What this controller wrote and the slice cache has not shown yet, per
//! Service (upstream's endpointSliceTracker): a sync waits until the cache
//! has caught up with its own writes, so a slow watch cannot make it
//! create a slice twice or act on a stale one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a write may stay unobserved before it is forgotten.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Pending {
    /// slice name → resourceVersion written (`None`: deleted).
    slices: HashMap<String, Option<String>>,
    since: Option<Instant>,
}

#[derive(Default)]
pub struct Tracker {
    services: Mutex<HashMap<String, Pending>>,
}

/// Whether a cached resourceVersion is at least the one written (skiff's
/// are store revisions; others compare equal or not at all).
fn caught_up(cached: &str, written: &str) -> bool {
    match (cached.parse::<u64>(), written.parse::<u64>()) {
        (Ok(c), Ok(w)) => c >= w,
        _ => cached == written,
    }
}

impl Tracker {
    /// Records a write of `slice` (`None`: deleted) for the Service `key`.
    pub fn wrote(&self, key: &str, slice: &str, version: Option<String>) {
        let mut all = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = all.entry(key.to_owned()).or_default();
        pending.since = Some(Instant::now());
        pending.slices.insert(slice.to_owned(), version);
    }

    /// Whether the cache shows every write for `key`; `cached` gives a
    /// cached slice's resourceVersion by name.
    pub fn satisfied(&self, key: &str, cached: &dyn Fn(&str) -> Option<String>) -> bool {
        let mut all = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pending) = all.get_mut(key) else {
            return true;
        };
        pending
            .slices
            .retain(|name, written| match (cached(name), written) {
                (Some(have), Some(want)) => !caught_up(&have, want),
                (None, Some(_)) => true,
                (Some(_), None) => true,
                (None, None) => false,
            });
        let expired = pending.since.is_some_and(|s| s.elapsed() >= TIMEOUT);
        if pending.slices.is_empty() || expired {
            all.remove(key);
            return true;
        }
        false
    }

    pub fn forget(&self, key: &str) {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_cache() {
        let t = Tracker::default();
        t.wrote("ns/web", "web-a", Some("10".into()));
        t.wrote("ns/web", "web-b", None);
        let cache = |a: Option<&'static str>, b: bool| {
            move |name: &str| match name {
                "web-a" => a.map(str::to_owned),
                "web-b" if b => Some("3".to_owned()),
                _ => None,
            }
        };
        assert!(!t.satisfied("ns/web", &cache(None, true)));
        assert!(!t.satisfied("ns/web", &cache(Some("9"), true)));
        assert!(!t.satisfied("ns/web", &cache(Some("10"), true)));
        assert!(t.satisfied("ns/web", &cache(Some("10"), false)));
        assert!(t.satisfied("ns/other", &cache(None, true)));
    }
}
