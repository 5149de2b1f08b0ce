use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::Result;
use crate::types::{DeleteResult, Event, KeyValue, ListOptions, ListResult, Revision};

/// Events in revision order; ends with `Err(Compacted)` or `Err(WatchLagged)`
/// when the watcher must start over, or simply ends when the store shuts down.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// The contract between the API server and its storage: what the API server
/// needs from etcd, and nothing more.
///
/// Keys are `/`-separated paths (`/pods/default/web-0`); a "prefix" is a
/// byte-wise key prefix. Every successful write advances the single,
/// cluster-wide revision by one. An acknowledged write is durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, as one consistent snapshot.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult>;

    /// How many keys start with `prefix` now.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Creates `key`; fails with `AlreadyExists` if it is present. With a
    /// `ttl`, the key is deleted (with a watch event) once it expires.
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue>;

    /// Replaces `key` only if its mod revision is still `expected_mod_revision`
    /// (`Conflict` otherwise, `NotFound` if it is gone).
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue>;

    /// Deletes `key`, if given only at `expected_mod_revision`; returns what
    /// was deleted.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<DeleteResult>;

    /// Every change under `prefix` after `from_revision` (exclusive), in
    /// revision order: first replayed from history, then live. Fails with
    /// `Compacted` when that history is gone.
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream>;

    /// The revision of the latest write.
    async fn current_revision(&self) -> Result<Revision>;

    /// Whether `key`'s stored bytes should be rewritten even if its value
    /// is unchanged (encryption at rest: written with a key that is no
    /// longer the first). Plain stores never need it.
    async fn needs_rewrite(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }

    /// Forgets history at and before `revision`; the latest value of every
    /// key stays. Watches and lists from older revisions then fail with
    /// `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;
}
