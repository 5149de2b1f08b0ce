//! Per-node results remembered across attempts: PodTopologySpread counts,
//! in PreFilter, the pods matching a selector on every node, and with
//! thousands of bound pods walking them all for each attempt is most of
//! the scheduler's time. A node's result is reused while its generation
//! (bumped on any change to the node or its pods) is the same.
//! (Tried for InterPodAffinity's required terms too: with a few pods per
//! node and a new key per group of pods, the lookups cost more than the
//! walk — 123 → 104 pods/s at 5,000 nodes — so it is not used there.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Node name → (generation, result).
pub(crate) type PerNode<V> = HashMap<String, (u64, V)>;

/// At most this many keys (selectors, terms) are remembered (each holds
/// one entry per node); past it the memo starts over.
const MAX_SELECTORS: usize = 32;

pub(crate) struct CountMemo<V> {
    by_selector: Mutex<HashMap<String, Arc<PerNode<V>>>>,
}

impl<V> Default for CountMemo<V> {
    fn default() -> Self {
        CountMemo {
            by_selector: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> CountMemo<V> {
    /// What is remembered for `key`.
    pub fn get(&self, key: &str) -> Arc<PerNode<V>> {
        self.by_selector
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    }

    /// Remembers fresh results for `key`. Callers drop what [`get`]
    /// gave them first: an entry still shared is copied before it is
    /// changed.
    ///
    /// [`get`]: CountMemo::get
    pub fn put(&self, key: &str, fresh: Vec<(String, u64, V)>) {
        if fresh.is_empty() {
            return;
        }
        let Ok(mut map) = self.by_selector.lock() else {
            return;
        };
        if !map.contains_key(key) && map.len() >= MAX_SELECTORS {
            map.clear();
        }
        let counts = Arc::make_mut(map.entry(key.to_owned()).or_default());
        for (node, generation, n) in fresh {
            counts.insert(node, (generation, n));
        }
    }
}
