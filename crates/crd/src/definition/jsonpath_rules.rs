//! The "simple JSON path" upstream accepts for scale subresource paths and
//! printer columns: it must start with a dot; what follows is evaluated by
//! [`crate::jsonpath`] at read time.

use skiff_apimachinery::{FieldError, Path};

/// Upstream's `validateSimpleJSONPath`.
pub fn validate_simple_json_path(s: &str, path: &Path) -> Vec<FieldError> {
    if s.is_empty() {
        vec![FieldError::invalid(path, s, "must not be empty")]
    } else if !s.starts_with('.') {
        vec![FieldError::invalid(
            path,
            s,
            "must be a simple json path starting with .",
        )]
    } else {
        Vec::new()
    }
}
