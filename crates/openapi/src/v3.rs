//! OpenAPI 3.0 documents, one per group-version (`/openapi/v3/apis/apps/v1`),
//! as kubectl 1.29+ read them.
//!
//! Each document holds the paths of its group-version and exactly the
//! schemas those paths reach, with `$ref`s as `#/components/schemas/<name>`.
//! Like upstream, a `$ref` that has siblings (a description) is wrapped in
//! `allOf`, since OpenAPI 3.0 ignores siblings of `$ref`.

use crate::definitions::{DELETE_OPTIONS, PATCH, REF_PREFIX, collect_refs};
use crate::operations::{Body, Operation, Param, PathSpec};
use crate::v2::{TITLE, VERSION};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

const V3_PREFIX: &str = "#/components/schemas/";

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{V3_PREFIX}{name}") })
}

/// The document of one group-version.
pub(crate) fn document(paths: &[&PathSpec], definitions: &Map<String, Value>) -> Value {
    let mut rendered = Map::new();
    for path in paths {
        rendered.insert(path.path.clone(), path_item(path));
    }
    let rendered = Value::Object(rendered);

    // Schemas reachable from the paths.
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<String> = {
        let mut refs = Vec::new();
        collect_refs(&rendered, V3_PREFIX, &mut refs);
        refs.into_iter().map(str::to_owned).collect()
    };
    while let Some(name) = pending.pop() {
        if !wanted.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = definitions.get(&name) {
            let mut refs = Vec::new();
            collect_refs(schema, REF_PREFIX, &mut refs);
            pending.extend(
                refs.into_iter()
                    .filter(|r| !wanted.contains(*r))
                    .map(str::to_owned),
            );
        }
    }
    let schemas: Map<String, Value> = wanted
        .iter()
        .filter_map(|name| Some((name.clone(), convert(definitions.get(name)?))))
        .collect();

    json!({
        "openapi": "3.0.0",
        "info": { "title": TITLE, "version": VERSION },
        "paths": rendered,
        "components": { "schemas": schemas },
    })
}

/// A shared (v2-form) schema in v3 form: `$ref`s rewritten, `$ref` with
/// siblings wrapped in `allOf`. Walks the schema structure, so properties
/// named like keywords (`default` in LimitRangeItem, `$ref` in
/// JSONSchemaProps) are treated as the properties they are.
pub(crate) fn convert(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        let value = match (key.as_str(), value) {
            ("$ref", Value::String(r)) => match r.strip_prefix(REF_PREFIX) {
                Some(name) => Value::String(format!("{V3_PREFIX}{name}")),
                None => value.clone(),
            },
            ("properties" | "patternProperties" | "definitions", Value::Object(props)) => {
                Value::Object(props.iter().map(|(k, v)| (k.clone(), convert(v))).collect())
            }
            ("items" | "additionalProperties" | "not", _) => convert(value),
            ("allOf" | "anyOf" | "oneOf", Value::Array(all)) => {
                Value::Array(all.iter().map(convert).collect())
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if out.len() > 1
        && let Some(target) = out.remove("$ref")
    {
        out.insert("allOf".into(), json!([{ "$ref": target }]));
    }
    Value::Object(out)
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
        "schema": { "type": p.ty.as_str(), "uniqueItems": true },
    });
    if p.required()
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("required".into(), Value::Bool(true));
    }
    v
}

fn content(types: &[&str], schema: &Value) -> Value {
    Value::Object(
        types
            .iter()
            .map(|t| ((*t).to_owned(), json!({ "schema": schema })))
            .collect(),
    )
}

fn operation(op: &Operation) -> Value {
    let mut out = Map::new();
    out.insert("tags".into(), json!([op.tag]));
    out.insert("description".into(), json!(op.description));
    out.insert("operationId".into(), json!(op.id));
    out.insert(
        "parameters".into(),
        Value::Array(op.params.iter().map(param).collect()),
    );
    if let Some(body) = &op.body {
        let (types, schema, required): (&[&str], Value, bool) = match body {
            Body::Object(def) => (&["*/*"], reference(def), true),
            Body::Patch => (op.patch_types, reference(PATCH), true),
            Body::DeleteOptions => (&["*/*"], reference(DELETE_OPTIONS), false),
        };
        let mut rb = json!({ "content": content(types, &schema) });
        if required && let Some(obj) = rb.as_object_mut() {
            obj.insert("required".into(), Value::Bool(true));
        }
        out.insert("requestBody".into(), rb);
    }
    let mut responses = Map::new();
    for r in &op.responses {
        let mut v = json!({ "description": r.description });
        if let (Some(schema), Some(obj)) = (&r.schema, v.as_object_mut()) {
            obj.insert(
                "content".into(),
                content(op.produces.media_types(), &reference(schema)),
            );
        }
        responses.insert(r.code.to_owned(), v);
    }
    out.insert("responses".into(), Value::Object(responses));
    out.insert("x-kubernetes-action".into(), json!(op.action));
    out.insert("x-kubernetes-group-version-kind".into(), op.gvk.clone());
    Value::Object(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_with_siblings_become_all_of() {
        let s = json!({"properties": {
            "a": {"$ref": "#/definitions/X", "description": "d"},
            "b": {"$ref": "#/definitions/Y"},
        }});
        assert_eq!(
            convert(&s),
            json!({"properties": {
                "a": {"allOf": [{"$ref": "#/components/schemas/X"}], "description": "d"},
                "b": {"$ref": "#/components/schemas/Y"},
            }})
        );
    }
}
