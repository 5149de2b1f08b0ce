//! The watch cache: every object of every resource in memory, fed by one
//! store watch, with a window of recent events per resource. Lists and
//! watches are served from it; each event is decoded once and shared by
//! all watchers (thousands of watchers cost one channel slot each).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_store::{Event, EventKind, ListOptions, Store, StoreError};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::object;
use crate::resources::ResourceInfo;

/// Events kept per resource for watches that start in the past.
const HISTORY: usize = 10_000;
/// Events a watcher may fall behind before it is cut off (it re-watches
/// from its last revision and catches up from the history window). The
/// broadcast buffer is allocated up front for each resource, so it is kept
/// small.
const WATCHER_QUEUE: usize = 1024;

/// One change of one object, decoded once.
#[derive(Debug)]
pub struct CachedEvent {
    pub kind: EventKind,
    pub revision: i64,
    /// The new object, or for a delete the last state (with the deletion
    /// revision as its resourceVersion).
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    /// The JSON watch line per event type, serialized once for everyone.
    frames: [OnceLock<bytes::Bytes>; 3],
}

impl CachedEvent {
    /// `{"type":..,"object":..}\n` for ADDED, MODIFIED or DELETED.
    pub fn json_frame(&self, kind: &'static str) -> bytes::Bytes {
        let slot = match kind {
            "ADDED" => 0,
            "MODIFIED" => 1,
            _ => 2,
        };
        self.frames[slot]
            .get_or_init(|| {
                let mut line =
                    serde_json::json!({"type": kind, "object": &*self.object}).to_string();
                line.push('\n');
                bytes::Bytes::from(line)
            })
            .clone()
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<CachedEvent>>,
    /// History is complete for revisions after this one.
    history_from: i64,
}

/// The cache of one resource (all versions of it share one).
pub struct ResourceCache {
    pub r: ResourceInfo,
    state: RwLock<State>,
    events: RwLock<broadcast::Sender<Arc<CachedEvent>>>,
}

/// A live subscription plus the events it must replay first.
pub struct Subscription {
    pub replay: Vec<Arc<CachedEvent>>,
    pub live: broadcast::Receiver<Arc<CachedEvent>>,
}

impl ResourceCache {
    fn new(r: ResourceInfo) -> Self {
        ResourceCache {
            r,
            state: RwLock::new(State::default()),
            events: RwLock::new(broadcast::channel(WATCHER_QUEUE).0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The objects under `prefix` (a namespace, or all), in key order.
    pub fn snapshot(&self, prefix: &str) -> Vec<(String, Arc<Value>)> {
        let state = self.read();
        state
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The object at `key`, if cached.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.read().objects.get(key).cloned()
    }

    /// Subscribes to changes after `from`, or `None` if the window no
    /// longer reaches back that far (the caller falls back to the store).
    pub fn subscribe(&self, from: i64) -> Option<Subscription> {
        let state = self.read();
        if from < state.history_from {
            return None;
        }
        let live = self
            .events
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .subscribe();
        let replay = state
            .history
            .iter()
            .filter(|e| e.revision > from)
            .cloned()
            .collect();
        Some(Subscription { replay, live })
    }

    fn apply(&self, event: Arc<CachedEvent>, key: &str) {
        let mut state = self.write();
        match event.kind {
            EventKind::Put => {
                state.objects.insert(key.to_owned(), event.object.clone());
            }
            EventKind::Delete => {
                state.objects.remove(key);
            }
        }
        if state.history.len() >= HISTORY
            && let Some(oldest) = state.history.pop_front()
        {
            state.history_from = oldest.revision;
        }
        state.history.push_back(event.clone());
        // Sent under the state lock so subscribe() never misses or doubles one.
        let _ = self
            .events
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .send(event);
    }

    /// Replaces the contents after a relist; live watchers are ended (they
    /// re-watch and replay from the store if needed).
    fn reset(&self, objects: BTreeMap<String, Arc<Value>>, revision: i64) {
        let mut state = self.write();
        state.objects = objects;
        state.history.clear();
        state.history_from = revision;
        *self.events.write().unwrap_or_else(|e| e.into_inner()) =
            broadcast::channel(WATCHER_QUEUE).0;
    }
}

/// All resource caches and the revision they have caught up to.
pub struct WatchCache {
    /// Held to apply an event and publish its revision together, so a
    /// reader sees a snapshot and the revision it belongs to.
    epoch: RwLock<()>,
    caches: RwLock<Caches>,
    revision: watch::Receiver<i64>,
}

/// The caches by key prefix. Built-in resources have theirs from the
/// start; a custom resource's cache (`/<group>/<plural>/`, the group has a
/// dot) is made when its first object or watcher appears.
#[derive(Default)]
struct Caches {
    by_prefix: HashMap<String, Arc<ResourceCache>>,
    /// The revision of the last full load: history is complete from there
    /// for prefixes that had no cache yet.
    loaded_at: i64,
}

impl Caches {
    fn get(&self, prefix: &str) -> Option<&Arc<ResourceCache>> {
        self.by_prefix.get(prefix)
    }

    /// The cache of a custom resource prefix, made empty if new.
    fn custom(&mut self, prefix: &str) -> Option<Arc<ResourceCache>> {
        if let Some(cache) = self.by_prefix.get(prefix) {
            return Some(cache.clone());
        }
        let mut segments = prefix.trim_matches('/').split('/');
        let (Some(group), Some(plural), None) = (segments.next(), segments.next(), segments.next())
        else {
            return None;
        };
        if !group.contains('.') || plural.is_empty() {
            return None;
        }
        // Objects are stamped with their served version on the way out
        // (the placeholder version never matches one).
        let r = ResourceInfo {
            group: group.to_owned().into(),
            version: "".into(),
            kind: "".into(),
            list_kind: "".into(),
            plural: plural.to_owned().into(),
            namespaced: true,
            verbs: &[],
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: &[],
            ttl: None,
            custom: None,
        };
        let cache = Arc::new(ResourceCache::new(r));
        cache.write().history_from = self.loaded_at;
        self.by_prefix.insert(prefix.to_owned(), cache.clone());
        Some(cache)
    }
}

impl WatchCache {
    /// Loads everything from the store and keeps following it until
    /// `shutdown`.
    pub async fn start(
        store: Arc<dyn Store>,
        resources: &[Arc<ResourceInfo>],
        shutdown: CancellationToken,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), StoreError> {
        let mut caches = Caches::default();
        for r in resources {
            caches
                .by_prefix
                .entry(r.key_prefix())
                .or_insert_with(|| Arc::new(ResourceCache::new(ResourceInfo::clone(r))));
        }
        let (tx, rx) = watch::channel(0);
        let cache = Arc::new(WatchCache {
            epoch: RwLock::new(()),
            caches: RwLock::new(caches),
            revision: rx,
        });
        let revision = cache.load(store.as_ref()).await?;
        let _ = tx.send(revision);
        let following = tokio::spawn(cache.clone().follow(store, revision, tx, shutdown));
        Ok((cache, following))
    }

    fn caches(&self) -> std::sync::RwLockReadGuard<'_, Caches> {
        self.caches.read().unwrap_or_else(|e| e.into_inner())
    }

    fn caches_mut(&self) -> std::sync::RwLockWriteGuard<'_, Caches> {
        self.caches.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cache holding `r`'s objects (made for a custom resource that has
    /// none yet).
    pub fn resource(&self, r: &ResourceInfo) -> Option<Arc<ResourceCache>> {
        let prefix = r.key_prefix();
        if let Some(cache) = self.caches().get(&prefix) {
            return Some(cache.clone());
        }
        self.caches_mut().custom(&prefix)
    }

    fn cache_for_key(&self, key: &str) -> Option<Arc<ResourceCache>> {
        // Keys are `/<resource>/...` or `/<group>/<resource>/...`.
        let mut slashes = key.match_indices('/').map(|(i, _)| i).skip(1);
        let first = slashes.next()?;
        let second = slashes.next();
        {
            let caches = self.caches();
            if let Some(cache) = caches.get(&key[..=first]) {
                return Some(cache.clone());
            }
            let second = second?;
            if let Some(cache) = caches.get(&key[..=second]) {
                return Some(cache.clone());
            }
        }
        self.caches_mut().custom(&key[..=second?])
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// The objects of `cache` under `prefix` and the revision they are the
    /// state at, read together.
    pub fn consistent_snapshot(
        &self,
        cache: &ResourceCache,
        prefix: &str,
    ) -> (Vec<(String, Arc<Value>)>, i64) {
        let _epoch = self.epoch.read().unwrap_or_else(|e| e.into_inner());
        (cache.snapshot(prefix), self.revision())
    }

    /// Waits until the cache reflects at least `revision` (at most `limit`).
    pub async fn wait_for(&self, revision: i64, limit: Duration) -> bool {
        let mut rx = self.revision.clone();
        tokio::time::timeout(limit, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    async fn load(&self, store: &dyn Store) -> Result<i64, StoreError> {
        let mut all: HashMap<String, BTreeMap<String, Arc<Value>>> = HashMap::new();
        let mut after = None;
        let mut revision = None;
        loop {
            let page = store
                .list(
                    "/",
                    ListOptions {
                        limit: Some(1000),
                        continue_after: after.clone(),
                        revision,
                    },
                )
                .await?;
            revision = Some(page.revision);
            for kv in &page.items {
                if let Some(cache) = self.cache_for_key(&kv.key)
                    && let Ok(obj) = object::decode(kv, &cache.r)
                {
                    all.entry(cache.r.key_prefix())
                        .or_default()
                        .insert(kv.key.clone(), Arc::new(obj));
                }
            }
            after = page.items.last().map(|kv| kv.key.clone());
            if !page.more() {
                break;
            }
        }
        let revision = revision.unwrap_or(0);
        let _epoch = self.epoch.write().unwrap_or_else(|e| e.into_inner());
        let mut caches = self.caches_mut();
        caches.loaded_at = revision;
        for (prefix, cache) in &caches.by_prefix {
            cache.reset(all.remove(prefix).unwrap_or_default(), revision);
        }
        Ok(revision)
    }

    fn decode(&self, cache: &ResourceCache, event: &Event) -> Option<CachedEvent> {
        let prev = event
            .prev
            .as_ref()
            .and_then(|kv| object::decode(kv, &cache.r).ok())
            .map(Arc::new);
        let object = match event.kind {
            EventKind::Put => Arc::new(object::decode(&event.kv, &cache.r).ok()?),
            EventKind::Delete => {
                let mut last = prev.as_deref()?.clone();
                object::stamp(&mut last, &cache.r, event.revision());
                Arc::new(last)
            }
        };
        Some(CachedEvent {
            kind: event.kind,
            revision: event.revision(),
            object,
            prev,
            frames: Default::default(),
        })
    }

    async fn follow(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        mut revision: i64,
        tx: watch::Sender<i64>,
        shutdown: CancellationToken,
    ) {
        loop {
            let mut stream = match store.watch("/", revision).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache lost its place; reloading");
                    revision = self.reload(store.as_ref(), &shutdown).await;
                    let _ = tx.send(revision);
                    continue;
                }
            };
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    () = shutdown.cancelled() => return,
                };
                match item {
                    Some(Ok(event)) => {
                        revision = event.revision();
                        let decoded = self.cache_for_key(&event.kv.key).and_then(|cache| {
                            let decoded = self.decode(&cache, &event)?;
                            Some((cache, decoded))
                        });
                        let _epoch = self.epoch.write().unwrap_or_else(|e| e.into_inner());
                        if let Some((cache, decoded)) = decoded {
                            cache.apply(Arc::new(decoded), &event.kv.key);
                        }
                        let _ = tx.send(revision);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watch cache fell behind the store; reloading");
                        revision = self.reload(store.as_ref(), &shutdown).await;
                        let _ = tx.send(revision);
                        break;
                    }
                    None => {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                }
            }
        }
    }

    async fn reload(&self, store: &dyn Store, shutdown: &CancellationToken) -> i64 {
        loop {
            match self.load(store).await {
                Ok(revision) => return revision,
                Err(e) => {
                    tracing::warn!(error = %e, "reloading the watch cache failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => return self.revision(),
                    }
                }
            }
        }
    }
}
