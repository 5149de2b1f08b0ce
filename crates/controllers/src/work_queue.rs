//! The controllers' work queue of keys (`namespace/name`, or uids for the
//! garbage collector) like client-go's: a key is
//! queued at most once, never handed to two workers at the same time
//! (added again while being processed, it is queued again when done),
//! failures come back after an exponential backoff, and a key can be
//! queued after a delay.

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

    pub fn add(&self, key: String) {
        let mut q = self.lock();
        if !q.dirty.insert(key.clone()) {
            return;
        }
        if !q.processing.contains(&key) {
            q.order.push_back(key);
            drop(q);
            self.notify.notify_one();
        }
    }

    /// Queues `key` once `delay` has passed (unless shut down first).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn add_after(self: &Arc<Self>, key: String, delay: Duration, shutdown: &CancellationToken) {
        let queue = self.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(delay) => queue.add(key),
            }
        });
    }

    /// The next key, or `None` on shutdown. Call [`Queue::done`] after.
    pub async fn next(&self, shutdown: &CancellationToken) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.lock();
                if let Some(key) = q.order.pop_front() {
                    q.dirty.remove(&key);
                    q.processing.insert(key.clone());
                    if !q.order.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = notified => {}
            }
        }
    }

    /// Ends the processing of `key`: `ok` forgets its failures, else it
    /// comes back after a backoff (5 ms doubling, at most 30 s).
    pub fn done(self: &Arc<Self>, key: &str, ok: bool, shutdown: &CancellationToken) {
        let mut q = self.lock();
        q.processing.remove(key);
        let requeue = q.dirty.contains(key);
        if requeue {
            q.order.push_back(key.to_owned());
        }
        let delay = if ok {
            q.failures.remove(key);
            None
        } else {
            let n = q.failures.entry(key.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            Some(backoff(*n))
        };
        drop(q);
        if requeue {
            self.notify.notify_one();
        }
        if let Some(delay) = delay {
            self.add_after(key.to_owned(), delay, shutdown);
        }
    }
}

/// Runs `workers` tasks that take keys and call `sync` until `shutdown`:
/// `Ok(Some(delay))` queues the key again after `delay`, an error brings it
/// back after the failure backoff. Returns when every worker has stopped.
pub async fn run_workers<F, Fut, E>(
    queue: &Arc<Queue>,
    workers: usize,
    what: &'static str,
    shutdown: &CancellationToken,
    sync: F,
) where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Option<Duration>, E>> + Send,
    E: std::fmt::Display,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (queue, shutdown, sync) = (queue.clone(), shutdown.clone(), sync.clone());
        tasks.spawn(async move {
            while let Some(key) = queue.next(&shutdown).await {
                let ok = match sync(key.clone()).await {
                    Ok(Some(after)) => {
                        queue.add_after(key.clone(), after, &shutdown);
                        true
                    }
                    Ok(None) => true,
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "{what} sync failed; retrying");
                        false
                    }
                };
                queue.done(&key, ok, &shutdown);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn backoff(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(20));
    Duration::from_millis(ms).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_never_processed_twice_at_once() {
        let q = Arc::new(Queue::default());
        let stop = CancellationToken::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.next(&stop).await.as_deref(), Some("a"));
        q.add("a".into()); // while processing: held back
        assert_eq!(q.next(&stop).await.as_deref(), Some("b"));
        q.done("a", true, &stop);
        assert_eq!(q.next(&stop).await.as_deref(), Some("a"));
        q.done("a", false, &stop);
        let again = tokio::time::timeout(Duration::from_secs(5), q.next(&stop)).await;
        assert_eq!(again.ok().flatten().as_deref(), Some("a"));
        stop.cancel();
        assert_eq!(q.next(&stop).await, None);
    }
}
