//! The `meta.k8s.io/v1` `Table` object and what each row carries.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::kinds;

/// What each row's `object` holds, from the request's `includeObject`
/// query parameter. kubectl sends none (→ [`IncludeObject::Metadata`])
/// unless it sorts (`--sort-by` sends `Object`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `object: null`.
    None,
    /// A `PartialObjectMetadata` with the object's full `metadata`.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// An `includeObject` value the API does not know; upstream answers 400
/// Bad Request with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized includeObject value: {0:?}")]
pub struct UnknownIncludeObject(pub String);

impl IncludeObject {
    /// Parses the query parameter; absent or empty means `Metadata`.
    pub fn from_query(value: Option<&str>) -> Result<Self, UnknownIncludeObject> {
        match value.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(UnknownIncludeObject(other.to_owned())),
        }
    }
}

/// The list metadata a Table carries (`metadata` of the Table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableMeta {
    /// The list's resource version (for a single object or a watch event,
    /// the object's own `metadata.resourceVersion`).
    pub resource_version: String,
    /// Continue token of a paged list.
    pub continue_token: Option<String>,
    /// Items left after this page, when known.
    pub remaining_item_count: Option<i64>,
}

impl TableMeta {
    /// The metadata of a Table printing one object (a GET or a watch
    /// event): the object's resource version, as upstream sets it.
    pub fn for_object(object: &Value) -> Self {
        TableMeta {
            resource_version: crate::value::str_at(object, &["metadata", "resourceVersion"])
                .to_owned(),
            ..TableMeta::default()
        }
    }

    /// The Table's `metadata`.
    pub fn to_json(&self) -> Value {
        let mut meta = Map::new();
        if !self.resource_version.is_empty() {
            meta.insert(
                "resourceVersion".into(),
                self.resource_version.clone().into(),
            );
        }
        if let Some(token) = self.continue_token.as_ref().filter(|t| !t.is_empty()) {
            meta.insert("continue".into(), token.clone().into());
        }
        if let Some(count) = self.remaining_item_count {
            meta.insert("remainingItemCount".into(), count.into());
        }
        Value::Object(meta)
    }
}

/// `PartialObjectMetadata` of an object: its whole `metadata`, nothing else.
pub fn partial_object_metadata(object: &Value) -> Value {
    let metadata = object
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

fn row_json(
    printer: &kinds::Printer,
    object: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array((printer.cells)(object, now)));
    let conditions = (printer.conditions)(object);
    if !conditions.is_empty() {
        row.insert("conditions".into(), Value::Array(conditions));
    }
    let embedded = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => partial_object_metadata(object),
        IncludeObject::Object => object.clone(),
    };
    row.insert("object".into(), embedded);
    Value::Object(row)
}

/// Builds the `Table` for objects of one kind.
///
/// `with_columns` is false for every watch event after the first: upstream
/// sends `columnDefinitions` only once per watch (later events carry
/// `"columnDefinitions": null`) and kubectl reuses the first header.
/// Rows always hold every cell, wide ones included; kubectl drops the
/// priority 1 columns unless `-o wide`.
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    include: IncludeObject,
    meta: &TableMeta,
    now: Timestamp,
    with_columns: bool,
) -> Value {
    let printer = kinds::lookup(group, kind);
    let columns = if with_columns {
        Value::Array(printer.columns.iter().map(|c| c.to_json()).collect())
    } else {
        Value::Null
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row_json(&printer, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta.to_json(),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    fn ns(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "resourceVersion": "42",
                "creationTimestamp": "2024-06-01T11:00:00Z", "labels": {"a": "b"}},
            "status": {"phase": "Active"}})
    }

    #[test]
    fn list_table_shape() {
        let meta = TableMeta {
            resource_version: "100".into(),
            continue_token: Some("abc".into()),
            remaining_item_count: Some(3),
        };
        let t = table(
            "",
            "Namespace",
            &[ns("default")],
            IncludeObject::Metadata,
            &meta,
            now(),
            true,
        );
        assert_eq!(
            t,
            json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "100", "continue": "abc", "remainingItemCount": 3},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name",
                     "description": crate::column::NAME.description, "priority": 0},
                    {"name": "Status", "type": "string", "format": "",
                     "description": "Phase of the namespace (Active or Terminating).", "priority": 0},
                    {"name": "Age", "type": "string", "format": "",
                     "description": crate::column::AGE.description, "priority": 0}
                ],
                "rows": [{
                    "cells": ["default", "Active", "60m"],
                    "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": {"name": "default", "resourceVersion": "42",
                            "creationTimestamp": "2024-06-01T11:00:00Z", "labels": {"a": "b"}}}
                }]
            })
        );
    }

    #[test]
    fn watch_event_without_columns() {
        let obj = ns("kube-system");
        let t = table(
            "",
            "Namespace",
            std::slice::from_ref(&obj),
            IncludeObject::None,
            &TableMeta::for_object(&obj),
            now(),
            false,
        );
        assert_eq!(t["columnDefinitions"], Value::Null);
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let full = table(
            "",
            "Namespace",
            std::slice::from_ref(&obj),
            IncludeObject::Object,
            &TableMeta::default(),
            now(),
            true,
        );
        assert_eq!(full["rows"][0]["object"], obj);
        assert_eq!(full["metadata"], json!({}));
    }

    #[test]
    fn empty_list_has_empty_rows() {
        let t = table(
            "apps",
            "Deployment",
            &[],
            IncludeObject::Metadata,
            &TableMeta::default(),
            now(),
            true,
        );
        assert_eq!(t["rows"], json!([]));
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(8));
    }

    #[test]
    fn include_object_parsing() {
        assert_eq!(IncludeObject::from_query(None), Ok(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::from_query(Some("")),
            Ok(IncludeObject::Metadata)
        );
        assert_eq!(
            IncludeObject::from_query(Some("Object")),
            Ok(IncludeObject::Object)
        );
        assert_eq!(
            IncludeObject::from_query(Some("None")),
            Ok(IncludeObject::None)
        );
        assert!(IncludeObject::from_query(Some("object")).is_err());
    }

    #[test]
    fn pod_rows_carry_conditions() {
        let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Failed"}});
        let t = table(
            "",
            "Pod",
            &[pod],
            IncludeObject::None,
            &TableMeta::default(),
            now(),
            true,
        );
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], json!("Failed"));
    }
}
