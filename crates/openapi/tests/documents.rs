//! The rendered documents, checked the way kubectl reads them.

use prost::Message;
use serde_json::{Value, json};
use skiff_openapi::gnostic;
use skiff_openapi::{Error, OpenApi, OpenApiBuilder, ResourceSpec, Subresource, builtin};
use std::sync::OnceLock;

fn api() -> &'static OpenApi {
    static API: OnceLock<OpenApi> = OnceLock::new();
    API.get_or_init(|| builtin().build().expect("builtin documents build"))
}

const GROUP_VERSIONS: &[&str] = &[
    "api/v1",
    "apis/apps/v1",
    "apis/batch/v1",
    "apis/autoscaling/v1",
    "apis/autoscaling/v2",
    "apis/networking.k8s.io/v1",
    "apis/policy/v1",
    "apis/rbac.authorization.k8s.io/v1",
    "apis/coordination.k8s.io/v1",
    "apis/discovery.k8s.io/v1",
    "apis/events.k8s.io/v1",
    "apis/storage.k8s.io/v1",
    "apis/scheduling.k8s.io/v1",
    "apis/certificates.k8s.io/v1",
    "apis/admissionregistration.k8s.io/v1",
    "apis/node.k8s.io/v1",
    "apis/apiextensions.k8s.io/v1",
];

fn v3(gv: &str) -> Value {
    serde_json::from_slice(api().v3_document(gv).expect("document exists")).expect("JSON")
}

fn v2() -> Value {
    serde_json::from_slice(api().v2_json()).expect("v2 is JSON")
}

/// Every `$ref` in `doc` must name an entry of `doc[section...]`.
fn assert_refs_resolve(doc: &Value, prefix: &str, defs: &Value) {
    fn walk(v: &Value, prefix: &str, defs: &Value, seen: &mut usize) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    // (JSONSchemaProps has a *property* named `$ref`.)
                    if let ("$ref", Some(r)) = (k.as_str(), v.as_str()) {
                        let name = r.strip_prefix(prefix).unwrap_or_else(|| panic!("{r}"));
                        assert!(defs.get(name).is_some(), "dangling $ref {r}");
                        *seen += 1;
                    } else {
                        walk(v, prefix, defs, seen);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, prefix, defs, seen)),
            _ => {}
        }
    }
    let mut seen = 0;
    walk(doc, prefix, defs, &mut seen);
    assert!(seen > 0);
}

fn has_gvk(schema: &Value, group: &str, version: &str, kind: &str) -> bool {
    schema["x-kubernetes-group-version-kind"]
        .as_array()
        .is_some_and(|l| l.contains(&json!({"group": group, "version": version, "kind": kind})))
}

fn param_names(op: &Value) -> Vec<&str> {
    op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect()
}

#[test]
fn v3_index_lists_every_group_version() {
    let index: Value = serde_json::from_slice(api().v3_index()).unwrap();
    let paths = index["paths"].as_object().unwrap();
    for gv in GROUP_VERSIONS {
        let url = paths[*gv]["serverRelativeURL"].as_str().unwrap();
        let hash = api().v3_hash(gv).unwrap();
        assert_eq!(url, format!("/openapi/v3/{gv}?hash={hash}"));
        assert!(api().v3_document(gv).is_some());
    }
    assert_eq!(paths.len(), GROUP_VERSIONS.len());
    assert!(api().v3_document("/apis/apps/v1").is_some());
    assert!(api().v3_document("apis/nope/v1").is_none());
}

#[test]
fn v3_documents_are_self_contained() {
    for gv in GROUP_VERSIONS {
        let doc = v3(gv);
        assert_eq!(doc["openapi"], "3.0.0");
        assert_refs_resolve(&doc, "#/components/schemas/", &doc["components"]["schemas"]);
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with(&format!("/{gv}/")), "{path} in {gv}");
            for method in ["get", "put", "post", "patch", "delete"] {
                if let Some(op) = item.get(method) {
                    assert!(op["x-kubernetes-action"].is_string(), "{method} {path}");
                    assert!(op["x-kubernetes-group-version-kind"].is_object());
                }
            }
        }
    }
}

