//! Reads: a small pool of read-only connections used from blocking tasks.
//! Each read runs in one transaction, so it sees one committed snapshot.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::schema::{META_COMPACTED, committed_revision, open_reader, read_meta};
use crate::keys::{key_after, prefix_end};
use crate::{Event, EventKind, KeyValue, ListOptions, ListResult, Result, Revision, StoreError};

/// Idle read connections kept open.
const MAX_IDLE: usize = 8;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on a pooled connection inside one read transaction.
    pub async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.checkout()?;
            conn.execute_batch("BEGIN")?;
            let result = read(&conn);
            let ended = conn.execute_batch("ROLLBACK");
            if ended.is_ok() {
                this.checkin(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    fn checkout(&self) -> Result<Connection> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => Ok(open_reader(&self.path)?),
        }
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// `[start, end)` of the keys under `prefix`. Keys are UTF-8, which never
/// contains the byte 0xff, so `[0xff]` bounds the empty prefix.
fn range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let end = prefix_end(prefix.as_bytes()).unwrap_or_else(|| vec![0xff]);
    (prefix.as_bytes().to_vec(), end)
}

fn key_string(bytes: Vec<u8>) -> String {
    // Every key was written from a `&str`.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn kv_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(row.get(0)?),
        value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
    })
}

/// Fails with `Compacted` if history at `revision` is gone in this snapshot.
fn ensure_not_compacted(conn: &Connection, revision: Revision) -> Result<()> {
    let compacted = read_meta(conn, META_COMPACTED)?;
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    Ok(())
}

pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.key, l.value, c.create_revision, c.revision
             FROM current c JOIN log l ON l.revision = c.revision WHERE c.key = ?1",
        )?
        .query_row([key.as_bytes()], kv_from_row)
        .optional()?)
}

pub(crate) fn count(conn: &Connection, prefix: &str) -> Result<u64> {
    let (start, end) = range(prefix);
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM current WHERE key >= ?1 AND key < ?2")?
        .query_row(params![start, end], |r| r.get(0))?;
    Ok(n as u64)
}

pub(crate) fn list(conn: &Connection, prefix: &str, options: &ListOptions) -> Result<ListResult> {
    let current = committed_revision(conn)?;
    let revision = match options.revision {
        Some(r) if r > current => {
            return Err(StoreError::FutureRevision {
                requested: r,
                current,
            });
        }
        Some(r) if r > 0 => r,
        _ => current,
    };
    let (mut start, end) = range(prefix);
    if let Some(after) = &options.continue_after {
        start = start.max(key_after(after.as_bytes()));
    }
    let limit = options.limit.filter(|l| *l > 0).map_or(-1, |l| l as i64);
    let items: Vec<KeyValue> = if revision == current {
        conn.prepare_cached(
            "SELECT c.key, l.value, c.create_revision, c.revision
             FROM current c JOIN log l ON l.revision = c.revision
             WHERE c.key >= ?1 AND c.key < ?2 ORDER BY c.key LIMIT ?3",
        )?
        .query_map(params![start, end, limit], kv_from_row)?
        .collect::<rusqlite::Result<_>>()?
    } else {
        ensure_not_compacted(conn, revision)?;
        // SQLite takes the bare columns from the row holding MAX(revision).
        conn.prepare_cached(
            "SELECT key, value, create_revision, revision FROM (
                 SELECT key, value, create_revision, MAX(revision) AS revision, deleted
                 FROM log WHERE key >= ?1 AND key < ?2 AND revision <= ?3 GROUP BY key)
             WHERE deleted = 0 ORDER BY key LIMIT ?4",
        )?
        .query_map(params![start, end, revision, limit], kv_from_row)?
        .collect::<rusqlite::Result<_>>()?
    };
    let remaining = match (items.last(), limit) {
        (Some(last), l) if l >= 0 && items.len() as i64 == l => {
            remaining_after(conn, &last.key, &end, revision, revision == current)?
        }
        _ => 0,
    };
    Ok(ListResult {
        items,
        revision,
        remaining,
    })
}

fn remaining_after(
    conn: &Connection,
    last: &str,
    end: &[u8],
    revision: Revision,
    latest: bool,
) -> Result<u64> {
    let start = key_after(last.as_bytes());
    let n: i64 = if latest {
        conn.prepare_cached("SELECT COUNT(*) FROM current WHERE key >= ?1 AND key < ?2")?
            .query_row(params![start, end], |r| r.get(0))?
    } else {
        conn.prepare_cached(
            "SELECT COUNT(*) FROM (
                 SELECT MAX(revision), deleted FROM log
                 WHERE key >= ?1 AND key < ?2 AND revision <= ?3 GROUP BY key)
             WHERE deleted = 0",
        )?
        .query_row(params![start, end, revision], |r| r.get(0))?
    };
    Ok(n as u64)
}

/// Up to `limit` events under `prefix` with revisions in `(after, upto]`,
/// in revision order, and the revision up to which history was scanned.
pub(crate) fn history(
    conn: &Connection,
    prefix: &str,
    after: Revision,
    upto: Revision,
    limit: usize,
) -> Result<(Vec<Event>, Revision)> {
    ensure_not_compacted(conn, after)?;
    let (start, end) = range(prefix);
    let events: Vec<Event> = conn
        .prepare_cached(
            "SELECT l.key, l.value, l.create_revision, l.revision, l.deleted,
                    p.value, p.create_revision, p.revision
             FROM log l LEFT JOIN log p ON p.revision = l.prev_revision AND l.prev_revision > 0
             WHERE l.revision > ?1 AND l.revision <= ?2 AND l.key >= ?3 AND l.key < ?4
             ORDER BY l.revision LIMIT ?5",
        )?
        .query_map(params![after, upto, start, end, limit as i64], |row| {
            let kv = kv_from_row(row)?;
            let deleted: bool = row.get(4)?;
            let prev = match row.get::<_, Option<Vec<u8>>>(5)? {
                Some(value) => Some(KeyValue {
                    key: kv.key.clone(),
                    value: Bytes::from(value),
                    create_revision: row.get(6)?,
                    mod_revision: row.get(7)?,
                }),
                None => None,
            };
            Ok(Event {
                kind: if deleted {
                    EventKind::Delete
                } else {
                    EventKind::Put
                },
                kv,
                prev,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let scanned_to = match events.last() {
        Some(last) if events.len() == limit => last.revision(),
        _ => upto,
    };
    Ok((events, scanned_to))
}
