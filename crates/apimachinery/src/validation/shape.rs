//! Typed reads from untyped JSON that turn wrong types into field errors
//! instead of panics: the only way validators look into an object.

use serde_json::{Map, Value};

use crate::field_error::FieldError;
use crate::path::Path;

/// The child `key` of `parent`, treating `null` like absent.
pub(crate) fn get<'a>(parent: &'a Value, key: &str) -> Option<&'a Value> {
    parent.get(key).filter(|v| !v.is_null())
}

/// A string child; a non-string is reported and read as absent.
pub(crate) fn string<'a>(
    parent: &'a Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let v = get(parent, key)?;
    match v.as_str() {
        Some(s) => Some(s),
        None => {
            errs.push(FieldError::type_invalid(&at.child(key), v, "string"));
            None
        }
    }
}

/// An object child; anything else is reported and read as absent.
pub(crate) fn object<'a>(
    parent: &'a Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    let v = get(parent, key)?;
    match v.as_object() {
        Some(m) => Some(m),
        None => {
            errs.push(FieldError::type_invalid(&at.child(key), v, "object"));
            None
        }
    }
}

/// A list child; anything else is reported and read as absent.
pub(crate) fn array<'a>(
    parent: &'a Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<&'a Vec<Value>> {
    let v = get(parent, key)?;
    match v.as_array() {
        Some(a) => Some(a),
        None => {
            errs.push(FieldError::type_invalid(&at.child(key), v, "array"));
            None
        }
    }
}

/// An integer child; anything else is reported and read as absent.
pub(crate) fn int(parent: &Value, key: &str, at: &Path, errs: &mut Vec<FieldError>) -> Option<i64> {
    let v = get(parent, key)?;
    match v.as_i64() {
        Some(i) => Some(i),
        None => {
            errs.push(FieldError::type_invalid(&at.child(key), v, "integer"));
            None
        }
    }
}

/// A boolean child; anything else is reported and read as absent.
pub(crate) fn boolean(
    parent: &Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<bool> {
    let v = get(parent, key)?;
    match v.as_bool() {
        Some(b) => Some(b),
        None => {
            errs.push(FieldError::type_invalid(&at.child(key), v, "boolean"));
            None
        }
    }
}

/// A `map[string]string` child as (key, value) pairs; non-string values
/// are reported and skipped.
pub(crate) fn string_map<'a>(
    parent: &'a Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Vec<(&'a str, &'a str)> {
    let Some(m) = object(parent, key, at, errs) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in m {
        match v.as_str() {
            Some(s) => out.push((k.as_str(), s)),
            None => errs.push(FieldError::type_invalid(&at.child(key).key(k), v, "string")),
        }
    }
    out
}

/// Items of a list child that are objects; other items are reported.
pub(crate) fn objects<'a>(
    parent: &'a Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Vec<(usize, &'a Value, Path)> {
    let Some(items) = array(parent, key, at, errs) else {
        return Vec::new();
    };
    let base = at.child(key);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.is_object() {
            out.push((i, item, base.index(i)));
        } else {
            errs.push(FieldError::type_invalid(&base.index(i), item, "object"));
        }
    }
    out
}

/// Reports a negative value with upstream's message.
pub(crate) fn non_negative(
    parent: &Value,
    key: &str,
    at: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<i64> {
    let v = int(parent, key, at, errs)?;
    if v < 0 {
        errs.push(FieldError::invalid(
            &at.child(key),
            v,
            "must be greater than or equal to 0",
        ));
    }
    Some(v)
}

/// Reports a string outside `allowed` as NotSupported.
pub(crate) fn one_of(
    parent: &Value,
    key: &str,
    at: &Path,
    allowed: &[&str],
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    let v = string(parent, key, at, errs)?;
    if !allowed.contains(&v) {
        errs.push(FieldError::not_supported(&at.child(key), v, allowed));
    }
    Some(v.to_string())
}

/// The empty object, for walking into absent parts.
pub(crate) static EMPTY: Value = Value::Null;
