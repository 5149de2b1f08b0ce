//! The on-disk layout and how a database file is opened and checked.
//!
//! * `log` holds every revision still in history: one row per write, with the
//!   revision of the row it superseded (`prev_revision`), so a watch can be
//!   replayed with previous values and compaction knows what is obsolete.
//! * `current` maps each live key to its latest `log` row (and its expiry).
//! * `meta` holds the store revision and the compacted revision.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::StoreError;
use crate::types::Revision;

/// Bumped when the layout changes in a way older code cannot read.
const SCHEMA_VERSION: i64 = 1;

const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY,
    key             BLOB    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    value           BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_revision ON log (key, revision);
CREATE TABLE IF NOT EXISTS current (
    key             BLOB    PRIMARY KEY,
    revision        INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    expires_at      INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS current_expiry ON current (expires_at) WHERE expires_at IS NOT NULL;
";

pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compact_revision";

fn corrupt(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Opens (creating if absent) the database for the single writer, checks
/// that an existing file is intact, and creates the tables. Never deletes or
/// resets anything: a bad file is reported, not repaired.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let existed = path.metadata().map(|m| m.len() > 0).unwrap_or(false);
    let conn = Connection::open(path).map_err(|e| corrupt(path, e))?;
    let setup = || -> rusqlite::Result<String> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        // FULL: the WAL is fsynced at every commit, so an acknowledged write
        // survives power loss, not only a process crash.
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        Ok(mode)
    };
    let mode = setup().map_err(|e| corrupt(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(corrupt(
            path,
            format!("cannot enable WAL mode (got {mode})"),
        ));
    }
    if existed {
        let verdict: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| corrupt(path, e))?;
        if verdict != "ok" {
            return Err(corrupt(path, format!("integrity check failed: {verdict}")));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| corrupt(path, e))?;
        if version > SCHEMA_VERSION {
            return Err(corrupt(
                path,
                format!(
                    "written by a newer skiff (schema {version}, this build reads {SCHEMA_VERSION})"
                ),
            ));
        }
    }
    conn.execute_batch(CREATE_TABLES)
        .and_then(|()| conn.pragma_update(None, "user_version", SCHEMA_VERSION))
        .map_err(|e| corrupt(path, e))?;
    Ok(conn)
}

/// A read-only connection; reads never block the writer (WAL).
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

pub(crate) fn read_meta(conn: &Connection, name: &str) -> rusqlite::Result<Revision> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn write_meta(conn: &Connection, name: &str, value: Revision) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?
        .execute(rusqlite::params![name, value])?;
    Ok(())
}

/// The store revision as committed: the larger of the recorded one and the
/// newest log row (they only differ if the file was written by hand).
pub(crate) fn committed_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    let recorded = read_meta(conn, META_REVISION)?;
    let newest: Option<Revision> =
        conn.query_row("SELECT MAX(revision) FROM log", [], |r| r.get(0))?;
    Ok(recorded.max(newest.unwrap_or(0)))
}
