//! The newest version of each object a controller wrote, kept until its
//! watch cache catches up, so a sync never acts on state older than its
//! own last write (resourceVersions are store revisions here, so they
//! order writes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::{Resource, ResourceExt};

/// Objects written (by uid) that the cache may not show yet.
pub struct Newest<K> {
    written: Mutex<HashMap<String, Arc<K>>>,
}

impl<K> Default for Newest<K> {
    fn default() -> Self {
        Newest {
            written: Mutex::new(HashMap::new()),
        }
    }
}

fn revision<K: Resource>(k: &K) -> u64 {
    k.resource_version()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

impl<K: Resource> Newest<K> {
    /// `cached`, or the object written last if that is newer.
    pub fn get(&self, cached: Arc<K>) -> Arc<K> {
        let uid = cached.uid().unwrap_or_default();
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match written.get(&uid) {
            Some(w) if revision(w.as_ref()) > revision(cached.as_ref()) => w.clone(),
            Some(_) => {
                written.remove(&uid);
                cached
            }
            None => cached,
        }
    }

    /// Remembers what a write returned.
    pub fn wrote(&self, k: K) {
        let uid = k.uid().unwrap_or_default();
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid, Arc::new(k));
    }
}
