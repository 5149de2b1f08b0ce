//! Field errors: the per-field problems a 422 Invalid response lists.
//!
//! They render exactly like upstream's `field.Error` so `kubectl` users see
//! familiar text (`spec.containers[0].image: Required value`), and carry the
//! `metav1.StatusCause` reason the server puts in `details.causes`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::path::Path;

/// What is wrong with a field; each kind maps to one upstream cause reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A referenced item does not exist.
    NotFound,
    /// A required field is missing or empty.
    Required,
    /// A value that must be unique appears twice.
    Duplicate,
    /// The value is malformed or out of range.
    Invalid,
    /// The value is not one of an enumerated set.
    NotSupported,
    /// The field may not be set or changed here.
    Forbidden,
    /// The value is longer than allowed.
    TooLong,
    /// A list has more items than allowed.
    TooMany,
    /// The value has the wrong JSON type (e.g. a string where a list goes).
    TypeInvalid,
}

impl FieldErrorKind {
    /// The `metav1.StatusCause.reason` upstream uses for this kind.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human words upstream prints for this kind.
    pub fn label(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
        }
    }
}

/// One problem with one field of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// Where: `spec.containers[0].image`.
    pub field: String,
    /// Detail text after the value (may be empty).
    pub message: String,
    /// The offending value, printed in the message when present.
    pub value: Option<Value>,
}

impl FieldError {
    fn new(kind: FieldErrorKind, field: &Path, value: Option<Value>, message: String) -> Self {
        FieldError {
            kind,
            field: field.to_string(),
            message,
            value,
        }
    }

    /// A required field is missing; `detail` may be empty.
    pub fn required(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail.into())
    }

    /// The value is invalid for the reason in `detail`.
    pub fn invalid(field: &Path, value: impl Into<Value>, detail: impl Into<String>) -> Self {
        Self::new(
            FieldErrorKind::Invalid,
            field,
            Some(value.into()),
            detail.into(),
        )
    }

    /// The value is not one of `supported` (listed in the message, quoted).
    pub fn not_supported(field: &Path, value: impl Into<Value>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            Some(value.into()),
            detail,
        )
    }

    /// The value duplicates an earlier one.
    pub fn duplicate(field: &Path, value: impl Into<Value>) -> Self {
        Self::new(
            FieldErrorKind::Duplicate,
            field,
            Some(value.into()),
            String::new(),
        )
    }

    /// The field may not be set or changed; `detail` says why.
    pub fn forbidden(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail.into())
    }

    /// The value exceeds `max` bytes.
    pub fn too_long(field: &Path, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::new(
            FieldErrorKind::TooLong,
            field,
            None,
            format!("may not be more than {max} {unit}"),
        )
    }

    /// A list has `actual` items but at most `max` are allowed.
    pub fn too_many(field: &Path, actual: usize, max: usize) -> Self {
        Self::new(
            FieldErrorKind::TooMany,
            field,
            Some(Value::from(actual)),
            format!("must have at most {max} items"),
        )
    }

    /// A referenced item was not found.
    pub fn not_found(field: &Path, value: impl Into<Value>) -> Self {
        Self::new(
            FieldErrorKind::NotFound,
            field,
            Some(value.into()),
            String::new(),
        )
    }

    /// The value has the wrong JSON type; `expected` names the right one.
    pub fn type_invalid(field: &Path, value: &Value, expected: &str) -> Self {
        Self::new(
            FieldErrorKind::TypeInvalid,
            field,
            Some(value.clone()),
            format!("expected {expected}"),
        )
    }

    /// The `metav1.StatusCause.reason` for this error.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// The `metav1.StatusCause` for this error (`reason`, `message`,
    /// `field`), ready for a 422 Status's `details.causes`.
    pub fn cause(&self) -> Value {
        serde_json::json!({
            "reason": self.reason(),
            "message": self.body(),
            "field": self.field,
        })
    }

    /// The message without the field path: what upstream puts in
    /// `StatusCause.message`.
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong => {
                self.kind.label().to_string()
            }
            _ => match &self.value {
                None => self.kind.label().to_string(),
                Some(v) => format!("{}: {}", self.kind.label(), render_value(v)),
            },
        };
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// Renders a bad value the way upstream's Go formatting shows it: strings
/// quoted, numbers and booleans bare, string lists and string maps in Go
/// syntax, anything else as JSON.
fn render_value(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let inner: Vec<String> = items.iter().map(render_value).collect();
            format!("[]string{{{}}}", inner.join(", "))
        }
        Value::Object(map) if !map.is_empty() && map.values().all(Value::is_string) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", render_value(v)))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// The message of a 422 Invalid status, as upstream builds it:
