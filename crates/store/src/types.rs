use bytes::Bytes;

/// A point in the store's history. Every write gets a new, cluster-wide,
/// strictly increasing revision; the API server exposes it as `resourceVersion`.
pub type Revision = i64;

/// The largest value accepted, as etcd's default request limit (1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// Rejects values over [`MAX_VALUE_BYTES`], as etcd does, before anything
/// is written.
pub(crate) fn check_value_size(key: &str, value: &Bytes) -> Result<(), crate::StoreError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(crate::StoreError::ValueTooLarge {
            key: key.into(),
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// A key with its current value and the revisions at which it was created and
/// last modified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// What a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as a watcher sees it.
///
/// For `Put`, `kv` is the new state. For `Delete`, `kv` carries the key and the
/// deletion revision (in `mod_revision`) with an empty value, as etcd does; the
/// last value is in `prev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// How to read a range of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many items; `None` or `Some(0)` means all.
    pub limit: Option<usize>,
    /// Only keys strictly after this one (the last key of the previous page).
    pub continue_after: Option<String>,
    /// Read the state as of this revision; `None` means the latest. Pages of
    /// one list pass the revision of the first page, so the whole list is one
    /// consistent snapshot even while writes go on.
    pub revision: Option<Revision>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// How many matching keys come after this page (0 when it is the last).
    pub remaining: u64,
}

impl ListResult {
    /// Whether another page follows; continue after the last item's key.
    pub fn more(&self) -> bool {
        self.remaining > 0
    }
}

/// What `delete` removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteResult {
    /// The key as it was just before deletion.
    pub prev: KeyValue,
    /// The revision of the deletion itself.
    pub revision: Revision,
}
