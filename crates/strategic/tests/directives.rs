//! Every directive, with expected results taken from upstream's documented
//! cases (apimachinery `strategicpatch` tests, the "Update API Objects in
//! Place Using kubectl patch" task, the retainKeys and preserve-order
//! design proposals), on a Pod/Deployment-like schema.

#![allow(clippy::unwrap_used)]

mod common;

use serde_json::{Value, json};
use skiff_strategic::{MAX_DEPTH, PatchError, apply_patch};

fn apply(original: Value, patch: Value) -> Result<Value, PatchError> {
    let (shapes, root) = common::pod_shapes();
    apply_patch(&original, &patch, &shapes, root)
}

fn ok(original: Value, patch: Value) -> Value {
    apply(original, patch).unwrap()
}

fn spec(v: Value) -> Value {
    json!({ "spec": v })
}

fn meta(v: Value) -> Value {
    json!({ "metadata": v })
}

fn err(original: Value, patch: Value) -> String {
    apply(original, patch).unwrap_err().to_string()
}

// ---- maps ----------------------------------------------------------------

#[test]
fn maps_merge_recursively_and_null_deletes() {
    let original = json!({
        "metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}},
        "spec": {"replicas": 1}
    });
    let patch = json!({
        "metadata": {"labels": {"tier": null, "env": "prod"}},
        "spec": {"replicas": 3, "nodeSelector": {"disk": "ssd", "gone": null}}
    });
    assert_eq!(
        ok(original, patch),
        json!({
            "metadata": {"name": "p", "labels": {"app": "web", "env": "prod"}},
            "spec": {"replicas": 3, "nodeSelector": {"disk": "ssd"}}
        })
    );
}

#[test]
fn null_for_a_missing_key_is_dropped() {
    assert_eq!(
        ok(json!({"a": 1}), json!({"b": null, "a": null})),
        json!({})
    );
}

#[test]
fn patch_replace_in_a_map_replaces_it() {
    // upstream: "add key and delete all keys from map"
    assert_eq!(
        ok(
            json!({"name": 1, "value": 1}),
            json!({"other": "a", "$patch": "replace"})
        ),
        json!({"other": "a"})
    );
    // upstream: "delete all keys from map"
    assert_eq!(
        ok(json!({"name": 1, "value": 1}), json!({"$patch": "replace"})),
        json!({})
    );
    // nested, and the replacement is itself cleaned of directives/nulls
    assert_eq!(
        ok(
            spec(json!({"nodeSelector": {"a": "1", "b": "2"}})),
            spec(json!({"nodeSelector": {"$patch": "replace", "c": "3", "d": null}}))
        ),
        spec(json!({"nodeSelector": {"c": "3"}}))
    );
}

#[test]
fn patch_delete_in_a_map_empties_it() {
    // upstream: "delete map from nested map"
    assert_eq!(
        ok(
            spec(json!({"nodeSelector": {"key1": 1, "key2": 1}})),
            spec(json!({"nodeSelector": {"$patch": "delete"}}))
        ),
        spec(json!({"nodeSelector": {}}))
    );
}

#[test]
fn patch_merge_is_the_default() {
    assert_eq!(
        ok(
            spec(json!({"nodeSelector": {"a": "1"}})),
            spec(json!({"nodeSelector": {"$patch": "merge", "b": "2"}}))
        ),
        spec(json!({"nodeSelector": {"a": "1", "b": "2"}}))
    );
}

#[test]
fn unknown_patch_directive_is_refused() {
    assert_eq!(
        err(
            spec(json!({"nodeSelector": {}})),
            spec(json!({"nodeSelector": {"$patch": "explode"}}))
        ),
        "unknown patch type: explode in map: map[$patch:explode]"
    );
    assert!(
        err(
            spec(json!({"containers": [{"name": "a"}]})),
            spec(json!({"containers": [{"name": "a", "$patch": 7}]}))
        )
        .starts_with("unknown patch type: 7 in map: ")
    );
}

#[test]
fn replace_strategy_replaces_maps() {
    assert_eq!(
        ok(
            spec(json!({"replaced": {"a": "1", "b": "2"}})),
            spec(json!({"replaced": {"c": "3"}}))
        ),
        spec(json!({"replaced": {"c": "3"}}))
    );
}

