//! The schema definitions shared by both documents, keyed by upstream's
//! names (`io.k8s.api.core.v1.Pod`), with `$ref`s in v2 form
//! (`#/definitions/<name>`). [`crate::v3`] rewrites them for OpenAPI 3.

use schemars::{SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

/// Where `$ref`s point in the shared (v2-form) definitions.
pub(crate) const REF_PREFIX: &str = "#/definitions/";

pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(crate) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// A schemars generator that names definitions like upstream and keeps
/// `$ref` siblings (descriptions), as upstream's v2 document does.
pub(crate) fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/definitions".into();
            s.meta_schema = None;
        })
        .into_generator()
}

/// `{"$ref": "#/definitions/<name>"}`.
pub(crate) fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

/// The value of an `x-kubernetes-group-version-kind` entry.
pub(crate) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

/// Appends `group/version kind` to the definition's
/// `x-kubernetes-group-version-kind` list, which kubectl uses to find the
/// schema of an object it validates.
pub(crate) fn add_gvk(definitions: &mut Map<String, Value>, name: &str, gvk: Value) {
    let Some(Value::Object(schema)) = definitions.get_mut(name) else {
        return;
    };
    let list = schema
        .entry("x-kubernetes-group-version-kind")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list
        && !list.contains(&gvk)
    {
        list.push(gvk);
    }
}

/// The `<Kind>List` definition (k8s-openapi has a generic `List<T>` with no
/// schema of its own).
pub(crate) fn list_schema(item_definition: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "items": {
                "description": format!("The {kind} objects."),
                "type": "array",
                "items": reference(item_definition),
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            },
            "metadata": {
                "description": "Standard list metadata.",
                "$ref": format!("{REF_PREFIX}{LIST_META}"),
            },
        },
    })
}

/// Upstream's definition name for a custom resource: the reversed group,
/// the version and the kind (`com.example.stable.v1.CronTab`).
pub(crate) fn custom_definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').filter(|p| !p.is_empty()).collect();
    parts.reverse();
    parts.push(version);
    parts.push(kind);
    parts.join(".")
}

/// Completes a custom resource's schema the way the API server treats every
/// object: `apiVersion` and `kind` strings and standard `metadata`.
pub(crate) fn complete_custom_schema(schema: &mut Map<String, Value>) {
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        for field in ["apiVersion", "kind"] {
            properties
                .entry(field)
                .or_insert_with(|| json!({ "type": "string" }));
        }
        properties.insert("metadata".into(), reference(OBJECT_META));
    }
}

/// Every `$ref` target (definition name) inside `value`.
pub(crate) fn collect_refs<'a>(value: &'a Value, prefix: &str, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref"
                    && let Some(name) = v.as_str().and_then(|r| r.strip_prefix(prefix))
                {
                    out.push(name);
                } else {
                    collect_refs(v, prefix, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, prefix, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_names_reverse_the_group() {
        assert_eq!(
            custom_definition_name("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
    }

    #[test]
    fn gvk_is_added_once() {
        let mut defs = Map::new();
        defs.insert("a".into(), json!({"type": "object"}));
        add_gvk(&mut defs, "a", gvk("", "v1", "A"));
        add_gvk(&mut defs, "a", gvk("", "v1", "A"));
        assert_eq!(
            defs["a"]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "A", "version": "v1"}])
        );
    }
}
