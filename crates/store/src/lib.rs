//! The layer that holds all cluster state for skiff.
//!
//! Only the API server uses this crate. It offers the semantics the Kubernetes
//! API server needs from etcd — cluster-wide revisions, compare-and-swap,
//! consistent paged lists, watches that replay history, compaction and keys
//! with a time to live — behind one trait, [`Store`], with two backends:
//!
//! * [`SqliteStore`]: embedded, the default. One database file, WAL, fsync
//!   before a write is acknowledged, group commit for concurrent writers.
//! * [`EtcdStore`]: an etcd v3 cluster, for several servers.
//!
//! Start reading at [`Store`] (the contract), then `sqlite/writer.rs` (how a
//! write becomes durable and reaches watchers).

mod compactor;
mod error;
mod etcd;
mod keys;
mod sqlite;
mod store;
mod types;
mod watch_hub;

pub use compactor::{AutoCompactor, DEFAULT_COMPACTION_INTERVAL};
pub use error::StoreError;
pub use etcd::{EtcdConfig, EtcdStore};
pub use sqlite::{SqliteConfig, SqliteStore};
pub use store::{Store, WatchStream};
pub use types::{
    DeleteResult, Event, EventKind, KeyValue, ListOptions, ListResult, MAX_VALUE_BYTES, Revision,
};

/// Result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