#[test]
fn values_of_another_type_replace() {
    assert_eq!(
        ok(
            spec(json!({"extra": "scalar"})),
            spec(json!({"extra": {"a": {"b": null, "c": 1}}}))
        ),
        spec(json!({"extra": {"a": {"c": 1}}}))
    );
    assert_eq!(
        ok(
            spec(json!({"extra": {"a": 1}})),
            spec(json!({"extra": [1, 2]}))
        ),
        spec(json!({"extra": [1, 2]}))
    );
    assert_eq!(
        ok(spec(json!({"extra": [1]})), spec(json!({"extra": 5}))),
        spec(json!({"extra": 5}))
    );
}

// ---- $retainKeys ------------------------------------------------------------

#[test]
fn retain_keys_clears_unlisted_keys() {
    // The Deployment example of the retainKeys proposal / kubectl patch docs:
    // switching to Recreate drops rollingUpdate.
    let original = spec(json!({
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    }));
    let patch = spec(json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}));
    assert_eq!(
        ok(original, patch),
        spec(json!({"strategy": {"type": "Recreate"}}))
    );
}

#[test]
fn retain_keys_field_merges_normally_without_the_directive() {
    // upstream: "retainKeys map can add/change/delete a field when no
    // retainKeys directive present", "retainKeys map merge an empty map"
    let original =
        spec(json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}));
    assert_eq!(
        ok(
            original.clone(),
            spec(json!({"strategy": {"rollingUpdate": {"maxSurge": 2}}}))
        ),
        spec(json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2}}}))
    );
    assert_eq!(
        ok(
            original.clone(),
            spec(json!({"strategy": {"rollingUpdate": null}}))
        ),
        spec(json!({"strategy": {"type": "RollingUpdate"}}))
    );
    assert_eq!(
        ok(original.clone(), spec(json!({"strategy": {}}))),
        original
    );
}

#[test]
fn retain_keys_in_merged_list_items() {
    // A volume switching source: emptyDir -> hostPath (the retainKeys proposal).
    let original = spec(json!({"volumes": [
        {"name": "a", "emptyDir": {}},
        {"name": "b", "configMap": {"name": "cm"}}
    ]}));
    let patch = spec(json!({"volumes": [
        {"name": "b", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}
    ]}));
    assert_eq!(
        ok(original, patch),
        spec(json!({"volumes": [
            {"name": "a", "emptyDir": {}},
            {"name": "b", "hostPath": {"path": "/x"}}
        ]}))
    );
}

