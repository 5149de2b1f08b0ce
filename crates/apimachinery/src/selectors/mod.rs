//! Label and field selectors: the `labelSelector=` and `fieldSelector=`
//! query parameters, and `metav1.LabelSelector` objects in specs.

mod field;
mod label;

pub use field::{FieldSelector, FieldTerm, supported_fields};
pub use label::{LabelSelector, Operator, Requirement};

use std::collections::BTreeMap;

use serde_json::Value;

/// Why a selector could not be parsed or used. The server turns every
/// variant into a 400 Bad Request whose message is this error's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector string or object is malformed.
    #[error("{0}")]
    Parse(String),
    /// A field selector names a field the kind does not support.
    #[error("{0}")]
    UnsupportedField(String),
}

/// Reads `metadata.labels` of an object as a map, ignoring non-string
/// values (they never match anything).
pub fn object_labels(obj: &Value) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
