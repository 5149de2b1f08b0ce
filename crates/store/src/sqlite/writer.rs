//! The single writer: how a write becomes durable and reaches watchers.
//!
//! All writes go through one thread that owns the read-write connection.
//! It takes every request waiting in its queue (up to [`MAX_BATCH`]), applies
//! them in one transaction, commits (one fsync for the whole batch: group
//! commit), then publishes the batch's events and answers each caller. A
//! lone writer is committed at once; many concurrent writers share fsyncs.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::schema::{META_COMPACTED, META_REVISION, write_meta};
use crate::watch_hub::WatchHub;
use crate::{DeleteResult, Event, EventKind, KeyValue, Result, Revision, StoreError};

/// Most requests committed in one transaction.
pub(crate) const MAX_BATCH: usize = 512;
/// Most revisions compacted in one transaction, so that compaction never
/// stalls writers for long.
pub(crate) const COMPACT_CHUNK: Revision = 5_000;
/// Most expired keys deleted in one transaction.
pub(crate) const SWEEP_CHUNK: usize = 500;

/// What the writer can be asked to do.
pub(crate) enum Command {
    Create {
        key: String,
        value: Bytes,
        expires_at: Option<i64>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        expires_at: Option<i64>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    /// Deletes keys whose TTL ran out before `now` (unix ms), with events.
    SweepExpired { now: i64 },
    /// Compacts history up to `target`, at most one chunk at a time.
    Compact { target: Revision },
}

pub(crate) enum Reply {
    Written(KeyValue),
    Deleted(DeleteResult),
    /// How many expired keys were deleted.
    Swept(usize),
    /// The compacted revision reached so far.
    CompactedTo(Revision),
}

pub(crate) struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Reply>>,
}

/// Revisions visible to readers without a query.
#[derive(Default)]
pub(crate) struct Revisions {
    pub current: AtomicI64,
    pub compacted: AtomicI64,
}

pub(crate) struct Writer {
    conn: Connection,
    revision: Revision,
    compacted: Revision,
    hub: Arc<WatchHub>,
    revisions: Arc<Revisions>,
}

impl Writer {
    pub fn new(
        conn: Connection,
        revision: Revision,
        compacted: Revision,
        hub: Arc<WatchHub>,
        revisions: Arc<Revisions>,
    ) -> Self {
        revisions.current.store(revision, Ordering::Release);
        revisions.compacted.store(compacted, Ordering::Release);
        Writer {
            conn,
            revision,
            compacted,
            hub,
            revisions,
        }
    }

