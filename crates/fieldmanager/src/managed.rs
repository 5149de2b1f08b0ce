//! `metadata.managedFields` entries: decoding, encoding, identity and order.
//!
//! An entry is identified like upstream's `BuildManagerIdentifier`: by
//! manager, operation and subresource, plus apiVersion for `Update` entries
//! only — so an applier keeps one entry across versions while a writer gets
//! one per version it writes with. Entries are written sorted as upstream
//! sorts them (operation, time, manager, apiVersion, subresource).
//! Stored entries are untrusted: decoding returns errors, never panics,
//! and [`managed_fields_for_update`] resets what cannot be decoded.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::ManagedFieldsError;
use crate::go_format;
use crate::set::FieldSet;

/// The kind of write that produced an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One element of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// RFC 3339 timestamp of the last change this manager made.
    pub time: Option<String>,
    /// Always `FieldsV1` once decoded.
    pub fields_type: String,
    pub fields: FieldSet,
    pub subresource: Option<String>,
}

/// The string fields of an entry's identity.
fn identifier_of(
    manager: &str,
    operation: Operation,
    api_version: &str,
    subresource: Option<&str>,
) -> String {
    let mut s = String::from("{");
    let mut sep = "";
    if !manager.is_empty() {
        s.push_str("\"manager\":");
        s.push_str(&go_format::json_string(manager));
        sep = ",";
    }
    s.push_str(sep);
    s.push_str("\"operation\":\"");
    s.push_str(operation.as_str());
    s.push('"');
    if operation == Operation::Update && !api_version.is_empty() {
        s.push_str(",\"apiVersion\":");
        s.push_str(&go_format::json_string(api_version));
    }
    if let Some(sub) = subresource.filter(|s| !s.is_empty()) {
        s.push_str(",\"subresource\":");
        s.push_str(&go_format::json_string(sub));
    }
    s.push('}');
    s
}

impl ManagedFieldsEntry {
    /// A fresh entry.
    pub fn new(
        manager: &str,
        operation: Operation,
        api_version: &str,
        time: Option<&str>,
        fields: FieldSet,
        subresource: Option<&str>,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: manager.to_owned(),
            operation,
            api_version: api_version.to_owned(),
            time: time.map(str::to_owned),
            fields_type: "FieldsV1".to_owned(),
            fields,
            subresource: subresource.filter(|s| !s.is_empty()).map(str::to_owned),
        }
    }

    /// Upstream's manager identifier (JSON of the identifying fields),
    /// also the sort key of conflict messages.
    pub fn identifier(&self) -> String {
        identifier_of(
            &self.manager,
            self.operation,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }

    /// Whether this entry is the one `manager` writes with this operation,
    /// version and subresource.
    pub fn is(
        &self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.identifier() == identifier_of(manager, operation, api_version, subresource)
    }

    /// Decodes one entry (`index` is for messages).
    pub fn decode(v: &Value, index: usize) -> Result<ManagedFieldsEntry, ManagedFieldsError> {
        let Value::Object(m) = v else {
            return Err(ManagedFieldsError::NotAnObject { index });
        };
        let string =
            |field: &'static str, key: &str| -> Result<Option<String>, ManagedFieldsError> {
                match m.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(ManagedFieldsError::NotAString { index, field }),
                }
            };
        let operation = match string("operation", "operation")?.as_deref() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => return Err(ManagedFieldsError::Operation { index }),
        };
        let api_version = string("apiVersion", "apiVersion")?.unwrap_or_default();
        if api_version.is_empty() {
            return Err(ManagedFieldsError::ApiVersion { index });
        }
        match string("fieldsType", "fieldsType")?.as_deref() {
            Some("FieldsV1") => {}
            None | Some("") => return Err(ManagedFieldsError::MissingFieldsType { index }),
            Some(other) => {
                return Err(ManagedFieldsError::FieldsType {
                    index,
                    value: other.to_owned(),
                });
            }
        }
        let fields = match m.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(v) => FieldSet::from_fields_value(v)
                .map_err(|source| ManagedFieldsError::Fields { index, source })?,
        };
        Ok(ManagedFieldsEntry {
            manager: string("manager", "manager")?.unwrap_or_default(),
            operation,
            api_version,
            time: string("time", "time")?.filter(|t| !t.is_empty()),
            fields_type: "FieldsV1".to_owned(),
            fields,
            subresource: string("subresource", "subresource")?.filter(|s| !s.is_empty()),
        })
    }

    /// The entry as JSON (empty fields omitted like upstream's omitempty).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        if !self.manager.is_empty() {
            m.insert("manager".into(), Value::String(self.manager.clone()));
        }
        m.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        if !self.api_version.is_empty() {
            m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        m.insert("fieldsType".into(), Value::String(self.fields_type.clone()));
        m.insert("fieldsV1".into(), self.fields.to_fields_value());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), Value::String(s.clone()));
        }
        Value::Object(m)
    }

    /// The entry as JSON text in upstream's field order (manager,
    /// operation, apiVersion, time, fieldsType, fieldsV1, subresource).
    pub fn to_json_string(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut parts = Vec::new();
        if !self.manager.is_empty() {
            parts.push(format!("\"manager\":{}", q(&self.manager)));
        }
        parts.push(format!("\"operation\":\"{}\"", self.operation.as_str()));
        if !self.api_version.is_empty() {
            parts.push(format!("\"apiVersion\":{}", q(&self.api_version)));
        }
        if let Some(t) = &self.time {
            parts.push(format!("\"time\":{}", q(t)));
        }
        parts.push(format!("\"fieldsType\":{}", q(&self.fields_type)));
        parts.push(format!("\"fieldsV1\":{}", self.fields.to_fields_json()));
        if let Some(s) = &self.subresource {
            parts.push(format!("\"subresource\":{}", q(s)));
        }
        format!("{{{}}}", parts.join(","))
    }
}