#[test]
fn v3_kinds_carry_group_version_kind() {
    let core = v3("api/v1");
    let schemas = &core["components"]["schemas"];
    assert!(has_gvk(&schemas["io.k8s.api.core.v1.Pod"], "", "v1", "Pod"));
    assert!(has_gvk(
        &schemas["io.k8s.api.core.v1.ConfigMap"],
        "",
        "v1",
        "ConfigMap"
    ));
    assert!(has_gvk(
        &schemas["io.k8s.api.core.v1.ConfigMapList"],
        "",
        "v1",
        "ConfigMapList"
    ));
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
    let apps = v3("apis/apps/v1");
    let deployment = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert!(has_gvk(deployment, "apps", "v1", "Deployment"));
    // $ref with a description is wrapped in allOf, as upstream does.
    assert_eq!(
        deployment["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
}

#[test]
fn v3_write_operations_take_field_validation() {
    let core = v3("api/v1");
    let collection = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps"];
    let post = &collection["post"];
    assert!(param_names(post).contains(&"fieldValidation"));
    assert_eq!(post["x-kubernetes-action"], "post");
    assert_eq!(
        post["x-kubernetes-group-version-kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(collection["get"]["x-kubernetes-action"], "list");
    assert_eq!(
        collection["delete"]["x-kubernetes-action"],
        "deletecollection"
    );
    let object = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"];
    for (method, action) in [
        ("get", "get"),
        ("put", "put"),
        ("patch", "patch"),
        ("delete", "delete"),
    ] {
        assert_eq!(object[method]["x-kubernetes-action"], action);
    }
    let patch = &object["patch"];
    for p in ["dryRun", "fieldManager", "fieldValidation", "force"] {
        assert!(param_names(patch).contains(&p), "{p}");
    }
    // kubectl apply only computes a strategic merge if the PATCH accepts it.
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    assert!(
        param_names(&core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"])
            .contains(&"name")
    );
    assert_eq!(
        core["paths"]["/api/v1/watch/namespaces/{namespace}/configmaps"]["get"]["x-kubernetes-action"],
        "watchlist"
    );
    assert!(core["paths"]["/api/v1/configmaps"]["get"].is_object());
    // Cluster-scoped kinds have no namespace segment.
    assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
    assert!(core["paths"]["/api/v1/nodes/{name}/status"]["put"].is_object());
    assert!(
        core["paths"]
            .get("/api/v1/namespaces/{namespace}/nodes")
            .is_none()
    );
}

#[test]
fn v3_subresources() {
    let apps = v3("apis/apps/v1");
    let paths = &apps["paths"];
    let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["patch"]["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert!(apps["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"].is_object());
    let status = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"];
    assert!(param_names(&status["put"]).contains(&"fieldValidation"));
    assert!(
        paths
            .get("/apis/apps/v1/namespaces/{namespace}/controllerrevisions/{name}/status")
            .is_none()
    );
}

#[test]
fn strategic_merge_metadata_is_kept() {
    let core = v3("api/v1");
    let schemas = &core["components"]["schemas"];
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    let ports = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["port", "protocol"])
    );
    let v2 = v2();
    let env = &v2["definitions"]["io.k8s.api.core.v1.Container"]["properties"]["env"];
    assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(
        v2["definitions"]["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
        "atomic"
    );
}

/// Counted against upstream's v1.33 definitions when the table was made:
/// of upstream's 61 merge-keyed fields, 49 are in the group-versions
/// skiff serves, and every extension there matched upstream exactly.
#[test]
fn every_upstream_merge_key_of_served_types_is_present() {
    /// Occurrences of `key` on schemas (not on properties named `key`,
    /// which JSONSchemaProps has).
    fn count(schema: &Value, key: &str) -> usize {
        let here = usize::from(schema.get(key).is_some());
        let props: usize = schema["properties"]
            .as_object()
            .map(|p| p.values().map(|s| count(s, key)).sum())
            .unwrap_or(0);
        let nested: usize = ["items", "additionalProperties"]
            .iter()
            .filter_map(|k| schema.get(*k).filter(|s| s.is_object()))
            .map(|s| count(s, key))
            .sum();
        here + props + nested
    }
    let total = |key| {
        v2()["definitions"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| count(s, key))
            .sum::<usize>()
    };
    assert_eq!(total("x-kubernetes-patch-merge-key"), 49);
    assert_eq!(total("x-kubernetes-patch-strategy"), 53);
    assert_eq!(total("x-kubernetes-list-map-keys"), 52);
    assert_eq!(total("x-kubernetes-list-type"), 225);
}

#[test]
fn v2_json_is_consistent_and_parsable_by_kubectl() {
    let doc = v2();
    assert_eq!(doc["swagger"], "2.0");
    let defs = &doc["definitions"];
    assert_refs_resolve(&doc, "#/definitions/", defs);
    assert!(has_gvk(&defs["io.k8s.api.core.v1.Pod"], "", "v1", "Pod"));
    assert!(has_gvk(
        &defs["io.k8s.api.apps.v1.Deployment"],
        "apps",
        "v1",
        "Deployment"
    ));
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
    assert!(param_names(patch).contains(&"fieldValidation"));
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "ConfigMap"
    );

    // What kubectl's v2 model parser (k8s.io/kube-openapi/pkg/util/proto) refuses.
    fn check(s: &Value, at: &str) {
        let Some(m) = s.as_object() else {
            panic!("{at}: schema is not an object")
        };
        if m.contains_key("$ref") {
            assert!(
                !m.contains_key("type") && !m.contains_key("properties"),
                "{at}"
            );
        }
        match m.get("type") {
            None => {}
            Some(Value::String(t)) => {
                assert!(
                    ["object", "array", "string", "integer", "number", "boolean"]
                        .contains(&t.as_str()),
                    "{at}: type {t}"
                );
                if t == "array" {
                    assert!(m["items"].is_object(), "{at}: array without items");
                }
            }
            Some(other) => panic!("{at}: type {other}"),
        }
        for key in ["oneOf", "anyOf", "not", "nullable"] {
            assert!(!m.contains_key(key), "{at}: {key}");
        }
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                check(p, &format!("{at}.{name}"));
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(sub @ Value::Object(_)) = m.get(key) {
                check(sub, &format!("{at}/{key}"));
            }
        }
    }
    for (name, schema) in defs.as_object().unwrap() {
        check(schema, name);
    }
}

#[test]
fn v2_protobuf_round_trips() {
    let bytes = api().v2_protobuf();
    let doc = gnostic::Document::decode(bytes).expect("decodes");
    assert_eq!(
        doc.encode_to_vec(),
        bytes,
        "re-encoding gives the same bytes"
    );
    assert_eq!(doc.swagger, "2.0");

    let json = v2();
    let defs = doc.definitions.as_ref().unwrap();
    assert_eq!(
        defs.additional_properties.len(),
        json["definitions"].as_object().unwrap().len()
    );
    let paths = doc.paths.as_ref().unwrap();
    assert_eq!(paths.path.len(), json["paths"].as_object().unwrap().len());

    // The ConfigMap PATCH as kubectl 1.27's QueryParamVerifier reads it.
    let item = paths
        .path
        .iter()
        .find(|p| p.name == "/api/v1/namespaces/{namespace}/configmaps/{name}")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    let patch = item.patch.as_ref().unwrap();
    let gvk = patch
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .and_then(|e| e.value.as_ref())
        .unwrap();
    let gvk: Value = serde_json::from_str(&gvk.yaml).unwrap();
    assert_eq!(
        gvk,
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    let has_field_validation = patch.parameters.iter().any(|p| {
        use gnostic::{non_body_parameter, parameter, parameters_item};
        matches!(&p.oneof, Some(parameters_item::Oneof::Parameter(gnostic::Parameter {
            oneof: Some(parameter::Oneof::NonBodyParameter(gnostic::NonBodyParameter {
                oneof: Some(non_body_parameter::Oneof::QueryParameterSubSchema(q)),
            })),
        })) if q.name == "fieldValidation" && q.r#in == "query")
    });
    assert!(has_field_validation);

    // The Pod definition with its GVK and a $ref property.
    let pod = defs
        .additional_properties
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.Pod")
        .and_then(|d| d.value.as_ref())
        .unwrap();
    assert_eq!(pod.r#type.as_ref().unwrap().value, ["object"]);
    let spec = pod
        .properties
        .as_ref()
        .unwrap()
        .additional_properties
        .iter()
        .find(|p| p.name == "spec")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    assert_eq!(spec.xref, "#/definitions/io.k8s.api.core.v1.PodSpec");
    assert!(
        pod.vendor_extension
            .iter()
            .any(|e| e.name == "x-kubernetes-group-version-kind")
    );
}

/// Reads one protobuf field key (varint) at `bytes[*at..]`.
fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

#[test]
fn v2_protobuf_uses_gnostic_field_numbers() {
    // Document: swagger = 1, info = 2, paths = 8, definitions = 9 (all length-delimited).
    let bytes = api().v2_protobuf();
    assert_eq!(&bytes[..5], b"\x0a\x032.0", "field 1, length 3, \"2.0\"");
    let mut at = 0;
    let mut fields = Vec::new();
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        assert_eq!(key & 7, 2, "length-delimited");
        let len = varint(bytes, &mut at) as usize;
        at += len;
        fields.push(key >> 3);
    }
    assert_eq!(fields, [1, 2, 8, 9]);

    // Schema: _ref = 1, type = 22, properties = 25, vendor_extension = 31.
    let schema = gnostic::Schema {
        xref: "#/definitions/X".into(),
        ..Default::default()
    };
    assert_eq!(schema.encode_to_vec()[..2], [0x0a, 15]);
    let schema = gnostic::Schema {
        r#type: Some(gnostic::TypeItem {
            value: vec!["object".into()],
        }),
        ..Default::default()
    };
    // (22 << 3) | 2 = 178 = varint b2 01; TypeItem.value = 1.
    assert_eq!(schema.encode_to_vec(), b"\xb2\x01\x08\x0a\x06object");
    let schema = gnostic::Schema {
        properties: Some(gnostic::Properties {
            additional_properties: vec![],
        }),
        vendor_extension: vec![gnostic::NamedAny {
            name: "x".into(),
            value: None,
        }],
        ..Default::default()
    };
    // (25 << 3) | 2 = 202 = ca 01; (31 << 3) | 2 = 250 = fa 01; NamedAny.name = 1.
    assert_eq!(schema.encode_to_vec(), b"\xca\x01\x00\xfa\x01\x03\x0a\x01x");
    // NamedAny.value = 2, Any.yaml = 2.
    let any = gnostic::NamedAny {
        name: String::new(),
        value: Some(gnostic::Any { yaml: "1".into() }),
    };
    assert_eq!(any.encode_to_vec(), b"\x12\x03\x12\x011");
    // PathItem.patch = 8; Operation.operation_id = 5.
    let item = gnostic::PathItem {
        patch: Some(gnostic::Operation {
            operation_id: "p".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(item.encode_to_vec(), b"\x42\x03\x2a\x01p");
    // ParametersItem.parameter = 1 > Parameter.non_body_parameter = 2 >
    // NonBodyParameter.query_parameter_sub_schema = 3 > name = 4.
    let param = gnostic::ParametersItem {
        oneof: Some(gnostic::parameters_item::Oneof::Parameter(
            gnostic::Parameter {
                oneof: Some(gnostic::parameter::Oneof::NonBodyParameter(
                    gnostic::NonBodyParameter {
                        oneof: Some(gnostic::non_body_parameter::Oneof::QueryParameterSubSchema(
                            gnostic::QueryParameterSubSchema {
                                name: "f".into(),
                                ..Default::default()
                            },
                        )),
                    },
                )),
            },
        )),
    };
    assert_eq!(param.encode_to_vec(), b"\x0a\x07\x12\x05\x1a\x03\x22\x01f");
}

fn crontab() -> ResourceSpec {
    ResourceSpec {
        group: "stable.example.com".into(),
        version: "v1".into(),
        kind: "CronTab".into(),
        plural: "crontabs".into(),
        namespaced: true,
        subresources: vec![Subresource::Status],
    }
}

#[test]
fn custom_resources_get_their_own_document() {
    let mut b = builtin();
    b.add_custom(
        crontab(),
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "cronSpec": {"type": "string"},
                        "replicas": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "tags": {"type": "array", "nullable": true},
                    },
                },
            },
        }),
    )
    .unwrap();
    let api = b.build().unwrap();
    let doc: Value =
        serde_json::from_slice(api.v3_document("apis/stable.example.com/v1").unwrap()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let crontab = &schemas["com.example.stable.v1.CronTab"];
    assert!(has_gvk(crontab, "stable.example.com", "v1", "CronTab"));
    assert_eq!(
        crontab["properties"]["metadata"]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_refs_resolve(&doc, "#/components/schemas/", schemas);
    let patch = &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
        ["patch"];
    assert!(param_names(patch).contains(&"fieldValidation"));
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
    assert!(patch["requestBody"]["content"]["application/merge-patch+json"].is_object());

    let v2: Value = serde_json::from_slice(api.v2_json()).unwrap();
    let spec =
        &v2["definitions"]["com.example.stable.v1.CronTab"]["properties"]["spec"]["properties"];
    assert!(spec["replicas"].get("anyOf").is_none());
    assert_eq!(spec["tags"], json!({"type": "array", "items": {}}));
}

#[test]
fn custom_schema_must_be_an_object() {
    let mut b = OpenApiBuilder::new();
    let err = b.add_custom(crontab(), json!(true)).err().unwrap();
    assert!(matches!(err, Error::InvalidCustomSchema { .. }), "{err}");
}

#[test]
fn duplicates_are_refused() {
    let mut b = builtin();
    b.add::<k8s_openapi::api::core::v1::Pod>(&[]);
    let err = b.build().err().unwrap();
    assert!(matches!(err, Error::Duplicate { .. }), "{err}");
}

#[test]
fn resources_are_listed() {
    let resources = api().resources();
    let deployments = resources
        .iter()
        .find(|r| r.plural == "deployments")
        .unwrap();
    assert_eq!(deployments.api_version(), "apps/v1");
    assert_eq!(
        deployments.subresources,
        [Subresource::Status, Subresource::Scale]
    );
    assert!(
        resources
            .iter()
            .any(|r| r.plural == "nodes" && !r.namespaced)
    );
    for needed in [
        "pods",
        "services",
        "endpoints",
        "namespaces",
        "nodes",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "events",
        "limitranges",
        "resourcequotas",
        "persistentvolumes",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "podtemplates",
    ] {
        assert!(
            resources
                .iter()
                .any(|r| r.group.is_empty() && r.plural == needed),
            "{needed}"
        );
    }
}
