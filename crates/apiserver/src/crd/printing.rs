//! Tables of custom objects: a Name column, then the version's
//! `additionalPrinterColumns` (or Age when it declares none), each cell
//! found by the column's JSONPath, as upstream's custom resource table
//! convertor prints them.

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_crd::PrinterColumn;
use skiff_printers::{IncludeObject, TableMeta, human_duration, partial_object_metadata};

use super::CustomInfo;

/// What a version prints when it declares no columns.
fn default_columns() -> Vec<PrinterColumn> {
    vec![PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata".into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

fn columns(custom: &CustomInfo) -> Vec<PrinterColumn> {
    if custom.columns.is_empty() {
        default_columns()
    } else {
        custom.columns.clone()
    }
}

fn definition(c: &PrinterColumn) -> Value {
    json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
}

fn cell(c: &PrinterColumn, obj: &Value, now: Timestamp) -> Value {
    let Ok(Some(value)) = skiff_crd::jsonpath::find_first(obj, &c.json_path) else {
        return Value::Null;
    };
    match (c.type_.as_str(), value) {
        ("date", Value::String(s)) => match s.parse::<Timestamp>() {
            Ok(at) => json!(human_duration(now.duration_since(at))),
            Err(_) => json!(s),
        },
        (_, v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
        (_, other) => json!(other.to_string()),
    }
}

/// The Table of `objects` (all of one custom resource version).
pub fn table(
    custom: &CustomInfo,
    objects: &[Value],
    include: IncludeObject,
    meta: &TableMeta,
    now: Timestamp,
    with_columns: bool,
) -> Value {
    let columns = columns(custom);
    let definitions = if with_columns {
        let name = json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0});
        Value::Array(
            std::iter::once(name)
                .chain(columns.iter().map(definition))
                .collect(),
        )
    } else {
        Value::Null
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let name = obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let cells: Vec<Value> = std::iter::once(name)
                .chain(columns.iter().map(|c| cell(c, obj, now)))
                .collect();
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => partial_object_metadata(obj),
                IncludeObject::Object => obj.clone(),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta.to_json(),
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(columns: Vec<PrinterColumn>) -> CustomInfo {
        CustomInfo {
            crd: "crontabs.stable.example.com".into(),
            version: json!({"name": "v1"}),
            terminating: false,
            structural: None,
            columns,
            scale: None,
        }
    }

    #[test]
    fn declared_columns_follow_their_paths_and_types() {
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2024-06-01T11:00:00Z"},
                         "spec": {"cronSpec": "* * * * */5", "replicas": 3}});
        let columns = vec![
            PrinterColumn {
                name: "Spec".into(),
                type_: "string".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: ".spec.cronSpec".into(),
            },
            PrinterColumn {
                name: "Replicas".into(),
                type_: "integer".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: ".spec.replicas".into(),
            },
            PrinterColumn {
                name: "Missing".into(),
                type_: "string".into(),
                format: String::new(),
                description: String::new(),
                priority: 1,
                json_path: ".status.nothing".into(),
            },
        ];
        let t = table(
            &info(columns),
            std::slice::from_ref(&obj),
            IncludeObject::None,
            &TableMeta::default(),
            now,
            true,
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Spec", "Replicas", "Missing"]);
        assert_eq!(t["rows"][0]["cells"], json!(["a", "* * * * */5", 3, null]));
        let t = table(
            &info(Vec::new()),
            &[obj],
            IncludeObject::None,
            &TableMeta::default(),
            now,
            true,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["a", "60m"]));
    }
}
