//! Server-side field validation: unknown and duplicate fields, reported
//! with upstream's paths and messages.

use serde_json::{Value, json};
use skiff_openapi::{
    FieldProblem, OpenApi, ResourceSpec, builtin, duplicate_fields, strict_error_message,
    strict_message, warning_header_values,
};
use std::sync::OnceLock;
use std::time::Instant;

fn api() -> &'static OpenApi {
    static API: OnceLock<OpenApi> = OnceLock::new();
    API.get_or_init(|| builtin().build().expect("builtin documents build"))
}

fn unknown(group: &str, kind: &str, obj: Value) -> Vec<String> {
    api().unknown_fields(group, "v1", kind, &obj)
}

fn problems(group: &str, kind: &str, json: &str) -> Vec<String> {
    api()
        .field_problems(group, "v1", kind, json.as_bytes())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "any.key/really": "x"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "A", "value": "b"}],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": 0.25, "memory": 67108864},
                        },
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        "livenessProbe": {"tcpSocket": {"port": 80}},
                    }],
                    "nodeSelector": {"disk": "ssd"},
                },
            },
        },
        "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]},
    })
}

#[test]
fn a_valid_deployment_has_no_problems() {
    assert_eq!(
        unknown("apps", "Deployment", deployment()),
        Vec::<String>::new()
    );
    let body = deployment().to_string();
    assert_eq!(problems("apps", "Deployment", &body), Vec::<String>::new());
}

#[test]
fn unknown_top_level_nested_and_status_fields() {
    let mut d = deployment();
    d["bogus"] = json!(1);
    d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["extra"] = json!({"deep": 1});
    d["status"]["phase"] = json!("Running");
    assert_eq!(
        unknown("apps", "Deployment", d),
        [
            "bogus",
            "spec.template.spec.containers[0].imagee",
            "spec.template.spec.containers[0].ports[0].extra",
            "status.phase",
        ]
    );
}

#[test]
fn metadata_follows_object_meta_and_its_maps_are_free_form() {
    let mut d = deployment();
    d["metadata"]["unknownMeta"] = json!("x");
    d["metadata"]["labels"]["whatever"] = json!("y");
    d["spec"]["template"]["metadata"]["nmae"] = json!("z");
    d["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "X", "name": "n", "uid": "u", "blockOwner": true}]);
    assert_eq!(
        unknown("apps", "Deployment", d),
        [
            "metadata.ownerReferences[0].blockOwner",
            "metadata.unknownMeta",
            "spec.template.metadata.nmae",
        ]
    );
}

#[test]
fn configmap_data_takes_any_key() {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"a": "1", "b.conf": "2", "kind": "3"},
        "binaryData": {"x": "AA=="},
        "immutable": false,
    });
    assert!(unknown("", "ConfigMap", cm).is_empty());
}

#[test]
fn int_or_string_and_quantities_take_numbers_and_strings() {
    let svc = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [
            {"port": 80, "targetPort": 8080},
            {"port": 81, "targetPort": "http"},
        ]},
    });
    assert!(unknown("", "Service", svc).is_empty());
    let quota = json!({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": 10, "requests.cpu": "4", "limits.memory": "8Gi"}},
    });
    assert!(unknown("", "ResourceQuota", quota).is_empty());
}

#[test]
fn free_form_json_is_not_checked() {
    // ControllerRevision.data is a RawExtension.
    let rev = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
        "revision": 1, "data": {"anything": {"goes": [1, 2]}},
    });
    assert!(unknown("apps", "ControllerRevision", rev).is_empty());
}

#[test]
fn crd_schemas_recurse_through_maps() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "default": {"free": "form"},
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"cron": {"type": "string", "typo": 1}},
                    }},
                }},
            }],
        },
    });
    assert_eq!(
        api().unknown_fields(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            &crd
        ),
        ["spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.cron.typo"]
    );
}

#[test]
fn unregistered_kinds_have_no_schema() {
    assert!(!api().has_schema("apps", "v1", "Nope"));
    assert!(api().has_schema("apps", "v1", "Deployment"));
    assert!(unknown("apps", "Nope", json!({"x": 1})).is_empty());
    // Duplicates are still found.
    assert_eq!(
        problems("apps", "Nope", r#"{"x":1,"x":2}"#),
        [r#"duplicate field "x""#]
    );
}

/// Upstream's integration test body (test/integration/apiserver/
/// field_validation_test.go, `invalidBodyJSON`) and the message it expects.
#[test]
fn strict_message_matches_upstream_for_a_typed_object() {
    let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "dupename",
            "name": "deployment",
            "labels": {"app": "nginx"},
            "unknownMeta": "metaVal"
        },
        "spec": {
            "unknown1": "val1",
            "unknownDupe": "valDupe",
            "unknownDupe": "valDupe2",
            "paused": true,
            "paused": false,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{
                        "name":  "nginx",
                        "image": "nginx:latest",
                        "unknownNested": "val1",
                        "imagePullPolicy": "Always",
                        "imagePullPolicy": "Never"
                    }]
                }
            }
        }
    }"#;
    let found = api().field_problems("apps", "v1", "Deployment", body.as_bytes());
    assert_eq!(
        strict_message(&found),
        r#"strict decoding error: duplicate field "metadata.name", unknown field "metadata.unknownMeta", unknown field "spec.unknown1", unknown field "spec.unknownDupe", duplicate field "spec.paused", unknown field "spec.template.spec.containers[0].unknownNested", duplicate field "spec.template.spec.containers[0].imagePullPolicy""#
    );
    assert_eq!(
        strict_error_message("Deployment", "v1", &found[..1]),
        r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: duplicate field "metadata.name""#
    );
    assert_eq!(
        warning_header_values(&found[..2]),
        [
            r#"299 - "duplicate field \"metadata.name\"""#,
            r#"299 - "unknown field \"metadata.unknownMeta\"""#,
        ]
    );
}

