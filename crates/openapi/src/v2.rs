//! The Swagger 2.0 (OpenAPI v2) document as JSON, from which
//! [`crate::v2_proto`] derives the protobuf form kubectl 1.27/1.28 read.

use crate::definitions::{DELETE_OPTIONS, PATCH, REF_PREFIX, reference};
use crate::operations::{Body, Operation, Param, PathSpec};
use serde_json::{Map, Value, json};

/// Title and version in the document's `info`.
pub(crate) const TITLE: &str = "Kubernetes";
pub(crate) const VERSION: &str = "v1.33.0";

/// The whole v2 document.
pub(crate) fn document(paths: &[PathSpec], definitions: &Map<String, Value>) -> Value {
    let mut rendered = Map::new();
    for path in paths {
        rendered.insert(path.path.clone(), path_item(path));
    }
    let definitions: Map<String, Value> = definitions
        .iter()
        .map(|(name, schema)| (name.clone(), sanitize(schema)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": { "title": TITLE, "version": VERSION },
        "paths": rendered,
        "definitions": definitions,
    })
}

fn param(p: &Param) -> Value {
    let location = match p.location {
        crate::operations::In::Path => "path",
        crate::operations::In::Query => "query",
    };
    let mut v = json!({
        "name": p.name,
        "in": location,
        "description": p.description,
        "type": p.ty.as_str(),
        "uniqueItems": true,
    });
    if p.required()
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("required".into(), Value::Bool(true));
    }
    v
}

fn body_param(body: &Body) -> Value {
    let (schema, required) = match body {
        Body::Object(def) => (reference(def), true),
        Body::Patch => (reference(PATCH), true),
        Body::DeleteOptions => (reference(DELETE_OPTIONS), false),
    };
    let mut v = json!({ "name": "body", "in": "body", "schema": schema });
    if required && let Some(obj) = v.as_object_mut() {
        obj.insert("required".into(), Value::Bool(true));
    }
    v
}

fn operation(op: &Operation) -> Value {
    let mut params: Vec<Value> = op.body.iter().map(body_param).collect();
    params.extend(op.params.iter().map(param));
    let consumes: Vec<&str> = match op.body {
        Some(Body::Patch) => op.patch_types.to_vec(),
        _ => vec!["*/*"],
    };
    let mut responses = Map::new();
    for r in &op.responses {
        let mut v = json!({ "description": r.description });
        if let (Some(schema), Some(obj)) = (&r.schema, v.as_object_mut()) {
            obj.insert("schema".into(), reference(schema));
        }
        responses.insert(r.code.to_owned(), v);
    }
    json!({
        "description": op.description,
        "operationId": op.id,
        "tags": [op.tag],
        "consumes": consumes,
        "produces": op.produces.media_types(),
        "schemes": ["https"],
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    })
}

fn path_item(path: &PathSpec) -> Value {
    let mut item = Map::new();
    for op in &path.operations {
        item.insert(op.method.key().to_owned(), operation(op));
    }
    item.insert(
        "parameters".into(),
        Value::Array(path.params.iter().map(param).collect()),
    );
    Value::Object(item)
}

/// Keywords a Swagger 2.0 schema (and gnostic's `Schema` message) has.
const V2_KEYWORDS: &[&str] = &[
    "$ref",
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "additionalProperties",
    "type",
    "items",
    "allOf",
    "properties",
    "discriminator",
    "readOnly",
    "example",
];

/// Rewrites a JSON Schema into what Swagger 2.0 and kubectl's v2 model
/// parser accept: only v2 keywords (`oneOf`, `anyOf`, `nullable` ... are
/// dropped, which makes such values unchecked rather than rejected), a
/// single `type`, `items` on every array, and nothing beside a `$ref` that
/// the parser refuses (`type`, `properties`).
pub(crate) fn sanitize(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        // `true`/`false` schemas: accept anything.
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    for (key, value) in obj {
        if !(V2_KEYWORDS.contains(&key.as_str()) || key.starts_with("x-")) {
            continue;
        }
        let value = match key.as_str() {
            "type" => match value {
                Value::String(t) if t != "null" => value.clone(),
                Value::Array(types) => {
                    let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    match real.as_slice() {
                        [one] => (*one).clone(),
                        _ => continue,
                    }
                }
                _ => continue,
            },
            "properties" => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), sanitize(v)))
                        .collect(),
                ),
                _ => continue,
            },
            "items" => match value {
                Value::Object(_) => sanitize(value),
                _ => Value::Object(Map::new()),
            },
            "additionalProperties" => match value {
                Value::Object(_) => sanitize(value),
                Value::Bool(b) => Value::Bool(*b),
                _ => continue,
            },
            "allOf" => match value {
                Value::Array(all) => Value::Array(all.iter().map(sanitize).collect()),
                _ => continue,
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if out.contains_key("$ref") {
        out.remove("type");
        out.remove("properties");
        if out
            .get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.starts_with(REF_PREFIX))
        {
            out.remove("$ref");
        }
    }
    if out.get("type").and_then(Value::as_str) == Some("array") && !out.contains_key("items") {
        out.insert("items".into(), Value::Object(Map::new()));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_v2_and_drops_the_rest() {
        let s = json!({
            "type": ["string", "null"],
            "anyOf": [{"type": "integer"}],
            "x-kubernetes-int-or-string": true,
            "properties": {"a": {"type": "array", "nullable": true}},
        });
        assert_eq!(
            sanitize(&s),
            json!({
                "type": "string",
                "x-kubernetes-int-or-string": true,
                "properties": {"a": {"type": "array", "items": {}}},
            })
        );
        assert_eq!(
            sanitize(&json!({"$ref": "#/definitions/x", "type": "object", "description": "d"})),
            json!({"$ref": "#/definitions/x", "description": "d"})
        );
    }
}
