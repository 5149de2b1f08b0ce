//! What changed between two versions of an object (upstream
//! `TypedValue.Compare`): the paths added, removed and modified.
//!
//! Ownership follows changes: a writer takes the fields it added or
//! modified, everybody else loses them, and removed fields leave every set.
//! A granular node that appears or disappears is itself added/removed (so
//! an Update on create owns `"."` of new maps and items), and so are all
//! paths below it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::path::PathElement;
use crate::schema::{Kind, Schema, Ty, item_element};
use crate::set::FieldSet;
use crate::value_order;

/// The three sets of a comparison.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: FieldSet,
    pub removed: FieldSet,
    pub modified: FieldSet,
}

impl Comparison {
    /// Added or modified: what a writer takes from others.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

pub(crate) fn compare(schema: Schema<'_>, old: &Value, new: &Value, ty: Ty) -> Comparison {
    let mut c = Comparison::default();
    let mut path = Vec::new();
    walk(schema, Some(old), Some(new), ty, &mut path, &mut c);
    c
}

/// Children of a granular node as (element, type, value).
fn children<'v>(
    schema: Schema<'_>,
    v: &'v Value,
    ty: Ty,
) -> Option<Vec<(PathElement, Ty, &'v Value)>> {
    match (schema.kind(ty, v), v) {
        (Kind::Map(shape), Value::Object(map)) => Some(
            map.iter()
                .map(|(k, child)| {
                    (
                        PathElement::Field(k.clone()),
                        schema.field(shape, k).0,
                        child,
                    )
                })
                .collect(),
        ),
        (Kind::List { items, keys, set }, Value::Array(list)) => Some(
            list.iter()
                .enumerate()
                .map(|(i, item)| {
                    let pe = item_element(keys, set, item).unwrap_or(PathElement::Index(i as u64));
                    (pe, items, item)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Whether two granular nodes are of the same structural kind.
fn same_kind(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
    )
}

fn walk(
    schema: Schema<'_>,
    old: Option<&Value>,
    new: Option<&Value>,
    ty: Ty,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) {
    let old_children = old.and_then(|v| children(schema, v, ty));
    let new_children = new.and_then(|v| children(schema, v, ty));
    match (old, new) {
        (None, None) => {}
        (None, Some(_)) => {
            c.added.insert(path);
        }
        (Some(_), None) => {
            c.removed.insert(path);
        }
        (Some(o), Some(n)) => {
            let granular = old_children.is_some() && new_children.is_some() && same_kind(o, n);
            if !granular && !value_order::equal(o, n) {
                c.modified.insert(path);
            }
            if !granular {
                // A kind change: the old descendants are gone, the new ones
                // are added.
                for (pe, cty, child) in old_children.unwrap_or_default() {
                    path.push(pe);
                    walk(schema, Some(child), None, cty, path, c);
                    path.pop();
                }
                for (pe, cty, child) in new_children.unwrap_or_default() {
                    path.push(pe);
                    walk(schema, None, Some(child), cty, path, c);
                    path.pop();
                }
                return;
            }
        }
    }
    let old_index = index(old_children.unwrap_or_default());
    let new_index = index(new_children.unwrap_or_default());
    for (pe, (cty, o)) in &old_index {
        path.push(pe.clone());
        let n = new_index.get(pe).map(|(_, v)| *v);
        walk(schema, Some(o), n, *cty, path, c);
        path.pop();
    }
    for (pe, (cty, n)) in &new_index {
        if !old_index.contains_key(pe) {
            path.push(pe.clone());
            walk(schema, None, Some(n), *cty, path, c);
            path.pop();
        }
    }
}

/// Children by element; duplicates (possible in stored lists) keep the
/// first item.
fn index(children: Vec<(PathElement, Ty, &Value)>) -> BTreeMap<PathElement, (Ty, &Value)> {
    let mut out = BTreeMap::new();
    for (pe, ty, v) in children {
        out.entry(pe).or_insert((ty, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::deployment_shapes;
    use serde_json::json;

    #[test]
    fn reports_added_removed_modified() {
        let (shapes, root) = deployment_shapes();
        let schema = Schema { shapes: &shapes };
        let old = json!({"spec": {"replicas": 1, "paused": false,
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let new = json!({"spec": {"replicas": 2,
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}}});
        let c = compare(schema, &old, &new, Some(root));
        assert_eq!(
            c.modified.to_fields_json(),
            r#"{"f:spec":{"f:replicas":{}}}"#
        );
        assert_eq!(c.removed.to_fields_json(), r#"{"f:spec":{"f:paused":{}}}"#);
        assert_eq!(
            c.added.to_fields_json(),
            r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"b\"}":{".":{},"f:name":{}}}}}}}"#
        );
        assert!(compare(schema, &old, &old, Some(root)).is_same());
    }

    #[test]
    fn numbers_equal_by_value() {
        let (shapes, root) = deployment_shapes();
        let schema = Schema { shapes: &shapes };
        let c = compare(
            schema,
            &json!({"spec": {"replicas": 1}}),
            &json!({"spec": {"replicas": 1.0}}),
            Some(root),
        );
        assert!(c.is_same());
    }
}