#[test]
fn duplicates_are_found_at_any_depth() {
    assert_eq!(duplicate_fields(br#"{"a":1,"a":2}"#), ["a"]);
    assert_eq!(
        duplicate_fields(br#"{"spec":{"x":[{"a":1},{"b":{"c":1,"c":2},"b":3}],"x":0}, "a":{}}"#),
        ["spec.x[1].b.c", "spec.x[1].b", "spec.x"]
    );
    assert!(duplicate_fields(br#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#).is_empty());
    // Reported once however often repeated.
    assert_eq!(duplicate_fields(br#"{"a":1,"a":2,"a":3}"#), ["a"]);
    // Keys compare decoded.
    assert_eq!(duplicate_fields(br#"{"a":1,"\u0061":2}"#), ["a"]);
}

#[test]
fn messages_quote_like_go() {
    let problems = [
        FieldProblem::Unknown("spec.foo".into()),
        FieldProblem::Duplicate("metadata.labels.we\"ird".into()),
    ];
    assert_eq!(
        strict_message(&problems),
        r#"strict decoding error: unknown field "spec.foo", duplicate field "metadata.labels.we\"ird""#
    );
    assert_eq!(
        warning_header_values(&problems),
        [
            r#"299 - "unknown field \"spec.foo\"""#,
            r#"299 - "duplicate field \"metadata.labels.we\\\"ird\"""#,
        ]
    );
}

fn custom_api() -> OpenApi {
    let mut b = builtin();
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "knownField1": {"type": "string"},
                    "replicas": {"x-kubernetes-int-or-string": true},
                    "ports": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"containerPort": {"type": "integer"}, "protocol": {"type": "string"}},
                    }},
                    "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "partly": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}},
                    },
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                    "empty": {"type": "object"},
                    "embeddedObj": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "properties": {"metadata": {"type": "object"}}},
                },
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        },
    });
    b.add_custom(
        ResourceSpec {
            group: "stable.example.com".into(),
            version: "v1".into(),
            kind: "CronTab".into(),
            plural: "crontabs".into(),
            namespaced: true,
            subresources: vec![],
        },
        schema,
    )
    .expect("object schema");
    b.build().expect("builds")
}

#[test]
fn custom_resources_use_their_schema() {
    let api = custom_api();
    let cr = json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "c", "unknownMeta": 1, "labels": {"a": "b"}},
        "spec": {
            "knownField1": "x", "unknown1": 1, "replicas": "50%",
            "ports": [{"containerPort": 80, "protocol": "TCP", "unknownNested": 1}],
            "config": {"anything": {"at": ["all"]}},
            "partly": {"free": 1, "typed": {"a": "x", "b": 2}},
            "tags": {"any": "key"},
            "empty": {"dropped": 1},
            "embeddedObj": {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "m", "unknownEmbeddedMeta": 1}, "data": {}},
        },
        "status": {"ready": true, "phase": "x"},
    });
    assert_eq!(
        api.unknown_fields("stable.example.com", "v1", "CronTab", &cr),
        [
            "metadata.unknownMeta",
            "spec.embeddedObj.data",
            "spec.embeddedObj.metadata.unknownEmbeddedMeta",
            "spec.empty.dropped",
            "spec.partly.typed.b",
            "spec.ports[0].unknownNested",
            "spec.unknown1",
            "status.phase",
        ]
    );
}

/// Custom resources: duplicates first (even inside unknown fields), then
/// the unknown fields, sorted, as upstream's decode-then-prune reports.
#[test]
fn custom_resource_problems_follow_upstream_order() {
    let api = custom_api();
    let body = r#"{"apiVersion":"stable.example.com/v1","kind":"CronTab",
        "metadata":{"name":"a","name":"b","unknownMeta":1},
        "spec":{"unknown1":"v","unknownDupe":1,"unknownDupe":2,"knownField1":"a","knownField1":"b",
                "ports":[{"containerPort":1,"containerPort":2,"unknownNested":"v"}]}}"#;
    let found: Vec<String> = api
        .field_problems("stable.example.com", "v1", "CronTab", body.as_bytes())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            r#"duplicate field "metadata.name""#,
            r#"duplicate field "spec.unknownDupe""#,
            r#"duplicate field "spec.knownField1""#,
            r#"duplicate field "spec.ports[0].containerPort""#,
            r#"unknown field "metadata.unknownMeta""#,
            r#"unknown field "spec.ports[0].unknownNested""#,
            r#"unknown field "spec.unknown1""#,
            r#"unknown field "spec.unknownDupe""#,
        ]
    );
}

/// Prints the cost per check of a typical Deployment (no timing assert:
/// machines differ). Run with `--release --nocapture` for real figures.
#[test]
fn speed_of_a_typical_deployment() {
    let api = api();
    let obj = deployment();
    let body = serde_json::to_vec(&obj).expect("serializes");
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(
            api.unknown_fields("apps", "v1", "Deployment", &obj)
                .is_empty()
        );
    }
    let per_value = start.elapsed() / rounds;
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(
            api.field_problems("apps", "v1", "Deployment", &body)
                .is_empty()
        );
    }
    let per_body = start.elapsed() / rounds;
    println!(
        "Deployment ({} bytes): unknown_fields {per_value:?}, field_problems {per_body:?}",
        body.len()
    );
}
