//! Validating a custom object against its compiled schema, with the field
//! errors upstream's kube-openapi validator produces (after the API server
//! turns them into `field.Error`s), so clients see the same 422 text:
//! `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
//!
//! The object is expected to be pruned and defaulted already, as upstream
//! does before validating; unknown fields are therefore not errors here.
//! Recursion follows the schema, whose depth is capped at compile time.

use std::collections::HashMap;

use serde_json::{Map, Value};
use skiff_apimachinery::{FieldError, FieldErrorKind, Path, names};

use super::format;
use super::json::{canonical, go_number, has_type, json_eq, type_name};
use super::structural::{AdditionalProperties, Structural};

impl Structural {
    /// Validates `obj` (a whole custom object when `self` is a version's
    /// root schema) and returns every problem found.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_node(self, obj, &Path::new(""), &mut errs);
        errs
    }

    /// Validates `value` found at `path` (for callers validating a part of
    /// an object, e.g. a `default`, against a sub-schema).
    pub fn validate_at(&self, value: &Value, path: &Path) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_node(self, value, path, &mut errs);
        errs
    }
}

/// "`spec.replicas` in body": the subject of kube-openapi's messages.
fn subject(path: &Path) -> String {
    format!("{path} in body")
}

fn type_error(path: &Path, expected: &str, v: &Value) -> FieldError {
    let actual = type_name(v);
    FieldError {
        kind: FieldErrorKind::TypeInvalid,
        field: path.to_string(),
        message: format!("{} must be of type {expected}: {actual:?}", subject(path)),
        value: Some(Value::from(actual)),
    }
}

fn validate_node(s: &Structural, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let expected = if s.int_or_string {
        "integer,string"
    } else {
        s.type_.as_str()
    };
    if v.is_null() {
        if !s.nullable && !expected.is_empty() {
            errs.push(type_error(path, expected, v));
        }
        return;
    }
    if !expected.is_empty() && !has_type(expected, v) {
        errs.push(type_error(path, expected, v));
        return;
    }
    junctors(s, v, path, errs);
    match v {
        Value::Object(m) => object(s, m, path, errs),
        Value::Array(items) => array(s, items, path, errs),
        Value::String(st) => string(s, st, v, path, errs),
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                number(s, f, v, path, errs);
            }
        }
        _ => {}
    }
    if let Some(values) = &s.validation.enum_values
        && !values.iter().any(|e| json_eq(e, v))
    {
        let shown: Vec<String> = values
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let refs: Vec<&str> = shown.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, v.clone(), &refs));
    }
}

/// `allOf`, `anyOf`, `oneOf`, `not`, reported like go-openapi.
fn junctors(s: &Structural, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let vv = &s.validation;
    for sub in &vv.all_of {
        validate_node(sub, v, path, errs);
    }
    let results = |subs: &[Structural]| -> Vec<Vec<FieldError>> {
        subs.iter()
            .map(|sub| {
                let mut e = Vec::new();
                validate_node(sub, v, path, &mut e);
                e
            })
            .collect()
    };
    if !vv.any_of.is_empty() {
        let rs = results(&vv.any_of);
        if rs.iter().all(|r| !r.is_empty()) {
            errs.push(FieldError::invalid(
                path,
                "",
                format!(
                    "{:?} must validate at least one schema (anyOf)",
                    path.as_str()
                ),
            ));
            if let Some(best) = rs.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        }
    }
    if !vv.one_of.is_empty() {
        let rs = results(&vv.one_of);
        let valid = rs.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(FieldError::invalid(
                path,
                "",
                format!(
                    "{:?} must validate one and only one schema (oneOf). {found}",
                    path.as_str()
                ),
            ));
            if valid == 0
                && let Some(best) = rs.into_iter().min_by_key(Vec::len)
            {
                errs.extend(best);
            }
        }
    }
    if let Some(not) = &vv.not {
        let mut e = Vec::new();
        validate_node(not, v, path, &mut e);
        if e.is_empty() {
            errs.push(FieldError::invalid(
                path,
                "",
                format!("{:?} must not validate the schema (not)", path.as_str()),
            ));
        }
    }
}

fn too_many(path: &Path, actual: usize, max: u64) -> FieldError {
    FieldError::too_many(path, actual, usize::try_from(max).unwrap_or(usize::MAX))
}

