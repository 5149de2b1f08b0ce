//! watch: newline-delimited JSON events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR) after a resourceVersion, from the store's watch.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use skiff_store::{Event, EventKind, ListOptions, StoreError};
use tokio::sync::mpsc;

use super::output::{Output, negotiate, object_table};
use super::selection::Selection;
use super::{Query, Registry, Target};
use crate::object;
use crate::request::query_flag;
use crate::resources::ResourceInfo;
use crate::status::ApiError;

/// How often a bookmark is sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

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

/// Encodes watch events for one watcher: JSON objects, or one-row Tables
/// (column definitions on the first only, as upstream).
struct Encoder {
    output: Output,
    first: bool,
}

impl Encoder {
    fn event(&mut self, r: &ResourceInfo, kind: &str, obj: &Value) -> Bytes {
        match self.output {
            Output::Json => frame(kind, obj),
            Output::Table(include) => {
                let table = object_table(r, include, obj, self.first);
                self.first = false;
                frame(kind, &table)
            }
        }
    }
}

/// The event a watcher with `selection` sees for one store event, if any:
/// an object that stops matching is DELETED for it, one that starts
/// matching is ADDED.
fn translate(
    r: &ResourceInfo,
    selection: &Selection,
    event: &Event,
) -> Option<(&'static str, Value)> {
    let prev = event
        .prev
        .as_ref()
        .and_then(|kv| object::decode(kv, r).ok());
    let prev_matches = prev.as_ref().is_some_and(|p| selection.matches(p));
    match event.kind {
        EventKind::Put => {
            let obj = object::decode(&event.kv, r).ok()?;
            let kind = match (prev_matches, selection.matches(&obj)) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            };
            Some((kind, obj))
        }
        EventKind::Delete => {
            let mut obj = prev.filter(|_| prev_matches)?;
            object::stamp(&mut obj, r, event.revision());
            Some(("DELETED", obj))
        }
    }
}

impl Registry {
    pub(super) async fn watch(
        &self,
        t: &Target<'_>,
        query: &Query,
        headers: &http::HeaderMap,
    ) -> Result<Response, ApiError> {
        let mut encoder = Encoder {
            output: negotiate(headers, query)?,
            first: true,
        };
        let selection = Selection::from_query(t.r, query, t.name.as_deref())?;
        let prefix = t.r.namespace_prefix(t.namespace.as_deref());
        let rv = query
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or("");
        let send_initial = match query.get("sendInitialEvents").map(String::as_str) {
            Some("true") => true,
            Some(_) => false,
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

        let (tx, mut rx) = mpsc::channel::<Bytes>(64);
        let mut from = if rv.is_empty() || rv == "0" {
            0
        } else {
            object::parse_revision(rv)?
        };
        // The initial state, as ADDED events, sent before any change.
        let mut initial = Vec::new();
        if send_initial {
            let mut after = None;
            let mut revision = None;
            loop {
                let page = self
                    .store
                    .list(
                        &prefix,
                        ListOptions {
                            limit: Some(500),
                            continue_after: after.clone(),
                            revision,
                        },
                    )
                    .await
                    .map_err(|e| ApiError::from_store(e, &t.subject()))?;
                revision = Some(page.revision);
                for kv in &page.items {
                    let obj = object::decode(kv, t.r)?;
                    if selection.matches(&obj) {
                        initial.push(encoder.event(t.r, "ADDED", &obj));
                    }
                }
                after = page.items.last().map(|kv| kv.key.clone());
                if !page.more() {
                    break;
                }
            }
            from = revision.unwrap_or(from).max(from);
            if query.get("sendInitialEvents").is_some_and(|s| s == "true") {
                initial.push(bookmark(t.r, from, true));
            }
        }
        let stream = match self.store.watch(&prefix, from).await {
            Ok(stream) => Some(stream),
            Err(StoreError::Compacted { .. }) => {
                initial.push(too_old(from));
                None
            }
            Err(e) => return Err(ApiError::from_store(e, &t.subject())),
        };
        let r = t.r.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            for f in initial {
                if tx.send(f).await.is_err() {
                    return;
                }
            }
            let Some(mut stream) = stream else { return };
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut tick = tokio::time::interval(BOOKMARK_EVERY);
            tick.tick().await;
            let mut last = from;
            loop {
                let out = tokio::select! {
                    item = stream.next() => match item {
                        Some(Ok(event)) => {
                            last = event.revision();
                            match translate(&r, &selection, &event) {
                                Some((kind, obj)) => encoder.event(&r, kind, &obj),
                                None => continue,
                            }
                        }
                        Some(Err(StoreError::Compacted { .. })) => too_old(last),
                        // Lagged or closed: end the watch; the client re-watches.
                        _ => return,
                    },
                    _ = tick.tick(), if bookmarks => bookmark(&r, last, false),
                    () = &mut deadline => return,
                    () = shutdown.cancelled() => return,
                    () = tx.closed() => return,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
        let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok::<_, Infallible>);
        Ok((
            [(http::header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response())
    }
}
