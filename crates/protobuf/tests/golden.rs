//! Hand-built protobuf bodies decoded into the JSON upstream would render.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Msg, envelope, go_meta};
use serde_json::json;
use skiff_protobuf::decode;

#[test]
fn configmap_with_data_and_binary_data() {
    let raw = Msg::new()
        .msg(1, go_meta("x").entry(11, "app", "web"))
        .entry(2, "a", "b")
        .entry(2, "empty", "")
        .msg(3, Msg::new().string(1, "bin").bytes(2, &[0, 1, 2, 0xff]));
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", raw)).unwrap(),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "creationTimestamp": null, "labels": {"app": "web"}},
            "data": {"a": "b", "empty": ""},
            "binaryData": {"bin": "AAEC/w=="},
        })
    );
}

#[test]
fn secret_bytes_become_base64_and_present_false_pointer_is_kept() {
    let raw = Msg::new()
        .msg(1, go_meta("s"))
        .msg(2, Msg::new().string(1, "password").bytes(2, b"hunter2"))
        .msg(2, Msg::new().string(1, "nothing"))
        .string(3, "Opaque")
        .bool(5, false);
    assert_eq!(
        decode(&envelope("v1", "Secret", raw)).unwrap(),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "creationTimestamp": null},
            "data": {"password": "aHVudGVyMg==", "nothing": ""},
            "type": "Opaque",
            "immutable": false,
        })
    );
}

#[test]
fn namespace_renders_non_pointer_structs() {
    let raw = Msg::new()
        .msg(1, go_meta("ns"))
        .msg(2, Msg::new())
        .msg(3, Msg::new().string(1, ""));
    assert_eq!(
        decode(&envelope("v1", "Namespace", raw)).unwrap(),
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "ns", "creationTimestamp": null},
            "spec": {}, "status": {},
        })
    );
}

#[test]
fn delete_options_under_any_group_version() {
    let raw = Msg::new()
        .int(1, 0)
        .string(4, "Foreground")
        .string(5, "All");
    assert_eq!(
        decode(&envelope("apps/v1", "DeleteOptions", raw)).unwrap(),
        json!({
            "apiVersion": "apps/v1", "kind": "DeleteOptions",
            "gracePeriodSeconds": 0, "propagationPolicy": "Foreground", "dryRun": ["All"],
        })
    );
}
