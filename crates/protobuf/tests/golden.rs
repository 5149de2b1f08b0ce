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

fn container(name: &str, image: &str) -> Msg {
    Msg::new().string(1, name).string(2, image)
}

#[test]
fn deployment_keeps_zero_replicas_and_renders_int_or_string_quantity_probe() {
    let probe = Msg::new()
        .msg(
            1,
            Msg::new().msg(
                2,
                Msg::new()
                    .string(1, "/healthz")
                    .msg(2, common::int_or_string_str("http")),
            ),
        )
        .int(2, 0)
        .int(4, 10);
    let resources = Msg::new()
        .entry_msg(1, "cpu", common::quantity("500m"))
        .entry_msg(2, "memory", common::quantity("128Mi"));
    let web = container("web", "nginx")
        .msg(6, Msg::new().int(3, 80).string(4, "TCP"))
        .msg(8, resources)
        .msg(10, probe)
        .bool(16, false);
    let template = Msg::new()
        .msg(1, go_meta("").entry(11, "app", "d"))
        .msg(2, Msg::new().msg(2, web).int(4, 0));
    let rolling = Msg::new()
        .msg(1, common::int_or_string_int(1))
        .msg(2, common::int_or_string_str("25%"));
    let spec = Msg::new()
        .int(1, 0)
        .msg(2, Msg::new().entry(1, "app", "d"))
        .msg(3, template)
        .msg(4, Msg::new().string(1, "RollingUpdate").msg(2, rolling))
        .int(5, 0)
        .bool(7, false);
    let raw = Msg::new()
        .msg(1, go_meta("d"))
        .msg(2, spec)
        .msg(3, Msg::new());
    assert_eq!(
        decode(&envelope("apps/v1", "Deployment", raw)).unwrap(),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "creationTimestamp": null},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "d"}},
                    "spec": {
                        "containers": [{
                            "name": "web", "image": "nginx",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "128Mi"}},
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                            },
                        }],
                        "terminationGracePeriodSeconds": 0,
                    },
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            },
            "status": {},
        })
    );
}

#[test]
fn pod_with_times_and_status() {
    let ts = |s: u64| Msg::new().varint(1, s).varint(2, 0);
    let meta = go_meta("p").msg(9, ts(1_704_164_705)).int(10, 30);
    let status = Msg::new()
        .string(1, "Running")
        .msg(
            2,
            Msg::new()
                .string(1, "Ready")
                .string(2, "True")
                .msg(3, Msg::new())
                .msg(4, ts(1_704_164_705)),
        )
        .msg(7, ts(0));
    let spec = Msg::new()
        .msg(2, container("c", "busybox"))
        .msg(22, Msg::new().string(1, "k").string(2, "Exists").int(5, 0));
    let raw = Msg::new().msg(1, meta).msg(2, spec).msg(3, status);
    assert_eq!(
        decode(&envelope("v1", "Pod", raw)).unwrap(),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "creationTimestamp": null,
                "deletionTimestamp": "2024-01-02T03:05:05Z", "deletionGracePeriodSeconds": 30,
            },
            "spec": {
                "containers": [{"name": "c", "image": "busybox", "resources": {}}],
                "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 0}],
            },
            "status": {
                "phase": "Running",
                "conditions": [{
                    "type": "Ready", "status": "True",
                    "lastProbeTime": null, "lastTransitionTime": "2024-01-02T03:05:05Z",
                }],
                "startTime": "1970-01-01T00:00:00Z",
            },
        })
    );
}

#[test]
fn service_target_port_int_and_string() {
    let port = |name: &str, port: i64, target: Msg| {
        Msg::new()
            .string(1, name)
            .string(2, "TCP")
            .int(3, port)
            .msg(4, target)
            .int(5, 0)
    };
    let spec = Msg::new()
        .msg(1, port("a", 80, common::int_or_string_int(8080)))
        .msg(1, port("b", 443, common::int_or_string_str("https")))
        .entry(2, "app", "web")
        .string(4, "ClusterIP");
    let raw = Msg::new()
        .msg(1, go_meta("svc"))
        .msg(2, spec)
        .msg(3, Msg::new().msg(1, Msg::new()));
    assert_eq!(
        decode(&envelope("v1", "Service", raw)).unwrap(),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc", "creationTimestamp": null},
            "spec": {
                "ports": [
                    {"name": "a", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "b", "protocol": "TCP", "port": 443, "targetPort": "https"},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn packed_repeated_ints_and_absent_required_fields() {
    // supplementalGroups packed [1, 2]; a container with no fields at all
    let spec = Msg::new()
        .msg(14, Msg::new().bytes(4, &[1, 2]))
        .msg(2, Msg::new());
    let raw = Msg::new().msg(2, spec);
    let pod = decode(&envelope("v1", "Pod", raw)).unwrap();
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({"supplementalGroups": [1, 2]})
    );
    assert_eq!(
        pod["spec"]["containers"],
        json!([{"name": "", "resources": {}}])
    );
    assert_eq!(pod["metadata"], json!({"creationTimestamp": null}));
}

#[test]
fn malformed_bodies_are_errors() {
    // ConfigMap whose data field is a varint
    let raw = Msg::new().varint(2, 1);
    assert!(decode(&envelope("v1", "ConfigMap", raw)).is_err());
    // truncated inner message
    let mut body = envelope("v1", "ConfigMap", Msg::new().entry(2, "a", "b"));
    body.truncate(body.len() - 1);
    assert!(decode(&body).is_err());
    // IntOrString with an impossible type
    let raw = Msg::new().msg(
        2,
        Msg::new().msg(1, Msg::new().int(3, 80).msg(4, Msg::new().int(1, 7))),
    );
    assert!(decode(&envelope("v1", "Service", raw)).is_err());
}