    /// Serves requests until every sender is gone, then ends all watches.
    pub fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = requests.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
        self.hub.close();
    }

    fn commit(&mut self, batch: &mut Vec<Request>) {
        let before = (self.revision, self.compacted);
        let mut events = Vec::new();
        match self.apply_all(batch, &mut events) {
            Ok(replies) => {
                self.revisions
                    .current
                    .store(self.revision, Ordering::Release);
                self.revisions
                    .compacted
                    .store(self.compacted, Ordering::Release);
                self.hub.publish(&events);
                for (request, reply) in batch.drain(..).zip(replies) {
                    let _ = request.reply.send(reply);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store write transaction failed; batch rolled back");
                let _ = self.conn.execute_batch("ROLLBACK");
                (self.revision, self.compacted) = before;
                let message = e.to_string();
                for request in batch.drain(..) {
                    let _ = request
                        .reply
                        .send(Err(StoreError::WriteFailed(message.clone())));
                }
            }
        }
    }

    /// Applies the batch in one transaction and commits it. The outer error is
    /// a database failure (the batch is rolled back); inner errors are
    /// per-request outcomes such as `Conflict`.
    fn apply_all(
        &mut self,
        batch: &[Request],
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Vec<Result<Reply>>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let start = (self.revision, self.compacted);
        let mut replies = Vec::with_capacity(batch.len());
        for request in batch {
            let reply = match &request.command {
                Command::Create {
                    key,
                    value,
                    expires_at,
                } => self.create(key, value, *expires_at, events)?,
                Command::Update {
                    key,
                    value,
                    expected,
                    expires_at,
                } => self.update(key, value, *expected, *expires_at, events)?,
                Command::Delete { key, expected } => {
                    self.delete(key, *expected, events)?.map(Reply::Deleted)
                }
                Command::SweepExpired { now } => self.sweep(*now, events)?,
                Command::Compact { target } => self.compact(*target)?,
            };
            replies.push(reply);
        }
        if self.revision != start.0 {
            write_meta(&self.conn, META_REVISION, self.revision)?;
        }
        if self.compacted != start.1 {
            write_meta(&self.conn, META_COMPACTED, self.compacted)?;
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(replies)
    }

    /// The live row of `key`: (mod revision, create revision).
    fn current(&self, key: &str) -> rusqlite::Result<Option<(Revision, Revision)>> {
        self.conn
            .prepare_cached("SELECT revision, create_revision FROM current WHERE key = ?1")?
            .query_row([key.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    }

    fn value_at(&self, revision: Revision) -> rusqlite::Result<Bytes> {
        let value: Vec<u8> = self
            .conn
            .prepare_cached("SELECT value FROM log WHERE revision = ?1")?
            .query_row([revision], |r| r.get(0))?;
        Ok(Bytes::from(value))
    }

    fn append(
        &mut self,
        key: &str,
        create_revision: Revision,
        prev_revision: Revision,
        deleted: bool,
        value: &[u8],
    ) -> rusqlite::Result<Revision> {
        self.revision += 1;
        self.conn
            .prepare_cached(
                "INSERT INTO log (revision, key, create_revision, prev_revision, deleted, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                self.revision,
                key.as_bytes(),
                create_revision,
                prev_revision,
                deleted,
                value
            ])?;
        Ok(self.revision)
    }

    fn create(
        &mut self,
        key: &str,
        value: &Bytes,
        expires_at: Option<i64>,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<Reply>> {
        if self.current(key)?.is_some() {
            return Ok(Err(StoreError::AlreadyExists { key: key.into() }));
        }
        let revision = self.revision + 1;
        self.append(key, revision, 0, false, value)?;
        self.conn
            .prepare_cached(
                "INSERT INTO current (key, revision, create_revision, expires_at) VALUES (?1, ?2, ?2, ?3)",
            )?
            .execute(params![key.as_bytes(), revision, expires_at])?;
        let kv = KeyValue {
            key: key.into(),
            value: value.clone(),
            create_revision: revision,
            mod_revision: revision,
        };
        events.push(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev: None,
        });
        Ok(Ok(Reply::Written(kv)))
    }

    fn update(
        &mut self,
        key: &str,
        value: &Bytes,
        expected: Revision,
        expires_at: Option<i64>,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<Reply>> {
        let Some((actual, create_revision)) = self.current(key)? else {
            return Ok(Err(StoreError::NotFound { key: key.into() }));
        };
        if actual != expected {
            return Ok(Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual,
            }));
        }
        let prev_value = self.value_at(actual)?;
        let revision = self.append(key, create_revision, actual, false, value)?;
        self.conn
            .prepare_cached("UPDATE current SET revision = ?2, expires_at = ?3 WHERE key = ?1")?
            .execute(params![key.as_bytes(), revision, expires_at])?;
        let kv = KeyValue {
            key: key.into(),
            value: value.clone(),
            create_revision,
            mod_revision: revision,
        };
        events.push(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev: Some(KeyValue {
                key: key.into(),
                value: prev_value,
                create_revision,
                mod_revision: actual,
            }),
        });
        Ok(Ok(Reply::Written(kv)))
    }

    fn delete(
        &mut self,
        key: &str,
        expected: Option<Revision>,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<DeleteResult>> {
        let Some((actual, create_revision)) = self.current(key)? else {
            return Ok(Err(StoreError::NotFound { key: key.into() }));
        };
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Ok(Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual,
            }));
        }
        let prev = KeyValue {
            key: key.into(),
            value: self.value_at(actual)?,
            create_revision,
            mod_revision: actual,
        };
        let revision = self.append(key, create_revision, actual, true, &[])?;
        self.conn
            .prepare_cached("DELETE FROM current WHERE key = ?1")?
            .execute([key.as_bytes()])?;
        events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.into(),
                value: Bytes::new(),
                create_revision,
                mod_revision: revision,
            },
            prev: Some(prev.clone()),
        });
        Ok(Ok(DeleteResult { prev, revision }))
    }

    fn sweep(&mut self, now: i64, events: &mut Vec<Event>) -> rusqlite::Result<Result<Reply>> {
        let expired: Vec<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT key FROM current WHERE expires_at IS NOT NULL AND expires_at <= ?1
                 ORDER BY expires_at LIMIT ?2",
            )?
            .query_map(params![now, SWEEP_CHUNK as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut swept = 0;
        for key in expired {
            // Keys are written from `&str`, so they are always UTF-8.
            let key = String::from_utf8_lossy(&key).into_owned();
            if self.delete(&key, None, events)?.is_ok() {
                swept += 1;
            }
        }
        Ok(Ok(Reply::Swept(swept)))
    }

    /// Drops history rows that no revision after the new compacted revision
    /// needs: rows superseded at or before it, and tombstones at or before it.
    fn compact(&mut self, target: Revision) -> rusqlite::Result<Result<Reply>> {
        if target > self.revision {
            return Ok(Err(StoreError::FutureRevision {
                requested: target,
                current: self.revision,
            }));
        }
        if target <= self.compacted {
            return Ok(Ok(Reply::CompactedTo(self.compacted)));
        }
        let low = self.compacted;
        let high = target.min(low + COMPACT_CHUNK);
        self.conn
            .prepare_cached(
                "DELETE FROM log WHERE revision IN (
                     SELECT prev_revision FROM log
                     WHERE revision > ?1 AND revision <= ?2 AND prev_revision > 0)",
            )?
            .execute(params![low, high])?;
        self.conn
            .prepare_cached(
                "DELETE FROM log WHERE deleted = 1 AND revision > ?1 AND revision <= ?2",
            )?
            .execute(params![low, high])?;
        self.compacted = high;
        Ok(Ok(Reply::CompactedTo(high)))
    }
}
