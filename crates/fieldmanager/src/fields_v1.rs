//! The fieldsV1 encoding of a [`FieldSet`] (`metadata.managedFields[].fieldsV1`).
//!
//! Each node is a JSON object keyed by path-element strings; a member with
//! no children is `{}`, and a node that is a member and has children
//! carries `".": {}` first. Keys are written in path-element order, as
//! upstream's serializer does. [`FieldSet::to_fields_json`] produces the
//! exact bytes; [`FieldSet::to_fields_value`] a `serde_json::Value` whose
//! key order is serde_json's (sorted strings), the same set either way.
//! Decoding skips keys of unknown element types like upstream (they may come
//! from a newer server) and rejects malformed ones.

use serde_json::{Map, Value};

use crate::error::FieldsError;
use crate::path::PathElement;
use crate::set::FieldSet;

impl FieldSet {
    /// The exact upstream serialization.
    pub fn to_fields_json(&self) -> String {
        let mut out = String::new();
        self.emit(false, &mut out);
        out
    }

    fn emit(&self, include_self: bool, out: &mut String) {
        out.push('{');
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push(',');
            }
            first = false;
        };
        if include_self && !self.is_empty() {
            sep(out);
            out.push_str("\".\":{}");
        }
        let mut members = self.members.iter().peekable();
        let mut children = self.children.iter().peekable();
        loop {
            let take_member = match (members.peek(), children.peek()) {
                (None, None) => break,
                (Some(_), None) => Some(true),
                (None, Some(_)) => Some(false),
                (Some(m), Some((c, _))) => match (*m).cmp(c) {
                    std::cmp::Ordering::Less => Some(true),
                    std::cmp::Ordering::Greater => Some(false),
                    std::cmp::Ordering::Equal => None,
                },
            };
            sep(out);
            match take_member {
                Some(true) => {
                    if let Some(m) = members.next() {
                        push_key(out, m);
                        out.push_str("{}");
                    }
                }
                Some(false) => {
                    if let Some((pe, child)) = children.next() {
                        push_key(out, pe);
                        child.emit(false, out);
                    }
                }
                None => {
                    members.next();
                    if let Some((pe, child)) = children.next() {
                        push_key(out, pe);
                        child.emit(true, out);
                    }
                }
            }
        }
        out.push('}');
    }

    /// The set as a JSON value (key order per serde_json's map).
    pub fn to_fields_value(&self) -> Value {
        Value::Object(self.to_map(false))
    }

    fn to_map(&self, include_self: bool) -> Map<String, Value> {
        let mut map = Map::new();
        if include_self && !self.is_empty() {
            map.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for m in &self.members {
            map.insert(m.to_fields_key(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            let node = child.to_map(self.members.contains(pe));
            map.insert(pe.to_fields_key(), Value::Object(node));
        }
        map
    }

    /// Decodes a fieldsV1 value.
    pub fn from_fields_value(v: &Value) -> Result<FieldSet, FieldsError> {
        let Value::Object(map) = v else {
            return Err(FieldsError::NotAnObject { at: String::new() });
        };
        let (set, _) = read_node(map, "")?;
        Ok(set.unwrap_or_default())
    }

    /// Decodes fieldsV1 JSON text.
    pub fn from_fields_json(s: &str) -> Result<FieldSet, FieldsError> {
        let v: Value = serde_json::from_str(s).map_err(|e| FieldsError::Json(e.to_string()))?;
        FieldSet::from_fields_value(&v)
    }
}

fn push_key(out: &mut String, pe: &PathElement) {
    let key = pe.to_fields_key();
    out.push_str(&serde_json::to_string(&key).unwrap_or_default());
    out.push(':');
}

/// Reads one node: its children (if any) and whether it is itself a member
/// (it has `"."`, or it is a leaf `{}`).
fn read_node(map: &Map<String, Value>, at: &str) -> Result<(Option<FieldSet>, bool), FieldsError> {
    let mut children: Option<FieldSet> = None;
    let mut is_member = false;
    for (key, value) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let pe = match PathElement::parse(key) {
            Ok(pe) => pe,
            Err(_) if is_unknown_type(key) => continue,
            Err(e) => return Err(e),
        };
        let Value::Object(child_map) = value else {
            return Err(FieldsError::NotAnObject {
                at: format!("{at}{key}"),
            });
        };
        let (grandchildren, child_is_member) = read_node(child_map, &format!("{at}{key}."))?;
        let set = children.get_or_insert_with(FieldSet::new);
        if child_is_member {
            set.members.insert(pe.clone());
        }
        if let Some(g) = grandchildren.filter(|g| !g.is_empty()) {
            set.children.insert(pe, g);
        }
    }
    if children.is_none() {
        is_member = true;
    }
    Ok((children, is_member))
}

/// Keys of at least two bytes that are not `f:`, `k:`, `v:` or `i:` are of
/// an unknown element type, which upstream skips.
fn is_unknown_type(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() >= 2 && (bytes[1] != b':' || !matches!(bytes[0], b'f' | b'k' | b'v' | b'i'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fieldsV1 as a real API server wrote it (kubectl create deployment,
    /// then kubectl apply --server-side of a Service).
    const UPSTREAM: &[&str] = &[
        r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}"#,
        r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#,
        r#"{"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{},"f:protocol":{},"f:targetPort":{}},"k:{\"port\":8080,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}},"f:selector":{}}}"#,
        r#"{"f:metadata":{"f:finalizers":{".":{},"v:\"a.example.com/x\"":{},"v:\"b.example.com/y\"":{}}}}"#,
        r#"{"f:status":{"f:conditions":{".":{},"k:{\"type\":\"Available\"}":{".":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:observedGeneration":{}}}"#,
    ];

    #[test]
    fn round_trips_upstream_documents_byte_for_byte() {
        for doc in UPSTREAM {
            let set = FieldSet::from_fields_json(doc).expect(doc);
            assert_eq!(&set.to_fields_json(), doc);
            let again = FieldSet::from_fields_value(&set.to_fields_value()).unwrap();
            assert_eq!(again, set);
        }
    }

    #[test]
    fn numeric_keys_order_numerically_not_as_text() {
        let set = FieldSet::from_fields_json(
            r#"{"f:ports":{"k:{\"port\":8080}":{},"k:{\"port\":80}":{}}}"#,
        )
        .unwrap();
        assert_eq!(
            set.to_fields_json(),
            r#"{"f:ports":{"k:{\"port\":80}":{},"k:{\"port\":8080}":{}}}"#
        );
    }

    #[test]
    fn empty_and_unknown() {
        assert!(FieldSet::from_fields_json("{}").unwrap().is_empty());
        assert_eq!(FieldSet::new().to_fields_json(), "{}");
        let s = FieldSet::from_fields_json(r#"{"f:a":{"z:future":{},"zz":{}},"f:b":{}}"#).unwrap();
        assert_eq!(s.to_fields_json(), r#"{"f:a":{},"f:b":{}}"#);
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        for doc in [
            r#"{"f:a":1}"#,
            r#"{"k:[1]":{}}"#,
            "[]",
            r#"{"q":{}}"#,
            "nope",
        ] {
            assert!(FieldSet::from_fields_json(doc).is_err(), "{doc}");
        }
    }
}
