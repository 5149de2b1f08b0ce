//! The managers of one object and how ownership moves between them
//! (upstream `Updater.update`, `stripMetaManager`, `capManagersManager`).

use std::collections::BTreeMap;

use crate::compare::Comparison;
use crate::conflict::Conflict;
use crate::managed::{ManagedFieldsEntry, Operation, sort_entries};
use crate::path::Path;
use crate::set::FieldSet;

/// Upstream keeps at most this many Update entries; older ones are folded
/// into one `ancient-changes` entry per apiVersion.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// Manager name of the folded entries.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// Entries by identifier.
pub(crate) struct Managers(pub BTreeMap<String, ManagedFieldsEntry>);

impl Managers {
    pub fn new(entries: &[ManagedFieldsEntry]) -> Managers {
        Managers(
            entries
                .iter()
                .map(|e| (e.identifier(), e.clone()))
                .collect(),
        )
    }

    pub fn into_sorted(self) -> Vec<ManagedFieldsEntry> {
        let mut v: Vec<_> = self.0.into_values().collect();
        sort_entries(&mut v);
        v
    }

    /// Every manager except `me` loses what changed (added or modified)
    /// and what was removed — unless a change touches a field another
    /// manager owns and `force` is false: then nothing moves and the
    /// conflicts are returned.
    pub fn take_changes(
        &mut self,
        me: &str,
        cmp: &Comparison,
        force: bool,
    ) -> Result<(), Vec<Conflict>> {
        let changed = cmp.changed();
        if !force {
            let mut conflicts = Vec::new();
            for (id, entry) in &self.0 {
                if id == me {
                    continue;
                }
                for path in entry.fields.intersection(&changed).paths() {
                    conflicts.push(Conflict::new(entry, path));
                }
            }
            if !conflicts.is_empty() {
                return Err(conflicts);
            }
        }
        let lost = changed.union(&cmp.removed);
        for (id, entry) in self.0.iter_mut() {
            if id != me {
                entry.fields = entry.fields.difference(&lost);
            }
        }
        self.drop_empty();
        Ok(())
    }

    /// Removes type and object-identity fields from every set (upstream
    /// `stripMetaManager`): they are not anybody's to own.
    pub fn strip(&mut self) {
        let strip = strip_set();
        for entry in self.0.values_mut() {
            entry.fields = entry.fields.difference(&strip);
        }
        self.drop_empty();
    }

    pub fn drop_empty(&mut self) {
        self.0.retain(|_, e| !e.fields.is_empty());
    }

    /// Folds the oldest Update entries into `ancient-changes` buckets (one
    /// per apiVersion) while there are more than [`MAX_UPDATE_MANAGERS`].
    pub fn cap_updates(&mut self) {
        let mut updaters: Vec<(Option<String>, String)> = self
            .0
            .iter()
            .filter(|(_, e)| e.operation == Operation::Update)
            .map(|(id, e)| (e.time.clone(), id.clone()))
            .collect();
        if updaters.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        updaters.sort();
        let mut remaining = updaters.len();
        let mut first_of_version: BTreeMap<String, String> = BTreeMap::new();
        for (_, id) in updaters {
            if remaining <= MAX_UPDATE_MANAGERS {
                break;
            }
            let Some(entry) = self.0.get(&id).cloned() else {
                continue;
            };
            let bucket = ManagedFieldsEntry::new(
                ANCIENT_CHANGES,
                Operation::Update,
                &entry.api_version,
                None,
                FieldSet::new(),
                None,
            );
            let bucket_id = bucket.identifier();
            match first_of_version.get(&entry.api_version) {
                Some(first) => {
                    let mut merged = match self.0.remove(&bucket_id) {
                        Some(b) => b,
                        None => {
                            let Some(first_entry) = self.0.remove(first) else {
                                continue;
                            };
                            ManagedFieldsEntry {
                                fields: first_entry.fields,
                                ..bucket
                            }
                        }
                    };
                    self.0.remove(&id);
                    merged.fields = merged.fields.union(&entry.fields);
                    merged.time = entry.time.clone();
                    self.0.insert(bucket_id, merged);
                    remaining -= 1;
                }
                None => {
                    first_of_version.insert(entry.api_version.clone(), id);
                }
            }
        }
    }
}

/// Paths no manager owns: `apiVersion`, `kind`, `metadata` itself and the
/// metadata the server sets or that identifies the object.
pub fn strip_set() -> FieldSet {
    let mut set = FieldSet::new();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        set.insert(&Path::fields(p).0);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, time: &str, version: &str, field: &str) -> ManagedFieldsEntry {
        let fields = FieldSet::from_paths(&[Path::fields(&["data", field])]);
        ManagedFieldsEntry::new(
            manager,
            Operation::Update,
            version,
            Some(time),
            fields,
            None,
        )
    }

    #[test]
    fn caps_update_managers_like_upstream() {
        let mut entries: Vec<_> = (0..12)
            .map(|i| {
                entry(
                    &format!("m{i:02}"),
                    &format!("2024-01-01T00:00:{i:02}Z"),
                    "v1",
                    &format!("f{i}"),
                )
            })
            .collect();
        entries.push(ManagedFieldsEntry::new(
            "applier",
            Operation::Apply,
            "v1",
            None,
            FieldSet::from_paths(&[Path::fields(&["x"])]),
            None,
        ));
        let mut m = Managers::new(&entries);
        m.cap_updates();
        let out = m.into_sorted();
        let updates: Vec<_> = out
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .collect();
        assert_eq!(updates.len(), MAX_UPDATE_MANAGERS);
        let bucket = out.iter().find(|e| e.manager == ANCIENT_CHANGES).unwrap();
        assert_eq!(bucket.fields.len(), 3, "m00, m01 and m02 folded");
        assert_eq!(bucket.time.as_deref(), Some("2024-01-01T00:00:02Z"));
        assert!(out.iter().any(|e| e.manager == "applier"));
    }

    #[test]
    fn strips_identity_metadata_only() {
        let set = FieldSet::from_paths(&[
            Path::fields(&["metadata", "name"]),
            Path::fields(&["metadata", "labels", "a"]),
            Path::fields(&["kind"]),
        ]);
        assert_eq!(
            set.difference(&strip_set()).to_fields_json(),
            r#"{"f:metadata":{"f:labels":{"f:a":{}}}}"#
        );
    }
}
