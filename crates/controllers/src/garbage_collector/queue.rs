//! A work queue of uids like client-go's: an item is queued at most once,
//! never handed to two workers at the same time (added again while being
//! processed, it is queued again when done), and failures come back after
//! an exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Inner {
    order: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
}

#[derive(Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, uid: String) {
        let mut q = self.lock();
        if !q.dirty.insert(uid.clone()) {
            return;
        }
        if !q.processing.contains(&uid) {
            q.order.push_back(uid);
            drop(q);
            self.notify.notify_one();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next uid, or `None` on shutdown. Call [`Queue::done`] after.
    pub async fn next(&self, shutdown: &CancellationToken) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.lock();
                if let Some(uid) = q.order.pop_front() {
                    q.dirty.remove(&uid);
                    q.processing.insert(uid.clone());
                    if !q.order.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(uid);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = notified => {}
            }
        }
    }

    /// Ends the processing of `uid`: `ok` forgets its failures, else it
    /// comes back after a backoff (5 ms doubling, at most 30 s).
    pub fn done(self: &Arc<Self>, uid: &str, ok: bool, shutdown: &CancellationToken) {
        let mut q = self.lock();
        q.processing.remove(uid);
        let requeue = q.dirty.contains(uid);
        if requeue {
            q.order.push_back(uid.to_owned());
        }
        let delay = if ok {
            q.failures.remove(uid);
            None
        } else {
            let n = q.failures.entry(uid.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            Some(backoff(*n))
        };
        drop(q);
        if requeue {
            self.notify.notify_one();
        }
        if let Some(delay) = delay {
            let queue = self.clone();
            let uid = uid.to_owned();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(delay) => queue.add(uid),
                }
            });
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(20));
    Duration::from_millis(ms).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_item_is_queued_once_and_never_processed_twice_at_once() {
        let q = Arc::new(Queue::default());
        let stop = CancellationToken::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.len(), 2);
        assert_eq!(q.next(&stop).await.as_deref(), Some("a"));
        q.add("a".into()); // while processing: held back
        assert_eq!(q.next(&stop).await.as_deref(), Some("b"));
        assert!(q.is_empty());
        q.done("a", true, &stop);
        assert_eq!(q.next(&stop).await.as_deref(), Some("a"));
        q.done("a", true, &stop);
        q.done("b", true, &stop);
        stop.cancel();
        assert_eq!(q.next(&stop).await, None);
    }

    #[tokio::test]
    async fn failures_come_back() {
        let q = Arc::new(Queue::default());
        let stop = CancellationToken::new();
        q.add("a".into());
        assert_eq!(q.next(&stop).await.as_deref(), Some("a"));
        q.done("a", false, &stop);
        let again = tokio::time::timeout(Duration::from_secs(5), q.next(&stop)).await;
        assert_eq!(again.ok().flatten().as_deref(), Some("a"));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
