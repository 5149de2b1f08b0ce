//! `additionalPrinterColumns`: what `kubectl get` shows for custom objects.
//! Types and formats are upstream's closed sets so the table printer knows
//! how to render each cell.

use serde_json::Value;
use skiff_apimachinery::{FieldError, Path};

use super::jsonpath_rules::validate_simple_json_path;

/// Column types upstream accepts (sorted, as its messages list them).
pub const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
/// Column formats upstream accepts (sorted).
pub const COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

/// Upstream's `ValidateCustomResourceColumnDefinition` for one column.
pub fn validate_column(col: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = |k: &str| col.get(k).and_then(Value::as_str).unwrap_or("");
    if s("name").is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    }
    let types = format!("must be one of {}", COLUMN_TYPES.join(","));
    let ty = s("type");
    if ty.is_empty() {
        errs.push(FieldError::required(&path.child("type"), types));
    } else if !COLUMN_TYPES.contains(&ty) {
        errs.push(FieldError::invalid(&path.child("type"), ty, types));
    }
    let format = s("format");
    if !format.is_empty() && !COLUMN_FORMATS.contains(&format) {
        errs.push(FieldError::invalid(
            &path.child("format"),
            format,
            format!("must be one of {}", COLUMN_FORMATS.join(",")),
        ));
    }
    // upstream reports the internal field name `JSONPath`
    let jp = s("jsonPath");
    if jp.is_empty() {
        errs.push(FieldError::required(&path.child("JSONPath"), ""));
    } else {
        errs.extend(validate_simple_json_path(jp, &path.child("JSONPath")));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_messages() {
        let p = Path::new("spec.versions[0].additionalPrinterColumns").index(0);
        let m: Vec<String> = validate_column(
            &json!({"type": "money", "format": "x", "jsonPath": "spec"}),
            &p,
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            m,
            vec![
                "spec.versions[0].additionalPrinterColumns[0].name: Required value",
                "spec.versions[0].additionalPrinterColumns[0].type: Invalid value: \"money\": must be one of boolean,date,integer,number,string",
                "spec.versions[0].additionalPrinterColumns[0].format: Invalid value: \"x\": must be one of byte,date,date-time,double,float,int32,int64,password",
                "spec.versions[0].additionalPrinterColumns[0].JSONPath: Invalid value: \"spec\": must be a simple json path starting with .",
            ]
        );
        assert!(
            validate_column(
                &json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
                &p
            )
            .is_empty()
        );
    }
}
