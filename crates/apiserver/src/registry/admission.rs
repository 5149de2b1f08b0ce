//! Defaulting and validation of incoming objects (upstream's defaulting and
//! validation functions, from `skiff-apimachinery`), turned into 422s.

use serde_json::Value;
use skiff_apimachinery::names::NameRule;
use skiff_apimachinery::{FieldError, defaults, invalid_message, validation};

use crate::crd::CustomInfo;
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
    let errors = match &r.custom {
        Some(custom) => custom_object(r, custom, obj, None),
        None if is_definition(r) => {
            skiff_crd::default_definition(obj);
            let mut errors = validation::validate_create(&r.group, &r.kind, obj);
            errors.extend(skiff_crd::validate_definition(obj, None));
            errors
        }
        None => {
            defaults::apply(&r.group, &r.kind, obj);
            if r.group.is_empty() && r.kind == "Pod" {
                super::default_tolerations::apply(obj);
            }
            validation::validate_create(&r.group, &r.kind, obj)
        }
    };
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
    let errors = match &r.custom {
        Some(custom) => custom_object(r, custom, new, Some(old)),
        None if is_definition(r) => {
            skiff_crd::default_definition(new);
            let mut errors = validation::validate_update(&r.group, &r.kind, new, old);
            errors.extend(skiff_crd::validate_definition(new, Some(old)));
            errors
        }
        None => {
            defaults::apply(&r.group, &r.kind, new);
            validation::validate_update(&r.group, &r.kind, new, old)
        }
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, name, &errors))
    }
}

fn is_definition(r: &ResourceInfo) -> bool {
    r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition"
}

/// A custom object as upstream's custom resource handler admits it:
/// unknown fields pruned, schema defaults applied, then the schema and the
/// generic metadata rules checked.
fn custom_object(
    r: &ResourceInfo,
    custom: &CustomInfo,
    obj: &mut Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    if let Some(schema) = &custom.structural {
        schema.prune(obj);
        schema.default(obj);
    }
    let scope = Some(if r.namespaced {
        validation::Scope::Namespaced
    } else {
        validation::Scope::Cluster
    });
    let mut errors =
        validation::validate_generic_object_meta(obj, scope, NameRule::Dns1123Subdomain);
    if let Some(old) = old {
        errors.extend(validation::validate_object_meta_update(obj, old));
    }
    if let Some(schema) = &custom.structural {
        errors.extend(schema.validate(obj));
    }
    errors
}
