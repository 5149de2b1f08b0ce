//! Property tests: merging container lists agrees with a small model of
//! upstream's semantics, and untyped maps behave as JSON merge patch.

#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use skiff_apimachinery::shape::{Shape, Shapes};
use skiff_strategic::apply_patch;

// ---- the model ---------------------------------------------------------------

/// A container as the model sees it: name and image.
type Ctr = (String, String);

#[derive(Clone, Debug)]
enum Op {
    /// `{"name": n, "image": i}`
    Set(String, String),
    /// `{"name": n}`: names the container without changing it.
    Touch(String),
    /// `{"name": n, "$patch": "delete"}`
    Delete(String),
}

/// Upstream's semantics for a list merged by `name`, spelled out on plain
/// pairs: deletions first; then each patch item updates the container of
/// its name or adds one; the containers the patch names come in the
/// patch's order, the others keep the original order and each goes in
/// front of the first named container the original had after it.
fn model(original: &[Ctr], ops: &[Op]) -> Vec<Ctr> {
    let deleted: Vec<&String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Delete(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut kept: Vec<Ctr> = original
        .iter()
        .filter(|(n, _)| !deleted.contains(&n))
        .cloned()
        .collect();
    let server_names: Vec<String> = kept.iter().map(|(n, _)| n.clone()).collect();

    let mut named: Vec<Ctr> = Vec::new();
    for op in ops {
        let (name, image) = match op {
            Op::Delete(_) => continue,
            Op::Set(n, i) => (n, Some(i)),
            Op::Touch(n) => (n, None),
        };
        // Named again: updated where it is (the first mention orders it).
        if let Some(c) = named.iter_mut().find(|(n, _)| n == name) {
            if let Some(i) = image {
                c.1 = i.clone();
            }
            continue;
        }
        let current = kept
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| kept.remove(i));
        let item = match (current, image) {
            (Some((n, _)), Some(i)) => (n, i.clone()),
            (Some(c), None) => c,
            (None, Some(i)) => (name.clone(), i.clone()),
            // a new container without an image: the model spells it with "".
            (None, None) => (name.clone(), String::new()),
        };
        named.push(item);
    }
    // `named` is in first-mention order already; `kept` holds the rest in
    // original order.
    let pos = |n: &String| server_names.iter().position(|s| s == n);
    let mut out = Vec::new();
    let (mut l, mut r) = (kept.into_iter().peekable(), named.into_iter().peekable());
    loop {
        let left_first = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((ln, _)), Some((rn, _))) => match (pos(ln), pos(rn)) {
                (Some(a), Some(b)) => a < b,
                _ => false,
            },
        };
        out.extend(if left_first { l.next() } else { r.next() });
    }
    out
}

fn to_json(ctrs: &[Ctr]) -> Value {
    Value::Array(
        ctrs.iter()
            .map(|(n, i)| {
                if i.is_empty() {
                    json!({"name": n})
                } else {
                    json!({"name": n, "image": i})
                }
            })
            .collect(),
    )
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Set(n, i) => json!({"name": n, "image": i}),
        Op::Touch(n) => json!({"name": n}),
        Op::Delete(n) => json!({"name": n, "$patch": "delete"}),
    }
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]).prop_map(str::to_owned)
}

fn image() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["nginx", "redis", "busybox"]).prop_map(str::to_owned)
}

/// Containers with distinct names, in random order.
fn containers() -> impl Strategy<Value = Vec<Ctr>> {
    prop::collection::btree_map(name(), image(), 0..6)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

/// Patch items; a name may come back (set twice, set and delete...).
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        (name(), image()).prop_map(|(n, i)| Op::Set(n, i)),
        name().prop_map(Op::Touch),
        name().prop_map(Op::Delete),
    ];
    prop::collection::vec(op, 0..8)
}

