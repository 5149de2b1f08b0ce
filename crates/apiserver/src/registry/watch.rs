//! watch: newline-delimited JSON events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR) after a resourceVersion. Served from the watch cache
//! (events decoded and serialized once for all watchers); a watch from
//! before the cache's window replays from the store instead, or gets 410.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use skiff_store::{EventKind, StoreError, WatchStream};
use tokio::sync::broadcast;

use super::output::{Output, metadata_only, negotiate, object_table};
use super::selection::Selection;
use super::{Query, Registry, Target};
use crate::object;
use crate::request::query_flag;
use crate::resources::ResourceInfo;
use crate::status::ApiError;
use crate::watch_cache::{CachedEvent, Subscription};

/// How often a bookmark is sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// How long a watch waits for the cache to reach its resourceVersion.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

fn frame(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark(r: &ResourceInfo, revision: i64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    frame(
        "BOOKMARK",
        &json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": metadata}),
    )
}

fn too_old(from: i64) -> Bytes {
    let status = ApiError::gone(format!("too old resource version: {from}")).to_status();
    frame("ERROR", &status)
}

/// What one watcher is sent, and how it is encoded.
struct Watcher {
    r: ResourceInfo,
    selection: Selection,
    /// Only objects of this namespace (namespaced watches).
    namespace: Option<String>,
    output: Output,
    /// Column definitions go with the first Table event only.
    first: bool,
    /// Objects are re-stamped when the client asked for another version
    /// than the cache holds.
    restamp: bool,
}

impl Watcher {
    fn in_scope(&self, obj: &Value) -> bool {
        match &self.namespace {
            Some(ns) => object::meta_str(obj, "namespace") == Some(ns.as_str()),
            None => true,
        }
    }

    /// The event type this watcher sees for a change from `prev` to `obj`:
    /// an object that stops matching is DELETED for it, one that starts
    /// matching is ADDED.
    fn classify(&self, kind: EventKind, obj: &Value, prev: Option<&Value>) -> Option<&'static str> {
        let matches = |o: &Value| self.in_scope(o) && self.selection.matches(o);
        let prev_matches = prev.is_some_and(matches);
        match kind {
            EventKind::Delete => prev_matches.then_some("DELETED"),
            EventKind::Put => match (prev_matches, matches(obj)) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }

    fn encode(&mut self, kind: &str, obj: &Value) -> Bytes {
        let restamped;
        let obj = if self.restamp {
            let mut copy = obj.clone();
            object::set_type(&mut copy, &self.r);
            restamped = copy;
            &restamped
        } else {
            obj
        };
        match self.output {
            Output::Json => frame(kind, obj),
            Output::Table(include) => {
                let table = object_table(&self.r, include, obj, self.first);
                self.first = false;
                frame(kind, &table)
            }
            Output::Metadata => frame(kind, &metadata_only(obj)),
        }
    }

    fn cached(&mut self, event: &CachedEvent) -> Option<Bytes> {
        let kind = self.classify(event.kind, &event.object, event.prev.as_deref())?;
        Some(match self.output {
            Output::Json if !self.restamp => event.json_frame(kind),
            _ => self.encode(kind, &event.object),
        })
    }

    fn stored(&mut self, event: &skiff_store::Event) -> Option<Bytes> {
        let (obj, prev) = object::decode_event(event, &self.r)?;
        let kind = self.classify(event.kind, &obj, prev.as_ref())?;
        Some(self.encode(kind, &obj))
    }
}

/// Where the events come from.
enum Source {
    Cache(Subscription),
    Store(WatchStream),
    /// The revision is gone: one ERROR event, then the end.
    Gone,
}

impl Registry {
    pub(super) async fn watch(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &http::HeaderMap,
    ) -> Result<Response, ApiError> {
        let cache = self
            .cache
            .resource(t.r)
            .ok_or_else(|| ApiError::internal("no watch cache for this resource"))?;
        let mut watcher = Watcher {
            r: t.r.clone(),
            selection: Selection::from_query(t.r, query, t.name.as_deref())?,
            namespace: t.namespace.clone().filter(|_| t.r.namespaced),
            output: negotiate(headers, query)?,
            first: true,
            restamp: cache.r.version != t.r.version,
        };
        let rv = query
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or("");
        let explicit_initial = query.get("sendInitialEvents").map(String::as_str);
        let send_initial = match explicit_initial {
            Some(v) => v == "true",
            None => rv.is_empty() || rv == "0",
        };
        let bookmarks = query_flag(query, "allowWatchBookmarks");
        let timeout = match query
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(rand::rng().random_range(1800..3600)),
        };

        let mut initial = Vec::new();
        let from = if send_initial {
            if rv.is_empty() {
                let current = self
                    .store
                    .current_revision()
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                self.cache.wait_for(current, FRESHNESS_WAIT).await;
            }
            let prefix = t.r.namespace_prefix(t.namespace.as_deref());
            let (objects, revision) = self.cache.consistent_snapshot(&cache, &prefix);
            for (_, obj) in &objects {
                if watcher.in_scope(obj) && watcher.selection.matches(obj) {
                    initial.push(watcher.encode("ADDED", obj));
                }
            }
            if explicit_initial == Some("true") {
                initial.push(bookmark(t.r, revision, true));
            }
            revision
        } else {
            let from = object::parse_revision(rv)?;
            self.cache.wait_for(from, FRESHNESS_WAIT).await;
            from
        };
        let source = match cache.subscribe(from) {
            Some(subscription) => Source::Cache(subscription),
            None => {
                let prefix = t.r.namespace_prefix(t.namespace.as_deref());
                match self.store.watch(&prefix, from).await {
                    Ok(stream) => Source::Store(stream),
                    Err(StoreError::Compacted { .. }) => Source::Gone,
                    Err(e) => return Err(ApiError::from_store(e, &t.subject())),
                }
            }
        };

        let (replay, live, stream) = match source {
            Source::Cache(sub) => (sub.replay, Some(sub.live), None),
            Source::Store(stream) => (Vec::new(), None, Some(stream)),
            Source::Gone => {
                initial.push(too_old(from));
                (Vec::new(), None, None)
            }
        };
        let gone = live.is_none() && stream.is_none();
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.reset();
        let state = WatchBody {
            watcher,
            initial: initial.into_iter(),
            replay: replay.into_iter(),
            live,
            stream,
            gone,
            last: from,
            bookmarks,
            tick,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            shutdown: self.shutdown.clone(),
        };
        // The response body polls the events itself: no task or channel
        // per watcher; a client that goes away drops it.
        let body = futures::stream::unfold(state, |mut state| async move {
            let line = state.next_line().await?;
            Some((Ok::<_, Infallible>(line), state))
        });
        Ok((
            [(http::header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response())
    }
}

/// One watch response body in progress.
struct WatchBody {
    watcher: Watcher,
    initial: std::vec::IntoIter<Bytes>,
    replay: std::vec::IntoIter<Arc<CachedEvent>>,
    live: Option<broadcast::Receiver<Arc<CachedEvent>>>,
    stream: Option<WatchStream>,
    /// Nothing follows the initial lines.
    gone: bool,
    last: i64,
    bookmarks: bool,
    tick: tokio::time::Interval,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    shutdown: tokio_util::sync::CancellationToken,
}

impl WatchBody {
    /// The next line to send; `None` ends the watch (timeout, shutdown, a
    /// watcher cut off for being too slow: the client watches again from
    /// its last revision).
    async fn next_line(&mut self) -> Option<Bytes> {
        if let Some(line) = self.initial.next() {
            return Some(line);
        }
        if self.gone {
            return None;
        }
        // Replayed history first, then live events.
        for event in self.replay.by_ref() {
            self.last = event.revision;
            if let Some(line) = self.watcher.cached(&event) {
                return Some(line);
            }
        }
        loop {
            let event = tokio::select! {
                event = next_live(&mut self.live, &mut self.stream) => event,
                _ = self.tick.tick(), if self.bookmarks => {
                    return Some(bookmark(&self.watcher.r, self.last, false));
                }
                () = &mut self.deadline => return None,
                () = self.shutdown.cancelled() => return None,
            };
            match event? {
                Live::Cached(event) => {
                    if event.revision <= self.last {
                        continue;
                    }
                    self.last = event.revision;
                    if let Some(line) = self.watcher.cached(&event) {
                        return Some(line);
                    }
                }
                Live::Stored(event) => {
                    self.last = event.revision();
                    if let Some(line) = self.watcher.stored(&event) {
                        return Some(line);
                    }
                }
                Live::Gone => {
                    self.gone = true;
                    return Some(too_old(self.last));
                }
            }
        }
    }
}

enum Live {
    Cached(Arc<CachedEvent>),
    Stored(skiff_store::Event),
    Gone,
}

async fn next_live(
    live: &mut Option<broadcast::Receiver<Arc<CachedEvent>>>,
    stream: &mut Option<WatchStream>,
) -> Option<Live> {
    if let Some(rx) = live {
        return rx.recv().await.ok().map(Live::Cached);
    }
    match stream.as_mut()?.next().await? {
        Ok(event) => Some(Live::Stored(event)),
        Err(StoreError::Compacted { .. }) => Some(Live::Gone),
        Err(_) => None,
    }
}