fn object(s: &Structural, m: &Map<String, Value>, path: &Path, errs: &mut Vec<FieldError>) {
    let vv = &s.validation;
    if let Some(max) = vv.max_properties
        && m.len() as u64 > max
    {
        errs.push(too_many(path, m.len(), max));
    }
    if let Some(min) = vv.min_properties
        && (m.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            m.len(),
            format!("{} should have at least {min} properties", subject(path)),
        ));
    }
    for key in &s.required {
        if !m.contains_key(key) {
            errs.push(FieldError::required(&path.child(key), ""));
        }
    }
    for (k, child) in m {
        if let Some(p) = s.properties.get(k) {
            validate_node(p, child, &path.child(k), errs);
            continue;
        }
        match &s.additional_properties {
            Some(AdditionalProperties::Schema(ap)) => {
                validate_node(ap, child, &path.child(k), errs)
            }
            Some(AdditionalProperties::Allows(false)) => errs.push(FieldError::invalid(
                path,
                k.as_str(),
                format!("{path}.{k} in body is a forbidden property"),
            )),
            _ => {}
        }
    }
    if s.embedded_resource {
        embedded_resource(m, path, errs);
    }
}

/// An embedded resource (`x-kubernetes-embedded-resource`) must carry
/// `apiVersion` and `kind` like a top-level object.
fn embedded_resource(m: &Map<String, Value>, path: &Path, errs: &mut Vec<FieldError>) {
    for key in ["apiVersion", "kind"] {
        match m.get(key) {
            None => errs.push(FieldError::required(&path.child(key), "must not be empty")),
            Some(Value::String(s)) if s.is_empty() => {
                errs.push(FieldError::invalid(
                    &path.child(key),
                    "",
                    "must not be empty",
                ));
            }
            Some(Value::String(s)) if key == "kind" => {
                let problems = names::dns1035_label(&s.to_lowercase());
                if !problems.is_empty() {
                    errs.push(FieldError::invalid(
                        &path.child(key),
                        s.as_str(),
                        format!(
                            "may have mixed case, but should otherwise match: {}",
                            problems.join(",")
                        ),
                    ));
                }
            }
            Some(Value::String(s)) => {
                if s.split('/').count() > 2 {
                    errs.push(FieldError::invalid(
                        &path.child(key),
                        s.as_str(),
                        format!("unexpected GroupVersion string: {s}"),
                    ));
                }
            }
            Some(other) => errs.push(FieldError::invalid(
                &path.child(key),
                other.clone(),
                "must be a string",
            )),
        }
    }
    if let Some(meta) = m.get("metadata")
        && !meta.is_object()
    {
        errs.push(FieldError::invalid(
            &path.child("metadata"),
            meta.clone(),
            "must be an object",
        ));
    }
}

fn array(s: &Structural, items: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let vv = &s.validation;
    if let Some(max) = vv.max_items
        && items.len() as u64 > max
    {
        errs.push(too_many(path, items.len(), max));
    }
    if let Some(min) = vv.min_items
        && (items.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            items.len(),
            format!("{} should have at least {min} items", subject(path)),
        ));
    }
    if vv.unique_items && !unique_duplicates(items).is_empty() {
        errs.push(FieldError::invalid(
            path,
            "",
            format!("{} shouldn't contain duplicates", subject(path)),
        ));
    }
    if let Some(item_schema) = &s.items {
        for (i, it) in items.iter().enumerate() {
            validate_node(item_schema, it, &path.index(i), errs);
        }
    }
    match s.list_type.as_deref() {
        Some("set") => {
            for i in unique_duplicates(items) {
                errs.push(FieldError::duplicate(&path.index(i), items[i].clone()));
            }
        }
        Some("map") => list_map_duplicates(&s.list_map_keys, items, path, errs),
        _ => {}
    }
}

/// Indexes of items equal to an earlier item.
fn unique_duplicates(items: &[Value]) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut dups = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Some(key) = canonical(it) else { continue };
        if seen.insert(key, i).is_some() {
            dups.push(i);
        }
    }
    dups
}

/// `x-kubernetes-list-type: map`: items with the same key values are
/// duplicates; the error shows the keys of the repeated item.
fn list_map_duplicates(keys: &[String], items: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        let Value::Object(m) = it else { continue };
        let mut key_obj = Map::new();
        for k in keys {
            if let Some(v) = m.get(k) {
                key_obj.insert(k.clone(), v.clone());
            }
        }
        let key_val = Value::Object(key_obj);
        let Some(c) = canonical(&key_val) else {
            continue;
        };
        if seen.insert(c, i).is_some() {
            errs.push(FieldError::duplicate(&path.index(i), key_val));
        }
    }
}