/// Decodes a `metadata.managedFields` list; one bad entry fails the whole
/// list, as upstream's `DecodeManagedFields` does. Later duplicates of an
/// identifier replace earlier ones.
pub fn decode_managed_fields(v: &Value) -> Result<Vec<ManagedFieldsEntry>, ManagedFieldsError> {
    let Value::Array(items) = v else {
        return Err(ManagedFieldsError::NotAList);
    };
    let mut out: Vec<ManagedFieldsEntry> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let entry = ManagedFieldsEntry::decode(item, index)?;
        let id = entry.identifier();
        out.retain(|e| e.identifier() != id);
        out.push(entry);
    }
    Ok(out)
}

/// The decoded `metadata.managedFields` of an object (none when absent).
pub fn managed_fields_of(obj: &Value) -> Result<Vec<ManagedFieldsEntry>, ManagedFieldsError> {
    match obj.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => decode_managed_fields(v),
    }
}

/// Sorts entries as upstream writes them.
pub fn sort_entries(entries: &mut [ManagedFieldsEntry]) {
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| time_order(p.time.as_deref(), q.time.as_deref()))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| {
                p.subresource
                    .as_deref()
                    .unwrap_or("")
                    .cmp(q.subresource.as_deref().unwrap_or(""))
            })
    });
}

/// RFC 3339 UTC timestamps (as the API writes them) order as text; a
/// missing time is the oldest.
fn time_order(a: Option<&str>, b: Option<&str>) -> Ordering {
    a.unwrap_or("").cmp(b.unwrap_or(""))
}

/// The entries as a JSON list, sorted.
pub fn encode_managed_fields(entries: &[ManagedFieldsEntry]) -> Value {
    let mut sorted = entries.to_vec();
    sort_entries(&mut sorted);
    Value::Array(sorted.iter().map(ManagedFieldsEntry::to_value).collect())
}

/// Writes entries into `metadata.managedFields` (removing the field when
/// there are none, as upstream's omitempty does).
pub fn set_managed_fields(obj: &mut Value, entries: &[ManagedFieldsEntry]) {
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        if entries.is_empty() {
            return;
        }
        if let Value::Object(root) = obj {
            let mut meta = Map::new();
            meta.insert("managedFields".into(), encode_managed_fields(entries));
            root.insert("metadata".into(), Value::Object(meta));
        }
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), encode_managed_fields(entries));
    }
}

