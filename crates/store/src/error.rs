use crate::types::Revision;

/// Everything a store operation can fail with.
///
/// The variants a client can provoke (`NotFound`, `AlreadyExists`, `Conflict`,
/// `Compacted`, `ValueTooLarge`) are distinct so that the API server can map
/// them to the matching HTTP status (404, 409, 409, 410, 413).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    #[error("conflict on key {key:?}: expected mod revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },
    #[error("watcher fell too far behind and was cut off; watch again")]
    WatchLagged,
    #[error("the write could not be committed: {0}")]
    WriteFailed(String),
    #[error("{path} is in use by another skiff process")]
    InUse { path: String },
    #[error("the store is shut down")]
    Closed,
    #[error("database {path} is corrupt or unreadable: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid store request: {0}")]
    Invalid(String),
}
