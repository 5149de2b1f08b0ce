//! Defaulting and validation of incoming objects (upstream's defaulting and
//! validation functions, from `skiff-apimachinery`), turned into 422s.

use serde_json::Value;
use skiff_apimachinery::{FieldError, defaults, invalid_message, validation};

use crate::resources::ResourceInfo;
use crate::status::ApiError;

fn invalid(r: &ResourceInfo, name: &str, errors: &[FieldError]) -> ApiError {
    let causes = errors.iter().map(FieldError::cause).collect();
    ApiError::invalid(
        &r.kind,
        &r.group,
        name,
        invalid_message(&r.group, &r.kind, name, errors),
        causes,
    )
}

/// Fills in defaults, then validates a new object.
pub fn admit_create(r: &ResourceInfo, obj: &mut Value, name: &str) -> Result<(), ApiError> {
    defaults::apply(&r.group, &r.kind, obj);
    let errors = validation::validate_create(&r.group, &r.kind, obj);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name, &errors))
    }
}

/// Fills in defaults, then validates a change (immutable fields included).
pub fn admit_update(
    r: &ResourceInfo,
    new: &mut Value,
    old: &Value,
    name: &str,
) -> Result<(), ApiError> {
    defaults::apply(&r.group, &r.kind, new);
    let errors = validation::validate_update(&r.group, &r.kind, new, old);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name, &errors))
    }
}