#[test]
fn retain_keys_errors() {
    let original = spec(json!({"strategy": {"type": "RollingUpdate"}}));
    // a key set by the patch but not retained
    assert_eq!(
        err(
            original.clone(),
            spec(json!({"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}))
        ),
        "invalid patch format of retainKeys"
    );
    assert_eq!(
        err(original, spec(json!({"strategy": {"$retainKeys": "type"}}))),
        "invalid patch format of retainKeys"
    );
}

// ---- lists of objects merged by key -----------------------------------------

#[test]
fn containers_merge_by_name_and_new_ones_come_first() {
    // kubectl patch docs (current): adding patch-demo-ctr-2 to a Deployment
    // without `$setElementOrder` lists it before the untouched container,
    // as upstream's mergeSortedSlice puts items the server never had
    // ahead of server-only ones.
    let original = spec(json!({"containers": [{"name": "patch-demo-ctr", "image": "nginx"}]}));
    let patch = spec(json!({"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}));
    assert_eq!(
        ok(original, patch),
        spec(json!({"containers": [
            {"name": "patch-demo-ctr-2", "image": "redis"},
            {"name": "patch-demo-ctr", "image": "nginx"}
        ]}))
    );
}

#[test]
fn nested_merge_keys_ports_env_mounts() {
    let original = spec(json!({"containers": [{
        "name": "web",
        "image": "nginx:1",
        "ports": [{"containerPort": 80, "name": "http"}],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "args": ["-a", "-b"]
    }]}));
    let patch = spec(json!({"containers": [{
        "name": "web",
        "image": "nginx:2",
        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
        "env": [{"name": "B", "value": null}, {"name": "A", "$patch": "delete"}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": true}],
        "args": ["-c"]
    }]}));
    assert_eq!(
        ok(original, patch),
        spec(json!({"containers": [{
            "name": "web",
            "image": "nginx:2",
            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}],
            "env": [{"name": "B"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
            "args": ["-c"]
        }]}))
    );
}

#[test]
fn merge_key_numbers_compare_as_numbers() {
    let out = ok(
        spec(json!({"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]})),
        spec(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80.0, "name": "h"}]}]}),
        ),
    );
    let ports = &out["spec"]["containers"][0]["ports"];
    assert_eq!(ports.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(ports[0]["name"], "h");
    assert_eq!(ports[0]["containerPort"].as_f64(), Some(80.0));
}

#[test]
fn patch_delete_items_remove_every_match() {
    // upstream: "delete all duplicate entries in a merging list"
    let original = spec(json!({"containers": [
        {"name": "1"}, {"name": "1"}, {"name": "2", "image": "a"}, {"name": "3"}, {"name": "3"}
    ]}));
    let patch = spec(json!({"containers": [
        {"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}
    ]}));
    assert_eq!(
        ok(original, patch),
        spec(json!({"containers": [{"name": "2", "image": "a"}]}))
    );
}

#[test]
fn delete_of_a_missing_item_is_a_no_op() {
    let original = spec(json!({"containers": [{"name": "a"}]}));
    assert_eq!(
        ok(
            original.clone(),
            spec(json!({"containers": [{"name": "zz", "$patch": "delete"}]}))
        ),
        original
    );
}

#[test]
fn patch_replace_item_replaces_the_list() {
    // upstream: "delete all items from merging list"
    assert_eq!(
        ok(
            spec(json!({"containers": [{"name": "1"}, {"name": "2"}]})),
            spec(json!({"containers": [{"$patch": "replace"}]}))
        ),
        spec(json!({"containers": []}))
    );
    assert_eq!(
        ok(
            spec(json!({"containers": [{"name": "1", "image": "x"}, {"name": "2"}]})),
            spec(json!({"containers": [{"name": "3"}, {"$patch": "replace"}, {"name": "1"}]}))
        ),
        spec(json!({"containers": [{"name": "3"}, {"name": "1"}]}))
    );
}

#[test]
fn empty_merging_lists_merge() {
    // upstream: "merge empty merging lists"
    assert_eq!(
        ok(
            spec(json!({"containers": []})),
            spec(json!({"containers": []}))
        ),
        spec(json!({"containers": []}))
    );
    let original = spec(json!({"containers": [{"name": "a"}]}));
    assert_eq!(
        ok(original.clone(), spec(json!({"containers": []}))),
        original
    );
}

#[test]
fn patch_order_wins_for_the_items_it_names() {
    // upstream: "preserve the order from the patch in a merging list"
    let original =
        spec(json!({"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]}));
    assert_eq!(
        ok(
            original.clone(),
            spec(json!({"containers": [
                {"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "args": ["x"]}
            ]}))
        ),
        spec(json!({"containers": [
            {"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "image": "b", "args": ["x"]}
        ]}))
    );
    // "... 2": the untouched item keeps its place before the later ones
    assert_eq!(
        ok(
            original,
            spec(json!({"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}))
        ),
        spec(json!({"containers": [
            {"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"}
        ]}))
    );
}

#[test]
fn missing_merge_key_is_refused_like_upstream() {
    // kubectl patch deployment nginx -p '{"spec":...{"containers":[{"image":"httpd"}]}}'
    assert_eq!(
        err(
            spec(json!({"containers": [{"name": "nginx", "image": "nginx"}]})),
            spec(json!({"containers": [{"image": "httpd"}]}))
        ),
        "map: map[image:httpd] does not contain declared merge key: name"
    );
    assert_eq!(
        err(
            spec(json!({"containers": [{"name": "a"}]})),
            spec(json!({"containers": [{"$patch": "delete"}]}))
        ),
        "map: map[$patch:delete] does not contain declared merge key: name"
    );
}

#[test]
fn list_type_errors() {
    assert_eq!(
        err(
            spec(json!({"containers": [{"name": "a"}]})),
            spec(json!({"containers": ["a"]}))
        ),
        "list element types are not identical: [[map[name:a]] [a]]"
    );
    assert_eq!(
        err(
            meta(json!({"finalizers": [["a"]]})),
            meta(json!({"finalizers": ["b"]}))
        ),
        "lists of lists are not supported"
    );
}

// ---- lists of scalars ------------------------------------------------------

#[test]
fn scalar_lists_unite() {
    // upstream: "unique scalars when merging lists"
    assert_eq!(
        ok(
            meta(json!({"finalizers": [1, 2]})),
            meta(json!({"finalizers": [2, 3]}))
        ),
        meta(json!({"finalizers": [1, 2, 3]}))
    );
    // upstream: "preserve the order from the patch in a merging int list"
    assert_eq!(
        ok(
            meta(json!({"finalizers": [1, 2, 3]})),
            meta(json!({"finalizers": [3, 1, 2]}))
        ),
        meta(json!({"finalizers": [3, 1, 2]}))
    );
    assert_eq!(
        ok(
            meta(json!({"finalizers": [1, 2, 3]})),
            meta(json!({"finalizers": [3, 1]}))
        ),
        meta(json!({"finalizers": [2, 3, 1]}))
    );
    assert_eq!(
        ok(
            meta(json!({"finalizers": ["a/x"]})),
            meta(json!({"finalizers": ["b/y", "a/x"]}))
        ),
        meta(json!({"finalizers": ["b/y", "a/x"]}))
    );
}

#[test]
fn delete_from_primitive_list() {
    // upstream raw cases for $deleteFromPrimitiveList
    assert_eq!(
        ok(
            meta(json!({"finalizers": [1, 2, 3]})),
            meta(json!({"$deleteFromPrimitiveList/finalizers": [2]}))
        ),
        meta(json!({"finalizers": [1, 3]}))
    );
    assert_eq!(
        ok(
            meta(json!({"finalizers": [1, 2]})),
            meta(json!({"$deleteFromPrimitiveList/finalizers": [3]}))
        ),
        meta(json!({"finalizers": [1, 2]}))
    );
    assert_eq!(
        ok(
            meta(json!({"finalizers": null})),
            meta(json!({"$deleteFromPrimitiveList/finalizers": [3]}))
        ),
        meta(json!({"finalizers": null}))
    );
    assert_eq!(
        ok(
            meta(json!({"labels": {"a": "b"}})),
            meta(json!({"$deleteFromPrimitiveList/finalizers": [3]}))
        ),
        meta(json!({"labels": {"a": "b"}}))
    );
    assert_eq!(
        ok(
            spec(json!({"args": [1, 2, 3]})),
            spec(json!({"$deleteFromPrimitiveList/args": [2]}))
        ),
        spec(json!({"args": [1, 3]}))
    );
    // kubectl's usual shape: additions, deletions and the order together
    assert_eq!(
        ok(
            meta(json!({"finalizers": ["a", "b", "c"]})),
            meta(json!({
                "$setElementOrder/finalizers": ["c", "d", "a"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "finalizers": ["d"]
            }))
        ),
        meta(json!({"finalizers": ["c", "d", "a"]}))
    );
    assert_eq!(
        err(
            meta(json!({})),
            meta(json!({"$deleteFromPrimitiveList/finalizers": "a"}))
        ),
        "invalid patch format of primitive list"
    );
    assert_eq!(
        err(
            meta(json!({})),
            meta(json!({"$deleteFromPrimitiveListfinalizers": ["a"]}))
        ),
        "invalid patch format of primitive list"
    );
}

// ---- lists replaced --------------------------------------------------------

#[test]
fn lists_without_merge_strategy_are_replaced() {
    // kubectl patch docs: tolerations have no patch strategy.
    let original = spec(
        json!({"tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]}),
    );
    let patch =
        spec(json!({"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}));
    assert_eq!(ok(original, patch.clone()), patch);
    assert_eq!(
        ok(
            spec(json!({"args": ["a", "b"]})),
            spec(json!({"args": ["b"]}))
        ),
        spec(json!({"args": ["b"]}))
    );
}

// ---- $setElementOrder ------------------------------------------------------

#[test]
fn set_element_order_reorders_object_lists() {
    // what kubectl sends after reordering containers and changing one
    let original = spec(json!({"containers": [
        {"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "c", "image": "1"}
    ]}));
    let patch = spec(json!({
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
        "containers": [{"name": "a", "image": "2"}]
    }));
    assert_eq!(
        ok(original.clone(), patch),
        spec(json!({"containers": [
            {"name": "c", "image": "1"}, {"name": "a", "image": "2"}, {"name": "b", "image": "1"}
        ]}))
    );
    // only the order list
    let patch = spec(json!({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}));
    assert_eq!(
        ok(original, patch),
        spec(json!({"containers": [
            {"name": "b", "image": "1"}, {"name": "a", "image": "1"}, {"name": "c", "image": "1"}
        ]}))
    );
}

#[test]
fn set_element_order_may_name_absent_items() {
    // upstream: "$setElementOrder contains item that is not present in the list to be merged"
    assert_eq!(
        ok(
            spec(json!({"containers": [{"name": "1"}, {"name": "3"}]})),
            spec(json!({
                "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]
            }))
        ),
        spec(json!({"containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}))
    );
    // "... in the int list to be merged"
    assert_eq!(
        ok(
            meta(json!({"finalizers": [1, 3]})),
            meta(json!({"$setElementOrder/finalizers": [3, 2, 1]}))
        ),
        meta(json!({"finalizers": [3, 1]}))
    );
}

#[test]
fn set_element_order_with_deletions_and_additions() {
    let original = spec(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}));
    let patch = spec(json!({
        "$setElementOrder/containers": [{"name": "c"}, {"name": "new"}, {"name": "a"}],
        "containers": [{"name": "new", "image": "x"}, {"name": "b", "$patch": "delete"}]
    }));
    assert_eq!(
        ok(original, patch),
        spec(json!({"containers": [{"name": "c"}, {"name": "new", "image": "x"}, {"name": "a"}]}))
    );
}

#[test]
fn set_element_order_for_a_new_list() {
    let patch = spec(json!({
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "b"}, {"name": "a", "env": [{"name": "X", "$patch": "delete"}]}]
    }));
    assert_eq!(
        ok(spec(json!({})), patch),
        spec(json!({"containers": [{"name": "b"}, {"name": "a", "env": []}]}))
    );
}

#[test]
fn set_element_order_errors() {
    // upstream: "should check if order in $setElementOrder and patch list match"
    let e = err(
        spec(json!({"containers": [{"name": "1"}, {"name": "3"}, {"name": "2"}]})),
        spec(json!({
            "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]
        })),
    );
    assert!(e.contains("doesn't match $setElementOrder list"), "{e}");
    let e = err(
        meta(json!({"finalizers": [1, 3, 2]})),
        meta(json!({"$setElementOrder/finalizers": [1, 2, 3], "finalizers": [3, 1]})),
    );
    assert!(e.contains("doesn't match"), "{e}");
    assert_eq!(
        err(
            meta(json!({})),
            meta(json!({"$setElementOrder/finalizers": {"a": 1}}))
        ),
        "invalid patch format of setElementOrder list"
    );
    assert_eq!(
        err(
            spec(json!({"containers": {"name": "a"}})),
            spec(json!({"$setElementOrder/containers": []}))
        ),
        "expected a []interface {}, but received a map[string]interface {}"
    );
    assert_eq!(
        err(
            spec(json!({"containers": [{"name": "a"}]})),
            spec(json!({"$setElementOrder/containers": [{"image": "a"}]}))
        ),
        "map: map[image:a] does not contain declared merge key: name"
    );
}

// ---- untyped (JSON merge patch) --------------------------------------------

#[test]
fn untyped_fields_merge_like_json_merge_patch() {
    let original =
        spec(json!({"extra": {"a": {"b": 1, "c": [1, 2]}, "d": "x"}, "undeclared": {"k": 1}}));
    let patch = spec(
        json!({"extra": {"a": {"b": null, "c": [3], "e": {"f": null, "g": 1}}}, "undeclared": {"l": 2}}),
    );
    assert_eq!(
        ok(original, patch),
        spec(
            json!({"extra": {"a": {"c": [3], "e": {"g": 1}}, "d": "x"}, "undeclared": {"k": 1, "l": 2}})
        )
    );
}

#[test]
fn directives_still_apply_in_untyped_fields() {
    let original = spec(json!({"extra": {"a": {"x": 1}, "b": {"y": 1, "z": 2}}}));
    let patch =
        spec(json!({"extra": {"a": {"$patch": "replace", "w": 0}, "b": {"$retainKeys": ["z"]}}}));
    assert_eq!(
        ok(original, patch),
        spec(json!({"extra": {"a": {"w": 0}, "b": {"z": 2}}}))
    );
}

// ---- directives never reach the result ------------------------------------

#[test]
fn directives_in_new_values_are_applied_not_stored() {
    let patch = spec(json!({
        "containers": [{
            "name": "new",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "$patch": "delete"}],
            "$setElementOrder/ports": [{"containerPort": 2}, {"containerPort": 1}],
            "ports": [{"containerPort": 2}, {"containerPort": 1, "$patch": "delete"}, {"containerPort": 1}],
            "image": null
        }, {"$patch": "merge"}],
        "$deleteFromPrimitiveList/args": ["x"],
        "extra": {"$patch": "delete"},
        "nodeSelector": {"$retainKeys": ["a"], "a": "1"}
    }));
    let out = ok(spec(json!({})), patch);
    assert_eq!(
        out,
        spec(json!({
            "containers": [{
                "name": "new",
                "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 2}, {"containerPort": 1}]
            }],
            "extra": {},
            "nodeSelector": {"a": "1"}
        }))
    );
    assert!(!out.to_string().contains('$'), "{out}");
}

// ---- malformed input ------------------------------------------------------

#[test]
fn patch_and_original_must_be_objects() {
    assert_eq!(
        err(json!({}), json!([1])),
        "invalid JSON document: the patch of a strategic merge patch must be a JSON object, not an array"
    );
    assert!(apply(json!("x"), json!({})).is_err());
}

#[test]
fn list_without_merge_key_declared_is_refused() {
    let mut shapes = skiff_apimachinery::shape::Shapes::new();
    let item = shapes.push(skiff_apimachinery::shape::Shape::Untyped);
    let list = shapes.push(skiff_apimachinery::shape::Shape::List {
        items: item,
        list_type: skiff_apimachinery::shape::ListType::Atomic,
    });
    let root = shapes.push(common::map(vec![("l", common::merged(list, None))]));
    let e = apply_patch(
        &json!({"l": [{"a": 1}]}),
        &json!({"l": [{"a": 2}]}),
        &shapes,
        root,
    );
    assert_eq!(e, Err(PatchError::NoMergeKeyDeclared));
    // scalars need no key
    assert_eq!(
        apply_patch(&json!({"l": [1]}), &json!({"l": [2]}), &shapes, root),
        Ok(json!({"l": [2, 1]}))
    );
}

fn wrap(key: &str, v: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(key.to_owned(), v);
    Value::Object(m)
}

fn nested(depth: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for i in 0..depth {
        // Not `json!`: it would serialize `v` recursively.
        v = if i % 2 == 0 {
            wrap("a", v)
        } else {
            Value::Array(vec![v])
        };
    }
    v
}

fn drop_iteratively(v: Value) {
    // serde_json drops recursively; unwind deep test values by hand.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
}

#[test]
fn deep_input_is_refused_not_overflowed() {
    let (shapes, root) = common::pod_shapes();
    let deep = wrap("extra", nested(5 * MAX_DEPTH, json!(1)));
    let empty = json!({});
    assert_eq!(
        apply_patch(&empty, &deep, &shapes, root),
        Err(PatchError::TooDeep { max: MAX_DEPTH })
    );
    assert_eq!(
        apply_patch(&deep, &empty, &shapes, root),
        Err(PatchError::TooDeep { max: MAX_DEPTH })
    );
    drop_iteratively(deep);
}

/// `{"l": [{"k": 1, "l": [... {"k": 1, "leaf": leaf}]}]}`, `levels` lists deep.
fn recursive_lists(levels: usize, leaf: Value) -> Value {
    let mut item = wrap("leaf", leaf);
    for _ in 0..levels {
        if let Value::Object(m) = &mut item {
            m.insert("k".into(), json!(1));
        }
        item = wrap("l", Value::Array(vec![item]));
        if let Value::Object(m) = &mut item {
            m.insert("k".into(), json!(1));
        }
    }
    item
}

#[test]
fn the_deepest_accepted_input_fits_a_small_stack() {
    use skiff_apimachinery::shape::{ListType, Shape, Shapes};
    // A recursive schema whose lists merge by key "k": every level of the
    // input costs the most recursion the merge has (map, list, map...).
    // Run on a thread with tokio's default worker stack (2 MiB), in debug.
    let levels = MAX_DEPTH / 2 - 2;
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let mut shapes = Shapes::new();
            let node = shapes.push(Shape::Untyped);
            let list = shapes.push(Shape::List {
                items: node,
                list_type: ListType::Map(vec!["k".into()]),
            });
            let untyped = shapes.push(Shape::Untyped);
            shapes.set(
                node,
                common::map(vec![
                    ("l", common::merged(list, Some("k"))),
                    ("leaf", skiff_apimachinery::shape::Field::plain(untyped)),
                ]),
            );
            let original = recursive_lists(levels, json!({"x": 0}));
            let patch = recursive_lists(levels, json!({"x": null, "y": [{"$patch": "delete"}]}));
            let merged = apply_patch(&original, &patch, &shapes, node);
            let expected = recursive_lists(levels, json!({"y": []}));
            let same = merged.as_ref().ok() == Some(&expected);
            // A fresh list (the clean path) as deep.
            let fresh = apply_patch(&json!({}), &patch, &shapes, node).is_ok();
            for v in [original, patch, expected] {
                drop_iteratively(v);
            }
            if let Ok(v) = merged {
                drop_iteratively(v);
            }
            same && fresh
        })
        .unwrap();
    assert!(handle.join().unwrap());
}
