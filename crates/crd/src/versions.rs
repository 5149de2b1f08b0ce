//! Lookups the API server needs per served version of a CRD: which
//! version is stored, which are served, the schema, printer columns and
//! subresources of each. In `apiextensions.k8s.io/v1` all of these live on
//! `spec.versions[*]`.

use serde_json::Value;

/// `spec.versions` of a CRD spec (or of a whole CRD), objects only.
pub(crate) fn versions(spec_or_crd: &Value) -> Vec<&Value> {
    let list = spec_or_crd
        .get("versions")
        .or_else(|| spec_or_crd.pointer("/spec/versions"));
    list.and_then(Value::as_array)
        .map(|a| a.iter().filter(|v| v.is_object()).collect())
        .unwrap_or_default()
}

/// Whether the CRD has condition `ty` with status `True`.
pub(crate) fn condition_true(crd: &Value, ty: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(ty)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// The entry of `spec.versions` named `version`.
pub fn version<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    versions(crd)
        .into_iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key) == Some(&Value::Bool(true))
}

/// The version objects are stored in (`storage: true`).
pub fn storage_version(crd: &Value) -> Option<&str> {
    versions(crd)
        .into_iter()
        .find(|v| flag(v, "storage"))
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
}

/// Names of the versions served (`served: true`), in declaration order.
pub fn served_versions(crd: &Value) -> Vec<&str> {
    versions(crd)
        .into_iter()
        .filter(|v| flag(v, "served"))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect()
}

/// The raw `openAPIV3Schema` of `version`.
pub fn schema_for<'a>(crd: &'a Value, v: &str) -> Option<&'a Value> {
    version(crd, v)?
        .pointer("/schema/openAPIV3Schema")
        .filter(|s| !s.is_null())
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    /// Optional format hint (`int32`, `date-time`, ...), empty if unset.
    pub format: String,
    /// Column description (shown in the table's column definitions).
    pub description: String,
    /// 0 = shown by default; higher = only with `-o wide`.
    pub priority: i64,
    /// Where the cell's value comes from ([`crate::jsonpath`]).
    pub json_path: String,
}

/// The printer columns declared for `version` (empty if none; upstream's
/// table then shows only Name and Age, which the server adds itself).
pub fn printer_columns(crd: &Value, v: &str) -> Vec<PrinterColumn> {
    let Some(cols) = version(crd, v)
        .and_then(|x| x.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let s = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    cols.iter()
        .filter(|c| c.is_object())
        .map(|c| PrinterColumn {
            name: s(c, "name"),
            type_: s(c, "type"),
            format: s(c, "format"),
            description: s(c, "description"),
            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            json_path: s(c, "jsonPath"),
        })
        .collect()
}

/// Where the scale subresource finds replicas and the selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// `.spec.replicas`-like path of the desired count.
    pub spec_replicas: String,
    /// `.status.replicas`-like path of the observed count.
    pub status_replicas: String,
    /// Path of the serialized label selector, if declared.
    pub label_selector: Option<String>,
}

/// The scale subresource of `version`, if enabled.
pub fn scale_paths(crd: &Value, v: &str) -> Option<ScalePaths> {
    let scale = version(crd, v)?
        .pointer("/subresources/scale")
        .filter(|s| s.is_object())?;
    let s = |k: &str| scale.get(k).and_then(Value::as_str).map(str::to_string);
    Some(ScalePaths {
        spec_replicas: s("specReplicasPath")?,
        status_replicas: s("statusReplicasPath")?,
        label_selector: s("labelSelectorPath").filter(|x| !x.is_empty()),
    })
}

/// Whether `version` has the status subresource (then writes to the main
/// resource ignore `status`, and `/status` ignores everything else).
pub fn has_status_subresource(crd: &Value, v: &str) -> bool {
    version(crd, v)
        .and_then(|x| x.pointer("/subresources/status"))
        .is_some_and(|s| !s.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({"spec": {"versions": [
            {"name": "v1beta1", "served": true, "storage": false},
            {"name": "v1", "served": true, "storage": true,
             "schema": {"openAPIV3Schema": {"type": "object"}},
             "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
             "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1}]},
            {"name": "v0", "served": false, "storage": false}
        ]}})
    }

    #[test]
    fn lookups() {
        let c = crd();
        assert_eq!(storage_version(&c), Some("v1"));
        assert_eq!(served_versions(&c), vec!["v1beta1", "v1"]);
        assert_eq!(schema_for(&c, "v1"), Some(&json!({"type": "object"})));
        assert_eq!(schema_for(&c, "v1beta1"), None);
        assert!(has_status_subresource(&c, "v1"));
        assert!(!has_status_subresource(&c, "v1beta1"));
        assert_eq!(
            scale_paths(&c, "v1"),
            Some(ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: None
            })
        );
        let cols = printer_columns(&c, "v1");
        assert_eq!(cols.len(), 1);
        assert_eq!(cols[0].priority, 1);
        assert_eq!(cols[0].json_path, ".spec.replicas");
        assert!(printer_columns(&c, "nope").is_empty());
        assert_eq!(storage_version(&json!("garbage")), None);
    }
}
