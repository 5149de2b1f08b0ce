//! Properties of pruning and defaulting on generated objects: pruning a
//! valid object decorated with unknown fields removes exactly those
//! fields, and defaulting is idempotent.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use skiff_crd::Structural;

fn schema() -> Structural {
    Structural::from_schema(&json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1},
                "image": {"type": "string", "default": "busybox"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "port": {"type": "integer", "default": 80}
                }}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "nested": {"type": "object", "default": {}, "properties": {
                    "flag": {"type": "boolean", "default": false},
                    "deep": {"type": "object", "properties": {"x": {"type": "number"}}}
                }}
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                       "properties": {"ready": {"type": "boolean"}}}
        }
    }))
    .unwrap()
}

fn port() -> impl Strategy<Value = Value> {
    (
        proptest::option::of("[a-z]{1,5}"),
        proptest::option::of(1i64..65535),
    )
        .prop_map(|(n, p)| {
            let mut m = Map::new();
            if let Some(n) = n {
                m.insert("name".into(), json!(n));
            }
            if let Some(p) = p {
                m.insert("port".into(), json!(p));
            }
            Value::Object(m)
        })
}

/// A valid object using only known fields.
fn valid_object() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(0i64..100),
        proptest::option::of("[a-z]{1,8}"),
        proptest::option::of(proptest::collection::vec(port(), 0..4)),
        proptest::option::of(proptest::collection::btree_map(
            "[a-z]{1,4}",
            "[a-z]{0,4}",
            0..3,
        )),
        proptest::option::of((
            proptest::option::of(any::<bool>()),
            proptest::option::of(-5.0f64..5.0),
        )),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(replicas, image, ports, labels, nested, ready)| {
            let mut spec = Map::new();
            if let Some(r) = replicas {
                spec.insert("replicas".into(), json!(r));
            }
            if let Some(i) = image {
                spec.insert("image".into(), json!(i));
            }
            if let Some(p) = ports {
                spec.insert("ports".into(), Value::Array(p));
            }
            if let Some(l) = labels {
                spec.insert("labels".into(), json!(l));
            }
            if let Some((flag, x)) = nested {
                let mut n = Map::new();
                if let Some(f) = flag {
                    n.insert("flag".into(), json!(f));
                }
                if let Some(x) = x {
                    n.insert("deep".into(), json!({"x": x}));
                }
                spec.insert("nested".into(), Value::Object(n));
            }
            let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": "t"}, "spec": Value::Object(spec)});
            if let Some(r) = ready {
                obj["status"] = json!({"ready": r, "free": {"anything": [1, 2]}});
            }
            obj
        })
}

/// Paths (JSON pointers to objects) where an unknown field may be added,
/// with the field-path prefix prune reports for them.
fn object_slots(obj: &Value) -> Vec<(String, String)> {
    let mut slots = vec![
        (String::new(), String::new()),
        ("/spec".to_string(), "spec.".to_string()),
    ];
    if let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) {
        for i in 0..ports.len() {
            slots.push((format!("/spec/ports/{i}"), format!("spec.ports[{i}].")));
        }
    }
    if obj.pointer("/spec/nested").is_some() {
        slots.push(("/spec/nested".to_string(), "spec.nested.".to_string()));
    }
    if obj.pointer("/spec/nested/deep").is_some() {
        slots.push((
            "/spec/nested/deep".to_string(),
            "spec.nested.deep.".to_string(),
        ));
    }
    slots
}

proptest! {
    #[test]
    fn prune_removes_exactly_the_extra_fields(
        obj in valid_object(),
        extras in proptest::collection::vec((any::<prop::sample::Index>(), "zz[a-z]{1,6}", any::<i64>()), 0..6),
    ) {
        let s = schema();
        prop_assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));
        let slots = object_slots(&obj);
        let mut decorated = obj.clone();
        let mut expected = Vec::new();
        for (idx, name, val) in &extras {
            let (ptr, prefix) = &slots[idx.index(slots.len())];
            let target = if ptr.is_empty() { Some(&mut decorated) } else { decorated.pointer_mut(ptr) };
            if let Some(Value::Object(m)) = target
                && m.insert(name.clone(), json!(val)).is_none()
            {
                expected.push(format!("{prefix}{name}"));
            }
        }
        let mut removed = s.prune(&mut decorated);
        removed.sort();
        expected.sort();
        prop_assert_eq!(removed, expected);
        prop_assert_eq!(decorated, obj);
    }

    #[test]
    fn default_is_idempotent_and_keeps_objects_valid(obj in valid_object()) {
        let s = schema();
        let mut once = obj.clone();
        s.default(&mut once);
        let mut twice = once.clone();
        s.default(&mut twice);
        prop_assert_eq!(&once, &twice);
        prop_assert!(s.validate(&once).is_empty());
        // defaulting never removes or changes what was set
        let mut pruned = once.clone();
        prop_assert!(s.prune(&mut pruned).is_empty());
    }

    #[test]
    fn hostile_values_never_panic(v in arbitrary_json()) {
        let s = schema();
        let mut x = json!({"spec": v.clone(), "status": v.clone()});
        let _ = s.validate(&x);
        let _ = s.prune(&mut x);
        s.default(&mut x);
        let _ = Structural::from_schema(&v);
        let _ = skiff_crd::validate_definition(&v, Some(&v));
        let _ = skiff_crd::crd_status(&v, std::slice::from_ref(&v), "now");
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z$]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("properties".to_string()),
                    Just("items".to_string()),
                    Just("spec".to_string()),
                    Just("versions".to_string()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
