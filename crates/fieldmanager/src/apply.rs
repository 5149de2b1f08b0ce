//! Server-side apply (`PATCH` with `application/apply-patch+yaml`),
//! following upstream's `Updater.Apply`:
//!
//! 1. the configuration's fields become the applier's new set;
//! 2. the configuration is merged into the live object;
//! 3. fields the applier owned before, dropped now, and nobody else owns
//!    are pruned;
//! 4. what changed is checked against other managers: a changed field
//!    another manager owns is a conflict (unless forced, then it moves to
//!    the applier); setting the same value as another manager shares it.

use serde_json::{Value, json};
use skiff_apimachinery::shape::{ShapeId, Shapes};

use crate::compare::compare;
use crate::error::ApplyError;
use crate::fields_of::try_fields_of;
use crate::managed::{ManagedFieldsEntry, Operation, set_managed_fields, without_managed_fields};
use crate::ownership::Managers;
use crate::prune::{ensure_named, remove_items};
use crate::schema::{Schema, Ty};
use crate::set::FieldSet;

/// The result of a successful apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The new object, with `metadata.managedFields` set from `managed`.
    pub object: Value,
    /// The new managedFields entries, sorted as upstream writes them.
    pub managed: Vec<ManagedFieldsEntry>,
    /// Whether the object (apart from managedFields) differs from the live
    /// one; an unchanged object keeps the applier's previous timestamp.
    pub changed: bool,
}

/// Applies `config` for `manager` onto `live` (`None`: create).
///
/// `managed` are the live object's decoded entries ([`crate::managed_fields_of`]);
/// `api_version` is the request's group/version; `now` an RFC 3339 time.
#[allow(clippy::too_many_arguments)] // the API server's call site names every input
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    managed: &[ManagedFieldsEntry],
    shapes: &Shapes,
    root: ShapeId,
    api_version: &str,
    now: &str,
) -> Result<Applied, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::NotAnObject);
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::ManagedFieldsInConfig);
    }
    let schema = Schema { shapes };
    let ty = Some(root);
    let live_obj = live
        .map(without_managed_fields)
        .unwrap_or_else(|| json!({}));
    let config_set = try_fields_of(config, shapes, root)?;
    let merged = crate::merge::merge(schema, &live_obj, config, ty);

    let mut managers = Managers::new(managed);
    let me = ManagedFieldsEntry::new(
        manager,
        Operation::Apply,
        api_version,
        None,
        config_set,
        None,
    );
    let me_id = me.identifier();
    let previous = managers.0.insert(me_id.clone(), me);
    let previous_time = previous.as_ref().and_then(|p| p.time.clone());

    let new_obj = match previous.filter(|p| !p.fields.is_empty()) {
        Some(last) => prune(schema, &merged, &managers, &last.fields, ty),
        None => merged,
    };

    let cmp = compare(schema, &live_obj, &new_obj, ty);
    managers
        .take_changes(&me_id, &cmp, force)
        .map_err(ApplyError::Conflicts)?;
    let changed = !cmp.is_same();
    if let Some(entry) = managers.0.get_mut(&me_id) {
        entry.time = match previous_time {
            Some(t) if !changed => Some(t),
            _ => Some(now.to_owned()),
        };
    }
    managers.strip();
    managers.cap_updates();
    let entries = managers.into_sorted();
    let mut object = new_obj;
    set_managed_fields(&mut object, &entries);
    Ok(Applied {
        object,
        managed: entries,
        changed,
    })
}

/// Removes what the applier owned last time (`last`), no longer applies
/// and nobody owns (struct fields count as owned through their children).
fn prune(
    schema: Schema<'_>,
    merged: &Value,
    managers: &Managers,
    last: &FieldSet,
    ty: Ty,
) -> Value {
    let owned = managers
        .0
        .values()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    let remove = ensure_named(schema, last, ty).difference(&ensure_named(schema, &owned, ty));
    if remove.is_empty() {
        return merged.clone();
    }
    remove_items(schema, merged, &remove, ty).unwrap_or_else(|| json!({}))
}