/// The object without `metadata.managedFields`.
pub(crate) fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("managedFields");
    }
    out
}

/// Which entries an update starts from (upstream `decodeLiveOrNew`):
/// through a subresource always the live object's; otherwise the new
/// object's when it sets valid, non-empty ones (clients may edit them), an
/// empty list when it resets them (`[]` or `[{}]`), else the live
/// object's. Entries that cannot be decoded are dropped (reset) rather
/// than failing the write.
pub fn managed_fields_for_update(
    live: Option<&Value>,
    new: &Value,
    subresource: bool,
) -> Vec<ManagedFieldsEntry> {
    let live_entries = || {
        live.and_then(|l| managed_fields_of(l).ok())
            .unwrap_or_default()
    };
    if subresource {
        return live_entries();
    }
    match new.pointer("/metadata/managedFields") {
        Some(Value::Array(items)) if items.is_empty() => return Vec::new(),
        Some(Value::Array(items))
            if items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty) =>
        {
            return Vec::new();
        }
        _ => {}
    }
    match managed_fields_of(new) {
        Ok(entries) if !entries.is_empty() => entries,
        _ => live_entries(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upstream_list() -> Value {
        json!([
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2024-05-01T11:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2024-05-01T10:00:05Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"}
        ])
    }

    #[test]
    fn decodes_and_encodes_in_upstream_order() {
        let entries = decode_managed_fields(&upstream_list()).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].subresource.as_deref(), Some("status"));
        let encoded = encode_managed_fields(&entries);
        let managers: Vec<&str> = encoded
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(
            managers,
            [
                "kubectl",
                "kubectl-client-side-apply",
                "kube-controller-manager"
            ]
        );
        assert_eq!(decode_managed_fields(&encoded).unwrap().len(), 3);
        assert_eq!(
            entries[0].to_json_string(),
            r#"{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"apps/v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:replicas":{}}}}"#
        );
    }

    #[test]
    fn identifiers_match_upstream() {
        let entries = decode_managed_fields(&upstream_list()).unwrap();
        assert_eq!(
            entries[0].identifier(),
            r#"{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"apps/v1"}"#
        );
        assert_eq!(
            entries[1].identifier(),
            r#"{"manager":"kubectl","operation":"Apply"}"#
        );
        assert_eq!(
            entries[2].identifier(),
            r#"{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","subresource":"status"}"#
        );
        assert!(entries[1].is("kubectl", Operation::Apply, "v2", None));
    }

    #[test]
    fn invalid_entries_are_errors() {
        for bad in [
            json!({}),
            json!([1]),
            json!([{"operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
            json!([{"operation": "Apply", "fieldsType": "FieldsV1"}]),
            json!([{"operation": "Apply", "apiVersion": "v1"}]),
            json!([{"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"}]),
            json!([{"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"x": 1}}]),
            json!([{"operation": 5, "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
        ] {
            assert!(decode_managed_fields(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_source_follows_decode_live_or_new() {
        let live = json!({"metadata": {"managedFields": upstream_list()}});
        let no_fields = json!({"metadata": {}});
        assert_eq!(
            managed_fields_for_update(Some(&live), &no_fields, false).len(),
            3
        );
        let reset = json!({"metadata": {"managedFields": []}});
        assert!(managed_fields_for_update(Some(&live), &reset, false).is_empty());
        let reset = json!({"metadata": {"managedFields": [{}]}});
        assert!(managed_fields_for_update(Some(&live), &reset, false).is_empty());
        let garbage = json!({"metadata": {"managedFields": [{"operation": "nope"}]}});
        assert_eq!(
            managed_fields_for_update(Some(&live), &garbage, false).len(),
            3
        );
        let own = json!({"metadata": {"managedFields": [upstream_list()[1].clone()]}});
        assert_eq!(managed_fields_for_update(Some(&live), &own, false).len(), 1);
        assert_eq!(managed_fields_for_update(Some(&live), &own, true).len(), 3);
        let bad_live = json!({"metadata": {"managedFields": "x"}});
        assert!(managed_fields_for_update(Some(&bad_live), &no_fields, false).is_empty());
    }
}