fn images(ctrs: &[Ctr]) -> Vec<(String, String)> {
    let mut v = ctrs.to_vec();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Strategic merge of random container lists is equivalent to the
    /// reference semantics on a model (merge by key, order, deletes).
    #[test]
    fn container_lists_merge_like_the_model(original in containers(), ops in ops()) {
        let (shapes, root) = common::pod_shapes();
        let before = json!({"spec": {"containers": to_json(&original)}});
        let patch = json!({"spec": {"containers": ops.iter().map(op_json).collect::<Vec<_>>()}});
        let got = apply_patch(&before, &patch, &shapes, root).unwrap();
        let expected = model(&original, &ops);
        prop_assert_eq!(&got["spec"]["containers"], &to_json(&expected));
    }

    /// What `kubectl apply` sends (changed and new items, deletions, and
    /// `$setElementOrder` with the desired names) yields exactly the
    /// desired list.
    #[test]
    fn set_element_order_patches_reach_the_desired_list(
        original in containers(),
        desired in containers(),
    ) {
        let (shapes, root) = common::pod_shapes();
        let mut items: Vec<Value> = desired
            .iter()
            .filter(|c| !original.contains(c))
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        items.extend(
            original
                .iter()
                .filter(|(n, _)| !desired.iter().any(|(d, _)| d == n))
                .map(|(n, _)| json!({"name": n, "$patch": "delete"})),
        );
        let order: Vec<Value> = desired.iter().map(|(n, _)| json!({"name": n})).collect();
        let before = json!({"spec": {"containers": to_json(&original)}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": order,
            "containers": items,
        }});
        let got = apply_patch(&before, &patch, &shapes, root).unwrap();
        prop_assert_eq!(&got["spec"]["containers"], &to_json(&desired));
    }

    /// Whatever the order, the model's content facts hold: names unique,
    /// deleted names gone unless set again, last image wins.
    #[test]
    fn container_lists_keep_one_item_per_name(original in containers(), ops in ops()) {
        let (shapes, root) = common::pod_shapes();
        let before = json!({"spec": {"containers": to_json(&original)}});
        let patch = json!({"spec": {"containers": ops.iter().map(op_json).collect::<Vec<_>>()}});
        let got = apply_patch(&before, &patch, &shapes, root).unwrap();
        let list = got["spec"]["containers"].as_array().unwrap();
        let mut names: Vec<&str> = list.iter().map(|c| c["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        prop_assert_eq!(names.len(), len);
        let got_pairs: Vec<Ctr> = list
            .iter()
            .map(|c| (
                c["name"].as_str().unwrap().to_owned(),
                c["image"].as_str().unwrap_or("").to_owned(),
            ))
            .collect();
        prop_assert_eq!(images(&got_pairs), images(&model(&original, &ops)));
    }
}

// ---- JSON merge patch on untyped maps -----------------------------------

/// A JSON value without nulls: maps nest, lists hold scalars or maps.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(|n| json!(n)),
        prop::sample::select(vec!["x", "y", ""]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            object(inner),
        ]
    })
}

fn object(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(str::to_owned);
    prop::collection::btree_map(key, inner, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>()))
}

/// RFC 7386's patch from `a` to `b` (both without nulls).
fn diff(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for k in a.keys() {
        if !b.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    for (k, bv) in b {
        match (a.get(k), bv) {
            (Some(av), bv) if av == bv => {}
            (Some(Value::Object(am)), Value::Object(bm)) => {
                patch.insert(k.clone(), Value::Object(diff(am, bm)));
            }
            _ => {
                patch.insert(k.clone(), bv.clone());
            }
        }
    }
    patch
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// apply(apply(a, a→b), b→a) == a on untyped maps, passing through b.
    #[test]
    fn merge_patch_round_trips_on_untyped_maps(
        a in object(value()),
        b in object(value()),
    ) {
        let mut shapes = Shapes::new();
        let root = shapes.push(Shape::Untyped);
        let (Value::Object(am), Value::Object(bm)) = (&a, &b) else {
            unreachable!("object() makes objects");
        };
        let ab = Value::Object(diff(am, bm));
        let ba = Value::Object(diff(bm, am));
        let there = apply_patch(&a, &ab, &shapes, root).unwrap();
        prop_assert_eq!(&there, &b);
        let back = apply_patch(&there, &ba, &shapes, root).unwrap();
        prop_assert_eq!(back, a);
    }
}
