//! Fan-out of committed events to live watchers, without ever blocking the
//! writer: each watcher has a bounded queue and is cut off when it is full.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::StoreError;
use crate::types::{Event, Revision};

/// How many events a watcher may fall behind before it is cut off.
pub(crate) const DEFAULT_WATCH_QUEUE: usize = 10_000;

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Event>,
    lagged: Arc<AtomicBool>,
}

struct HubState {
    watchers: Vec<Watcher>,
    /// Revision of the newest event handed to `publish`.
    last_published: Revision,
}

/// The live end of the event pipeline. The writer publishes each committed
/// batch here, in revision order, after the commit is durable.
pub(crate) struct WatchHub {
    state: Mutex<HubState>,
    queue: usize,
}

/// A live subscription: every event after `from` (the revision published
/// last when it was made), until it is cut off.
pub(crate) struct Subscription {
    pub from: Revision,
    rx: mpsc::Receiver<Event>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// The next live event; `Err(WatchLagged)` once cut off; `None` when the
    /// hub is gone.
    pub async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        match self.rx.recv().await {
            Some(event) => Some(Ok(event)),
            None if self.lagged.load(Ordering::Acquire) => Some(Err(StoreError::WatchLagged)),
            None => None,
        }
    }
}

impl WatchHub {
    pub fn new(current: Revision, queue: usize) -> Self {
        WatchHub {
            state: Mutex::new(HubState {
                watchers: Vec::new(),
                last_published: current,
            }),
            queue: queue.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding this lock cannot leave the state half-updated
        // in a way that matters (a watcher list), so recover from poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a watcher for `prefix`. Everything up to `Subscription::from`
    /// is already committed (read it from history); everything after it will
    /// arrive on the subscription.
    pub fn subscribe(&self, prefix: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut state = self.lock();
        state.watchers.push(Watcher {
            prefix: prefix.to_owned(),
            tx,
            lagged: lagged.clone(),
        });
        Subscription {
            from: state.last_published,
            rx,
            lagged,
        }
    }

    /// Hands committed events (in revision order) to every matching watcher.
    /// A watcher whose queue is full is dropped and told it lagged.
    pub fn publish(&self, events: &[Event]) {
        let Some(last) = events.last() else { return };
        let mut state = self.lock();
        state.last_published = last.revision();
        state.watchers.retain(|w| {
            for event in events.iter().filter(|e| e.kv.key.starts_with(&w.prefix)) {
                match w.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        w.lagged.store(true, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    /// Drops watchers whose receiver is gone, so idle prefixes do not pile up.
    pub fn prune(&self) {
        self.lock().watchers.retain(|w| !w.tx.is_closed());
    }

    /// Ends every live watch (the store is shutting down).
    pub fn close(&self) {
        self.lock().watchers.clear();
    }

    #[cfg(test)]
    fn watcher_count(&self) -> usize {
        self.lock().watchers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventKind, KeyValue};
    use bytes::Bytes;

    fn put(key: &str, rev: Revision) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value: Bytes::from_static(b"v"),
                create_revision: rev,
                mod_revision: rev,
            },
            prev: None,
        }
    }

    #[tokio::test]
    async fn delivers_matching_events_in_order() {
        let hub = WatchHub::new(0, 10);
        let mut sub = hub.subscribe("/a/");
        assert_eq!(sub.from, 0);
        hub.publish(&[put("/a/1", 1), put("/b/1", 2), put("/a/2", 3)]);
        assert_eq!(sub.next().await.unwrap().unwrap().revision(), 1);
        assert_eq!(sub.next().await.unwrap().unwrap().revision(), 3);
        assert_eq!(hub.subscribe("/").from, 3);
    }

    #[tokio::test]
    async fn full_queue_cuts_the_watcher_off_without_blocking() {
        let hub = WatchHub::new(0, 2);
        let mut sub = hub.subscribe("/");
        hub.publish(&[put("/1", 1), put("/2", 2), put("/3", 3)]);
        assert_eq!(hub.watcher_count(), 0);
        assert!(sub.next().await.unwrap().is_ok());
        assert!(sub.next().await.unwrap().is_ok());
        assert!(matches!(
            sub.next().await,
            Some(Err(StoreError::WatchLagged))
        ));
    }

    #[tokio::test]
    async fn dropped_receivers_are_pruned() {
        let hub = WatchHub::new(0, 2);
        drop(hub.subscribe("/"));
        hub.prune();
        assert_eq!(hub.watcher_count(), 0);
    }
}
