//! Creates and deletes a DaemonSet's last sync is still waiting to see in
//! the pod cache (upstream's ControllerExpectations): daemon pods have
//! generated names, so acting on a cache that has not caught up would
//! start a second pod on a node.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};

/// How long an unmet expectation holds a DaemonSet back.
pub const TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
struct Pending {
    /// Names of pods created and not yet seen.
    creates: HashSet<String>,
    /// Uids of pods deleted and still cached without a deletionTimestamp.
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// Per DaemonSet (`namespace/name`) pending creates and deletes.
#[derive(Default)]
pub struct Expectations {
    all: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> T) -> T {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut all)
    }

    /// Records a created pod's name.
    pub fn created(&self, key: &str, name: String) {
        self.with(|all| {
            let p = all.entry(key.to_owned()).or_default();
            p.since = Some(Instant::now());
            p.creates.insert(name);
        });
    }

    /// Records a deleted pod's uid.
    pub fn deleted(&self, key: &str, uid: String) {
        self.with(|all| {
            let p = all.entry(key.to_owned()).or_default();
            p.since = Some(Instant::now());
            p.deletes.insert(uid);
        });
    }

    /// A pod left the cache: neither kind of expectation waits for it.
    pub fn observe_gone(&self, key: &str, name: &str, uid: Option<&str>) {
        self.with(|all| {
            if let Some(p) = all.get_mut(key) {
                p.creates.remove(name);
                if let Some(uid) = uid {
                    p.deletes.remove(uid);
                }
            }
        });
    }

    /// Whether everything expected for `key` is in the cache `pods` (or
    /// timed out).
    pub fn satisfied(&self, key: &str, namespace: &str, pods: &Store<Pod>) -> bool {
        self.with(|all| {
            let Some(p) = all.get_mut(key) else {
                return true;
            };
            p.creates
                .retain(|name| pods.get(&ObjectRef::new(name).within(namespace)).is_none());
            if !p.deletes.is_empty() {
                let cached: HashSet<String> = pods
                    .state()
                    .iter()
                    .filter(|pod| pod.metadata.namespace.as_deref() == Some(namespace))
                    .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                    .filter_map(|pod| pod.metadata.uid.clone())
                    .collect();
                p.deletes.retain(|uid| cached.contains(uid));
            }
            let done = p.creates.is_empty() && p.deletes.is_empty();
            let expired = p.since.is_some_and(|s| s.elapsed() >= TIMEOUT);
            if done || expired {
                all.remove(key);
                return true;
            }
            false
        })
    }
}
