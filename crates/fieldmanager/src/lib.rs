//! Server-side apply field management: `metadata.managedFields`,
//! ownership, conflicts and merges, with the semantics of upstream's
//! `sigs.k8s.io/structured-merge-diff` and the API server's fieldmanager.
//!
//! The API server calls [`apply`] for `application/apply-patch+yaml`
//! patches and [`update`] for every other write; both take the object's
//! schema as a [`Shapes`](skiff_apimachinery::shape::Shapes) root. Start
//! reading at [`apply`], then [`FieldSet`] (the owned-field sets, with
//! their fieldsV1 encoding in `fields_v1`) and [`fields_of`] (which fields
//! an object sets).
//!
//! Concepts, one per module: `path` (how a field is named), `set` and
//! `fields_v1` (sets of paths and their wire form), `fields_of`, `compare`,
//! `merge` and `prune` (the three walks over values), `managed` (entries),
//! `ownership` (how ownership moves), `conflict` (409 wording), `apply` and
//! `update` (the two entry points).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod apply;
mod compare;
mod conflict;
mod error;
mod fields_of;
mod fields_v1;
mod go_format;
mod managed;
mod merge;
mod ownership;
mod path;
mod prune;
mod schema;
mod set;
mod update;
mod value_order;

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod testing;

pub use apply::{Applied, apply};
pub use compare::Comparison;
pub use conflict::{Conflict, conflict_causes, conflict_message};
pub use error::{ApplyError, FieldsError, InvalidObject, ManagedFieldsError};
pub use fields_of::{fields_of, try_fields_of};
pub use managed::{
    ManagedFieldsEntry, Operation, decode_managed_fields, encode_managed_fields,
    managed_fields_for_update, managed_fields_of, set_managed_fields, sort_entries,
};
pub use ownership::{ANCIENT_CHANGES, MAX_UPDATE_MANAGERS, strip_set};
pub use path::{Path, PathElement};
pub use set::FieldSet;
pub use update::update;

/// Compares two objects of a kind: the paths added, removed and modified.
pub fn compare_objects(
    old: &serde_json::Value,
    new: &serde_json::Value,
    shapes: &skiff_apimachinery::shape::Shapes,
    root: skiff_apimachinery::shape::ShapeId,
) -> Comparison {
    compare::compare(schema::Schema { shapes }, old, new, Some(root))
}
