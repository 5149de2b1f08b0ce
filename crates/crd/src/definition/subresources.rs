//! `subresources`: `status` (no settings) and `scale`, whose paths say
//! where the replica counts and selector live in a custom object.

use serde_json::Value;
use skiff_apimachinery::{FieldError, Path};

use super::jsonpath_rules::validate_simple_json_path;

/// Upstream's `ValidateCustomResourceDefinitionSubresources`.
pub fn validate_subresources(sub: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(scale) = sub.get("scale").filter(|v| !v.is_null()) else {
        return errs;
    };
    let s = |k: &str| scale.get(k).and_then(Value::as_str).unwrap_or("");
    for (key, prefix, msg) in [
        (
            "specReplicasPath",
            ".spec.",
            "should be a json path under .spec",
        ),
        (
            "statusReplicasPath",
            ".status.",
            "should be a json path under .status",
        ),
    ] {
        let at = path.child(&format!("scale.{key}"));
        let v = s(key);
        if v.is_empty() {
            errs.push(FieldError::required(&at, ""));
            continue;
        }
        let e = validate_simple_json_path(v, &at);
        if !e.is_empty() {
            errs.extend(e);
        } else if !v.starts_with(prefix) {
            errs.push(FieldError::invalid(&at, v, msg));
        }
    }
    let sel = s("labelSelectorPath");
    if !sel.is_empty() {
        let at = path.child("scale.labelSelectorPath");
        let e = validate_simple_json_path(sel, &at);
        if !e.is_empty() {
            errs.extend(e);
        } else if !sel.starts_with(".spec.") && !sel.starts_with(".status.") {
            errs.push(FieldError::invalid(
                &at,
                sel,
                "should be a json path under either .spec or .status",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scale_paths() {
        let p = Path::new("spec.versions[0].subresources");
        let m: Vec<String> = validate_subresources(
            &json!({"scale": {"specReplicasPath": ".status.replicas", "labelSelectorPath": ".metadata.x"}}),
            &p,
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            m,
            vec![
                "spec.versions[0].subresources.scale.specReplicasPath: Invalid value: \".status.replicas\": should be a json path under .spec",
                "spec.versions[0].subresources.scale.statusReplicasPath: Required value",
                "spec.versions[0].subresources.scale.labelSelectorPath: Invalid value: \".metadata.x\": should be a json path under either .spec or .status",
            ]
        );
        assert!(validate_subresources(
            &json!({"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}),
            &p
        )
        .is_empty());
    }
}
