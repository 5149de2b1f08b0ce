//! Pruning: removing from the object what an applier dropped from its
//! configuration and nobody else owns (upstream `Updater.prune` with
//! `RemoveItems` and `EnsureNamedFieldsAreMembers`).
//!
//! A path is removed when the applier owned it before, does not own it in
//! its new configuration, and no other manager owns it. Declared struct
//! fields count as owned by whoever owns something below them, so a struct
//! field (say `spec.strategy`) disappears with the last owned field under
//! it instead of lingering as `{}`.

use serde_json::{Map, Value};

use crate::path::PathElement;
use crate::schema::{Kind, Schema, Ty, item_element};
use crate::set::FieldSet;

/// `set` plus every declared struct field that has members below it.
pub(crate) fn ensure_named(schema: Schema<'_>, set: &FieldSet, ty: Ty) -> FieldSet {
    let mut out = FieldSet {
        members: set.members.clone(),
        children: Default::default(),
    };
    for (pe, child) in &set.children {
        if let PathElement::Field(name) = pe
            && schema.is_named_field(ty, name)
        {
            out.members.insert(pe.clone());
        }
        let child_ty = schema.child_ty(ty, pe);
        out.children
            .insert(pe.clone(), ensure_named(schema, child, child_ty));
    }
    out
}

/// The value without the member paths of `remove`; `None` when nothing is
/// left of a granular node that had content (upstream leaves `null`
/// there; dropping the key is the same object once decoded).
pub(crate) fn remove_items(
    schema: Schema<'_>,
    v: &Value,
    remove: &FieldSet,
    ty: Ty,
) -> Option<Value> {
    match (schema.kind(ty, v), v) {
        (Kind::Map(shape), Value::Object(map)) if !map.is_empty() => {
            let mut out = Map::new();
            for (k, child) in map {
                let pe = PathElement::Field(k.clone());
                if remove.has_member(&pe) {
                    continue;
                }
                match remove.child(&pe) {
                    Some(sub) => {
                        if let Some(kept) =
                            remove_items(schema, child, sub, schema.field(shape, k).0)
                        {
                            out.insert(k.clone(), kept);
                        }
                    }
                    None => {
                        out.insert(k.clone(), child.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (Kind::List { items, keys, set }, Value::Array(list)) if !list.is_empty() => {
            let mut out = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let pe = item_element(keys, set, item).unwrap_or(PathElement::Index(i as u64));
                if remove.has_member(&pe) {
                    continue;
                }
                match remove.child(&pe) {
                    Some(sub) => {
                        if let Some(kept) = remove_items(schema, item, sub, items) {
                            out.push(kept);
                        }
                    }
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => Some(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::Path;
    use crate::testing::deployment_shapes;
    use serde_json::json;

    #[test]
    fn removes_members_and_their_subtrees() {
        let (shapes, root) = deployment_shapes();
        let s = Schema { shapes: &shapes };
        let v = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]}, "spec": {"replicas": 1}});
        let mut rm = FieldSet::new();
        rm.insert(&Path::fields(&["metadata", "labels", "a"]).0);
        rm.insert(&[
            PathElement::field("metadata"),
            PathElement::field("finalizers"),
            PathElement::Value(json!("y")),
        ]);
        rm.insert(&Path::fields(&["spec"]).0);
        let out = remove_items(s, &v, &rm, Some(root)).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}, "finalizers": ["x"]}})
        );
    }

    #[test]
    fn named_fields_become_members() {
        let (shapes, root) = deployment_shapes();
        let s = Schema { shapes: &shapes };
        let set = FieldSet::from_paths(&[
            Path::fields(&["metadata", "labels", "app"]),
            Path::fields(&["spec", "replicas"]),
        ]);
        let named = ensure_named(s, &set, Some(root));
        // metadata, labels and spec are declared; the label key is not.
        assert_eq!(
            named.to_fields_json(),
            r#"{"f:metadata":{".":{},"f:labels":{".":{},"f:app":{}}},"f:spec":{".":{},"f:replicas":{}}}"#
        );
    }
}
