//! Matching-pod counts per node remembered across attempts: PreFilter
//! counts the pods that match a constraint's selector on every node,
//! and with thousands of bound pods walking them all for each attempt is
//! most of the scheduler's time. A node's count is reused while its
//! generation (bumped on any change to the node or its pods) is the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Node name → (generation, matching pods).
pub(super) type NodeCounts = HashMap<String, (u64, i64)>;

/// At most this many selectors are remembered (each holds one entry per
/// node); past it the memo starts over.
const MAX_SELECTORS: usize = 32;

#[derive(Default)]
pub(super) struct CountMemo {
    by_selector: Mutex<HashMap<String, Arc<NodeCounts>>>,
}

impl CountMemo {
    /// What is remembered for `key` (namespace and selector).
    pub fn get(&self, key: &str) -> Arc<NodeCounts> {
        self.by_selector
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    }

    /// Remembers fresh counts for `key`.
    pub fn put(&self, key: &str, fresh: Vec<(String, u64, i64)>) {
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
