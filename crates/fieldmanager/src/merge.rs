//! Merging an apply configuration into the live object (upstream
//! `TypedValue.Merge`).
//!
//! The configuration wins on every leaf it sets; granular maps are merged
//! key by key; list-maps and sets are merged item by item, keeping live
//! items the configuration does not mention where they were and putting
//! shared and new items in the configuration's order; atomic values are
//! replaced whole. Fields the configuration omits are untouched here —
//! removing what an applier dropped is pruning's job.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::path::PathElement;
use crate::schema::{Kind, Schema, Ty, item_element};

pub(crate) fn merge(schema: Schema<'_>, live: &Value, config: &Value, ty: Ty) -> Value {
    match (schema.kind(ty, live), schema.kind(ty, config), live, config) {
        (Kind::Map(shape), Kind::Map(_), Value::Object(l), Value::Object(r)) => {
            let mut out = Map::new();
            for (k, lv) in l {
                let merged = match r.get(k) {
                    Some(rv) => merge(schema, lv, rv, schema.field(shape, k).0),
                    None => lv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            for (k, rv) in r {
                if !l.contains_key(k) {
                    out.insert(k.clone(), rv.clone());
                }
            }
            Value::Object(out)
        }
        (Kind::List { items, keys, set }, Kind::List { .. }, Value::Array(l), Value::Array(r)) => {
            Value::Array(merge_items(schema, l, r, items, keys, set))
        }
        _ => config.clone(),
    }
}

fn elements(items: &[Value], keys: &[String], set: bool) -> Vec<PathElement> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| item_element(keys, set, v).unwrap_or(PathElement::Index(i as u64)))
        .collect()
}

/// Item-wise merge with upstream's ordering: walk both lists; live-only
/// items stay in place, items in both are emitted when the configuration
/// reaches them (in its order), configuration-only items where they appear
/// in the configuration.
fn merge_items(
    schema: Schema<'_>,
    live: &[Value],
    config: &[Value],
    items_ty: Ty,
    keys: &[String],
    set: bool,
) -> Vec<Value> {
    let lpe = elements(live, keys, set);
    let rpe = elements(config, keys, set);
    let mut lidx: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, pe) in lpe.iter().enumerate() {
        lidx.entry(pe).or_insert(i);
    }
    let mut ridx: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, pe) in rpe.iter().enumerate() {
        ridx.entry(pe).or_insert(i);
    }
    let mut shared = rpe.iter().filter(|pe| lidx.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged: BTreeMap<&PathElement, ()> = BTreeMap::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let item = |pe: &PathElement| -> Value {
        let l = lidx.get(pe).map(|&i| &live[i]);
        let r = ridx.get(pe).map(|&i| &config[i]);
        match (l, r) {
            (Some(l), Some(r)) => merge(schema, l, r, items_ty),
            (Some(v), None) | (None, Some(v)) => v.clone(),
            (None, None) => Value::Null,
        }
    };
    let (mut li, mut ri) = (0, 0);
    while li < lpe.len() || ri < rpe.len() {
        if li < lpe.len() && ri < rpe.len() {
            let pe = &lpe[li];
            if *pe == rpe[ri] {
                if merged.insert(pe, ()).is_none() {
                    out.push(item(pe));
                }
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if ridx.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpe.len() {
            let pe = &lpe[li];
            if !ridx.contains_key(pe) {
                out.push(live[li].clone());
                li += 1;
                continue;
            }
            if merged.contains_key(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rpe.len() {
            let pe = &rpe[ri];
            if merged.insert(pe, ()).is_none() {
                out.push(item(pe));
            }
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::deployment_shapes;
    use serde_json::json;

    fn containers(v: &Value) -> Vec<&str> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    fn with(names: &[&str]) -> Value {
        let list: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "image": n}))
            .collect();
        json!({"spec": {"template": {"spec": {"containers": list}}}})
    }

    #[test]
    fn config_wins_on_leaves_and_maps_merge() {
        let (shapes, root) = deployment_shapes();
        let s = Schema { shapes: &shapes };
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1, "paused": true}});
        let cfg = json!({"metadata": {"labels": {"b": "3", "c": "4"}}, "spec": {"replicas": 3}});
        let out = merge(s, &live, &cfg, Some(root));
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a": "1", "b": "3", "c": "4"}}, "spec": {"replicas": 3, "paused": true}})
        );
    }

    #[test]
    fn list_maps_merge_by_key_in_upstream_order() {
        let (shapes, root) = deployment_shapes();
        let s = Schema { shapes: &shapes };
        // Live-only items keep their place; new items come as the config
        // reaches them.
        let out = merge(s, &with(&["a", "b", "c"]), &with(&["b", "d"]), Some(root));
        assert_eq!(containers(&out), ["a", "b", "c", "d"]);
        let out = merge(s, &with(&["a", "b"]), &with(&["d", "b"]), Some(root));
        assert_eq!(containers(&out), ["a", "d", "b"]);
        // Shared items take the config's order.
        let out = merge(s, &with(&["a", "b", "c"]), &with(&["c", "a"]), Some(root));
        assert_eq!(containers(&out), ["b", "c", "a"]);
        // Fields of a shared item merge.
        let live = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}]}}}});
        let cfg =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "y"}]}}}});
        let out = merge(s, &live, &cfg, Some(root));
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "y", "args": ["1"]}])
        );
    }

    #[test]
    fn sets_union_and_atomics_replace() {
        let (shapes, root) = deployment_shapes();
        let s = Schema { shapes: &shapes };
        let live = json!({"metadata": {"finalizers": ["x", "y"]}, "spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}});
        let cfg = json!({"metadata": {"finalizers": ["z", "x"]}, "spec": {"selector": {"matchLabels": {"a": "1"}}}});
        let out = merge(s, &live, &cfg, Some(root));
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "x", "y"]));
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"a": "1"}}));
    }
}