/// `Pod "web" is invalid: <err>` for one error,
/// `Deployment.apps "web" is invalid: [<err1>, <err2>]` for several
/// (duplicate messages collapsed). `group` is `""` for the core group.
pub fn invalid_message(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut seen = BTreeSet::new();
    let mut msgs = Vec::new();
    for e in errs {
        let m = e.to_string();
        if seen.insert(m.clone()) {
            msgs.push(m);
        }
    }
    match msgs.len() {
        0 => format!("{qualified} {name:?} is invalid"),
        1 => format!("{qualified} {name:?} is invalid: {}", msgs[0]),
        _ => format!("{qualified} {name:?} is invalid: [{}]", msgs.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::new(s)
    }

    #[test]
    fn reasons_match_upstream() {
        let cases = [
            (FieldErrorKind::Required, "FieldValueRequired"),
            (FieldErrorKind::Invalid, "FieldValueInvalid"),
            (FieldErrorKind::NotSupported, "FieldValueNotSupported"),
            (FieldErrorKind::Duplicate, "FieldValueDuplicate"),
            (FieldErrorKind::Forbidden, "FieldValueForbidden"),
            (FieldErrorKind::TooLong, "FieldValueTooLong"),
            (FieldErrorKind::TooMany, "FieldValueTooMany"),
            (FieldErrorKind::NotFound, "FieldValueNotFound"),
            (FieldErrorKind::TypeInvalid, "FieldValueTypeInvalid"),
        ];
        for (k, r) in cases {
            assert_eq!(k.reason(), r);
        }
        assert_eq!(
            FieldError::required(&p("a"), "").reason(),
            "FieldValueRequired"
        );
    }

    #[test]
    fn status_cause() {
        let e = FieldError::invalid(&p("metadata.name"), "Foo", "bad");
        assert_eq!(
            e.cause(),
            serde_json::json!({"reason": "FieldValueInvalid", "message": "Invalid value: \"Foo\": bad", "field": "metadata.name"})
        );
    }

    #[test]
    fn required_display() {
        let e = FieldError::required(
            &Path::new("spec")
                .child("containers")
                .index(0)
                .child("image"),
            "",
        );
        assert_eq!(e.to_string(), "spec.containers[0].image: Required value");
        let e = FieldError::required(&p("metadata.name"), "name or generateName is required");
        assert_eq!(
            e.to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn invalid_display_quotes_strings() {
        let e = FieldError::invalid(&p("metadata.name"), "Foo", "bad");
        assert_eq!(e.to_string(), "metadata.name: Invalid value: \"Foo\": bad");
        assert_eq!(e.body(), "Invalid value: \"Foo\": bad");
        let e = FieldError::invalid(
            &p("spec.replicas"),
            -1,
            "must be greater than or equal to 0",
        );
        assert_eq!(
            e.to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn go_style_collections() {
        let e = FieldError::invalid(
            &p("spec.template.metadata.labels"),
            serde_json::json!({"app": "web"}),
            "x",
        );
        assert_eq!(
            e.to_string(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: x"
        );
        let e = FieldError::invalid(&p("a"), serde_json::json!(["1", "2"]), "x");
        assert_eq!(e.to_string(), "a: Invalid value: []string{\"1\", \"2\"}: x");
    }

    #[test]
    fn not_supported_lists_values() {
        let e = FieldError::not_supported(
            &p("spec.restartPolicy"),
            "Sometimes",
            &["Always", "Never", "OnFailure"],
        );
        assert_eq!(
            e.to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\""
        );
    }

    #[test]
    fn other_kinds_display() {
        assert_eq!(
            FieldError::duplicate(&p("spec.containers[1].name"), "a").to_string(),
            "spec.containers[1].name: Duplicate value: \"a\""
        );
        assert_eq!(
            FieldError::forbidden(&p("metadata.namespace"), "not allowed on this type").to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        assert_eq!(
            FieldError::too_long(&p("metadata.annotations"), 262144).to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            FieldError::too_many(&p("spec.x"), 5, 3).to_string(),
            "spec.x: Too many: 5: must have at most 3 items"
        );
        assert_eq!(
            FieldError::type_invalid(&p("spec.containers"), &Value::from("x"), "array").to_string(),
            "spec.containers: Invalid value: \"x\": expected array"
        );
    }

    #[test]
    fn invalid_message_single_and_many() {
        let e1 = FieldError::required(&p("spec.containers"), "");
        let e2 = FieldError::invalid(&p("metadata.name"), "Web", "bad");
        assert_eq!(
            invalid_message("", "Pod", "web", std::slice::from_ref(&e1)),
            "Pod \"web\" is invalid: spec.containers: Required value"
        );
        assert_eq!(
            invalid_message(
                "apps",
                "Deployment",
                "web",
                &[e1.clone(), e2.clone(), e1.clone()]
            ),
            "Deployment.apps \"web\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"Web\": bad]"
        );
        assert_eq!(
            invalid_message("", "Pod", "web", &[]),
            "Pod \"web\" is invalid"
        );
        // duplicates collapse to one message: no brackets
        assert_eq!(
            invalid_message("", "Pod", "x", &[e1.clone(), e1]),
            "Pod \"x\" is invalid: spec.containers: Required value"
        );
    }
}
