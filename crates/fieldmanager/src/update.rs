//! Recording a non-apply write (create, update, JSON/merge/strategic
//! patch) in managedFields, following upstream's `Updater.Update` and
//! `managedFieldsUpdater`:
//!
//! - the writer's entry (manager + apiVersion + subresource, operation
//!   Update) gains every field whose value it changed — all set fields on
//!   create — and its timestamp moves only when it changed something;
//! - every other manager loses the fields whose values changed (an update
//!   never conflicts: it simply takes them);
//! - fields that no longer exist leave every set, and empty entries go.

use serde_json::{Value, json};
use skiff_apimachinery::shape::{ShapeId, Shapes};

use crate::compare::compare;
use crate::managed::{ManagedFieldsEntry, Operation, without_managed_fields};
use crate::ownership::{Managers, strip_set};
use crate::schema::Schema;

/// The managedFields after `manager` wrote `new` over `old` (`None`:
/// create). `managed` are the entries to start from (see
/// [`crate::managed_fields_for_update`]); the result is sorted.
#[allow(clippy::too_many_arguments)] // the API server's call site names every input
pub fn update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    managed: &[ManagedFieldsEntry],
    shapes: &Shapes,
    root: ShapeId,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) -> Vec<ManagedFieldsEntry> {
    let schema = Schema { shapes };
    let old_obj = old.map(without_managed_fields).unwrap_or_else(|| json!({}));
    let new_obj = without_managed_fields(new);
    let cmp = compare(schema, &old_obj, &new_obj, Some(root));

    let mut managers = Managers::new(managed);
    // Everybody, including the writer's previous entry, loses what changed;
    // the writer takes it back below.
    let _ = managers.take_changes("", &cmp, true);
    let mine = cmp.changed().difference(&strip_set());
    if !mine.is_empty() {
        let me = ManagedFieldsEntry::new(
            manager,
            Operation::Update,
            api_version,
            Some(now),
            mine,
            subresource,
        );
        let id = me.identifier();
        let fields = match managers.0.remove(&id) {
            Some(previous) => previous.fields.union(&me.fields),
            None => me.fields.clone(),
        };
        managers.0.insert(id, ManagedFieldsEntry { fields, ..me });
    }
    managers.strip();
    managers.cap_updates();
    managers.into_sorted()
}
