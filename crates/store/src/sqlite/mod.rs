//! The embedded backend: one SQLite database file, the default.
//!
//! Start at [`writer`]: every write is applied by one thread, many at a time
//! in one transaction (group commit), fsynced before anyone is answered, and
//! then handed to live watchers. Reads come from a pool of read-only
//! connections ([`reader`]), and watches replay older history from the log.

mod reader;
mod schema;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, WatchStream};
use crate::watch_hub::{DEFAULT_WATCH_QUEUE, WatchHub};
use crate::{DeleteResult, KeyValue, ListOptions, ListResult, Result, Revision, StoreError};
use reader::Readers;
use writer::{Command, Reply, Request, Revisions, Writer};

/// Events read from history per query while a watch catches up.
const REPLAY_CHUNK: usize = 1_000;

/// Where the database lives and how it behaves.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file; created (with its directory) if absent.
    pub path: PathBuf,
    /// How often expired keys are deleted.
    pub ttl_sweep_interval: Duration,
    /// How many events a watcher may fall behind before it is cut off.
    pub watch_queue: usize,
}

impl SqliteConfig {
    /// The database at `<data_dir>/db/state.db`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        SqliteConfig::at(data_dir.join("db").join("state.db"))
    }

    /// The database at exactly `path`.
    pub fn at(path: PathBuf) -> Self {
        SqliteConfig {
            path,
            ttl_sweep_interval: Duration::from_secs(1),
            watch_queue: DEFAULT_WATCH_QUEUE,
        }
    }
}

/// The embedded store. Cheap to clone; the database closes when the last
/// clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    requests: mpsc::Sender<Request>,
    readers: Arc<Readers>,
    hub: Arc<WatchHub>,
    revisions: Arc<Revisions>,
    sweeper: tokio::task::JoinHandle<()>,
    /// Held for the store's lifetime: one process per database.
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

impl SqliteStore {
    /// Opens (or creates) the database. Must be called inside a tokio runtime.
    /// A corrupt or unreadable file is reported as `Corrupt` and left as is.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let lock = lock_file(&path)?;
        let (conn, revision, compacted) = tokio::task::spawn_blocking({
            let path = path.clone();
            move || -> Result<_> {
                let conn = schema::open_writer(&path)?;
                let revision = schema::committed_revision(&conn)?;
                let compacted = schema::read_meta(&conn, schema::META_COMPACTED)?;
                Ok((conn, revision, compacted))
            }
        })
        .await
        .map_err(|_| StoreError::Closed)??;

        let hub = Arc::new(WatchHub::new(revision, config.watch_queue));
        let revisions = Arc::new(Revisions::default());
        let writer = Writer::new(conn, revision, compacted, hub.clone(), revisions.clone());
        let (requests, rx) = mpsc::channel(writer::MAX_BATCH * 4);
        std::thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || writer.run(rx))?;
        let sweeper = tokio::spawn(sweep_expired(
            requests.downgrade(),
            hub.clone(),
            config.ttl_sweep_interval,
        ));
        tracing::info!(path = %path.display(), revision, compacted, "opened sqlite store");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                requests,
                readers: Arc::new(Readers::new(path)),
                hub,
                revisions,
                sweeper,
                _lock: lock,
            }),
        })
    }

    async fn write(&self, command: Command) -> Result<Reply> {
        send(&self.inner.requests, command).await
    }
}

fn lock_file(db: &Path) -> Result<File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)?;
    file.try_lock().map_err(|_| StoreError::InUse {
        path: db.display().to_string(),
    })?;
    Ok(file)
}

async fn send(requests: &mpsc::Sender<Request>, command: Command) -> Result<Reply> {
    let (reply, answer) = oneshot::channel();
    requests
        .send(Request { command, reply })
        .await
        .map_err(|_| StoreError::Closed)?;
    answer.await.map_err(|_| StoreError::Closed)?
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn expiry(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| now_ms().saturating_add(t.as_millis() as i64))
}

/// Deletes expired keys (through the writer, so watchers see the deletes)
/// and prunes watchers that went away, until the store is dropped.
async fn sweep_expired(
    requests: mpsc::WeakSender<Request>,
    hub: Arc<WatchHub>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        hub.prune();
        loop {
            let Some(requests) = requests.upgrade() else {
                return;
            };
            match send(&requests, Command::SweepExpired { now: now_ms() }).await {
                Ok(Reply::Swept(n)) if n >= writer::SWEEP_CHUNK => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "deleting expired keys failed");
                    break;
                }
            }
        }
    }
}

fn unexpected() -> StoreError {
    StoreError::WriteFailed("unexpected reply from the store writer".into())
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.inner
            .readers
            .run(move |conn| reader::get(conn, &key))
            .await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        self.inner
            .readers
            .run(move |conn| reader::list(conn, &prefix, &options))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_owned();
        self.inner
            .readers
            .run(move |conn| reader::count(conn, &prefix))
            .await
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        crate::types::check_value_size(key, &value)?;
        let command = Command::Create {
            key: key.into(),
            value,
            expires_at: expiry(ttl),
        };
        match self.write(command).await? {
            Reply::Written(kv) => Ok(kv),
            _ => Err(unexpected()),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        crate::types::check_value_size(key, &value)?;
        let command = Command::Update {
            key: key.into(),
            value,
            expected: expected_mod_revision,
            expires_at: expiry(ttl),
        };
        match self.write(command).await? {
            Reply::Written(kv) => Ok(kv),
            _ => Err(unexpected()),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<DeleteResult> {
        let command = Command::Delete {
            key: key.into(),
            expected: expected_mod_revision,
        };
        match self.write(command).await? {
            Reply::Deleted(deleted) => Ok(deleted),
            _ => Err(unexpected()),
        }
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let compacted = self.inner.revisions.compacted.load(Ordering::Acquire);
        if from_revision < compacted {
            return Err(StoreError::Compacted {
                requested: from_revision,
                compacted,
            });
        }
        let mut live = self.inner.hub.subscribe(prefix);
        let readers = self.inner.readers.clone();
        let prefix = prefix.to_owned();
        let (tx, mut rx) = mpsc::channel::<Result<crate::Event>>(REPLAY_CHUNK);
        tokio::spawn(async move {
            // Catch up from history: everything up to `live.from` is committed.
            let mut next = from_revision;
            while next < live.from {
                let (upto, prefix) = (live.from, prefix.clone());
                let chunk = readers
                    .run(move |conn| reader::history(conn, &prefix, next, upto, REPLAY_CHUNK))
                    .await;
                match chunk {
                    Ok((events, scanned_to)) => {
                        for event in events {
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        next = scanned_to;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            // Then follow live events, skipping any the caller already has.
            loop {
                let event = tokio::select! {
                    event = live.next() => event,
                    () = tx.closed() => return,
                };
                match event {
                    Some(Ok(e)) if e.revision() <= from_revision => {}
                    Some(item) => {
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        });
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.revisions.current.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        loop {
            match self.write(Command::Compact { target: revision }).await? {
                Reply::CompactedTo(reached) if reached >= revision => return Ok(()),
                Reply::CompactedTo(_) => continue,
                _ => return Err(unexpected()),
            }
        }
    }
}