fn string(s: &Structural, st: &str, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let vv = &s.validation;
    let len = st.chars().count() as u64;
    if let Some(max) = vv.max_length
        && len > max
    {
        errs.push(FieldError::too_long(
            path,
            usize::try_from(max).unwrap_or(usize::MAX),
        ));
    }
    if let Some(min) = vv.min_length
        && len < min
    {
        errs.push(FieldError::invalid(
            path,
            v.clone(),
            format!("{} should be at least {min} chars long", subject(path)),
        ));
    }
    if let Some(p) = &vv.pattern
        && !p.is_match(st)
    {
        errs.push(FieldError::invalid(
            path,
            v.clone(),
            format!("{} should match '{}'", subject(path), p.as_str()),
        ));
    }
    if !s.format.is_empty() && !format::matches(&s.format, st) {
        errs.push(FieldError {
            kind: FieldErrorKind::TypeInvalid,
            field: path.to_string(),
            message: format!("{} must be of type {}: {st:?}", subject(path), s.format),
            value: Some(v.clone()),
        });
    }
}

fn number(s: &Structural, f: f64, v: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let vv = &s.validation;
    if let Some(m) = vv.multiple_of
        && m > 0.0
    {
        let q = f / m;
        if q.is_finite() && q.fract() != 0.0 {
            errs.push(FieldError::invalid(
                path,
                v.clone(),
                format!("{} should be a multiple of {}", subject(path), go_number(m)),
            ));
        }
    }
    if let Some(max) = vv.maximum {
        let bad = if vv.exclusive_maximum {
            f >= max
        } else {
            f > max
        };
        if bad {
            let rel = if vv.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                path,
                v.clone(),
                format!("{} should be {rel} {}", subject(path), go_number(max)),
            ));
        }
    }
    if let Some(min) = vv.minimum {
        let bad = if vv.exclusive_minimum {
            f <= min
        } else {
            f < min
        };
        if bad {
            let rel = if vv.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                path,
                v.clone(),
                format!("{} should be {rel} {}", subject(path), go_number(min)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Structural {
        Structural::from_schema(&v).unwrap()
    }

    fn msgs(s: &Structural, v: Value) -> Vec<String> {
        s.validate(&v).iter().map(ToString::to_string).collect()
    }

    fn spec_schema(props: Value) -> Structural {
        schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}),
        )
    }

    #[test]
    fn type_mismatch_matches_upstream_text() {
        let s = spec_schema(json!({"replicas": {"type": "integer"}}));
        let errs = s.validate(&json!({"spec": {"replicas": "3"}}));
        assert_eq!(
            errs[0].to_string(),
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        );
        assert_eq!(errs[0].reason(), "FieldValueTypeInvalid");
        assert_eq!(
            msgs(&s, json!({"spec": {"replicas": null}})),
            vec![
                "spec.replicas: Invalid value: \"null\": spec.replicas in body must be of type integer: \"null\""
            ]
        );
        assert!(msgs(&s, json!({"spec": {"replicas": 3.0}})).is_empty());
        assert_eq!(
            msgs(&s, json!({"spec": {"replicas": 1.5}})),
            vec![
                "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\""
            ]
        );
    }

    #[test]
    fn nullable_accepts_null() {
        let s = spec_schema(json!({"x": {"type": "string", "nullable": true}}));
        assert!(msgs(&s, json!({"spec": {"x": null}})).is_empty());
    }

    #[test]
    fn numeric_bounds() {
        let s = spec_schema(json!({"replicas": {"type": "integer", "minimum": 1, "maximum": 10}}));
        assert_eq!(
            msgs(&s, json!({"spec": {"replicas": 15}})),
            vec![
                "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10"
            ]
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"replicas": 0}})),
            vec![
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
            ]
        );
        let s = spec_schema(
            json!({"r": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true, "multipleOf": 0.5}}),
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"r": 1.5}})),
            vec!["spec.r: Invalid value: 1.5: spec.r in body should be less than 1.5"]
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"r": 0.7}})),
            vec!["spec.r: Invalid value: 0.7: spec.r in body should be a multiple of 0.5"]
        );
    }

    #[test]
    fn strings() {
        let s = spec_schema(
            json!({"cronSpec": {"type": "string", "pattern": "^\\d+$", "minLength": 2, "maxLength": 3}}),
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"cronSpec": "abcd"}})),
            vec![
                "spec.cronSpec: Too long: may not be more than 3 bytes",
                "spec.cronSpec: Invalid value: \"abcd\": spec.cronSpec in body should match '^\\d+$'"
            ]
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"cronSpec": "1"}})),
            vec![
                "spec.cronSpec: Invalid value: \"1\": spec.cronSpec in body should be at least 2 chars long"
            ]
        );
        let s = spec_schema(json!({"at": {"type": "string", "format": "date-time"}}));
        assert_eq!(
            msgs(&s, json!({"spec": {"at": "now"}})),
            vec![
                "spec.at: Invalid value: \"now\": spec.at in body must be of type date-time: \"now\""
            ]
        );
    }

    #[test]
    fn required_and_enum() {
        let s = schema(json!({"type": "object", "properties": {"spec": {
            "type": "object", "required": ["image"],
            "properties": {"image": {"type": "string"}, "policy": {"type": "string", "enum": ["Always", "Never"]}}
        }}}));
        assert_eq!(
            msgs(&s, json!({"spec": {"policy": "Sometimes"}})),
            vec![
                "spec.image: Required value",
                "spec.policy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\""
            ]
        );
        let e = s.validate(&json!({"spec": {}}));
        assert_eq!(e[0].reason(), "FieldValueRequired");
    }

    #[test]
    fn arrays_and_lists() {
        let s = spec_schema(json!({
            "tags": {"type": "array", "maxItems": 3, "minItems": 1, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}
        }));
        assert_eq!(
            msgs(&s, json!({"spec": {"tags": ["a", "b", "a", 1]}})),
            vec![
                "spec.tags: Too many: 4: must have at most 3 items",
                "spec.tags[3]: Invalid value: \"integer\": spec.tags[3] in body must be of type string: \"integer\"",
                "spec.tags[2]: Duplicate value: \"a\""
            ]
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"tags": []}})),
            vec!["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
        );
        assert_eq!(
            msgs(
                &s,
                json!({"spec": {"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}})
            ),
            vec!["spec.ports[1]: Duplicate value: map[string]string{\"name\":\"a\"}"]
        );
    }

    #[test]
    fn maps_and_properties_counts() {
        let s = spec_schema(
            json!({"labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}}),
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"labels": {"a": "x", "b": 2}}})),
            vec![
                "spec.labels: Too many: 2: must have at most 1 items",
                "spec.labels.b: Invalid value: \"integer\": spec.labels.b in body must be of type string: \"integer\""
            ]
        );
    }

    #[test]
    fn int_or_string() {
        let s = spec_schema(json!({"port": {"x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]}}));
        assert!(msgs(&s, json!({"spec": {"port": 80}})).is_empty());
        assert!(msgs(&s, json!({"spec": {"port": "http"}})).is_empty());
        assert_eq!(
            msgs(&s, json!({"spec": {"port": true}})),
            vec![
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
            ]
        );
    }

    #[test]
    fn preserve_unknown_without_type_accepts_anything() {
        let s = spec_schema(json!({"raw": {"x-kubernetes-preserve-unknown-fields": true}}));
        assert!(msgs(&s, json!({"spec": {"raw": [1, {"a": null}]}})).is_empty());
    }

    #[test]
    fn embedded_resources_need_type_meta() {
        let s = spec_schema(
            json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true}}),
        );
        assert_eq!(
            msgs(&s, json!({"spec": {"template": {"kind": "my pod"}}})),
            vec![
                "spec.template.apiVersion: Required value: must not be empty",
                "spec.template.kind: Invalid value: \"my pod\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert!(
            msgs(
                &s,
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}})
            )
            .is_empty()
        );
    }

    #[test]
    fn junctors() {
        let s = spec_schema(json!({"x": {"type": "integer", "not": {"minimum": 5}}}));
        assert_eq!(
            msgs(&s, json!({"spec": {"x": 7}})),
            vec!["spec.x: Invalid value: \"\": \"spec.x\" must not validate the schema (not)"]
        );
        let s = spec_schema(
            json!({"x": {"type": "integer", "oneOf": [{"minimum": 5}, {"maximum": 10}]}}),
        );
        assert!(msgs(&s, json!({"spec": {"x": 2}})).is_empty());
        assert_eq!(msgs(&s, json!({"spec": {"x": 7}})).len(), 1);
    }
}
