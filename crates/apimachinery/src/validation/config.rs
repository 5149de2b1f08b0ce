//! ConfigMap and Secret validation: data keys usable as file names, size
//! limits, base64 secret data, typed secrets, and `immutable: true`.

use base64::Engine;
use serde_json::Value;

use super::shape;
use crate::field_error::FieldError;
use crate::names;
use crate::path::Path;

/// Upstream's size limit for the data of one ConfigMap or Secret.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

fn check_keys<'a>(
    obj: &'a Value,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Vec<(&'a String, &'a Value)> {
    let at = Path::new("");
    let Some(m) = shape::object(obj, field, &at, errs) else {
        return Vec::new();
    };
    for k in m.keys() {
        for msg in names::config_map_key(k) {
            errs.push(FieldError::invalid(
                &Path::new(field).key(k),
                k.as_str(),
                msg,
            ));
        }
    }
    m.iter().collect()
}

fn decoded_len(field: &str, k: &str, v: &Value, errs: &mut Vec<FieldError>) -> usize {
    let path = Path::new(field).key(k);
    match v.as_str() {
        Some(s) => match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(bytes) => bytes.len(),
            Err(e) => {
                errs.push(FieldError::invalid(
                    &path,
                    "<secret contents redacted>",
                    format!("illegal base64 data: {e}"),
                ));
                0
            }
        },
        None => {
            errs.push(FieldError::type_invalid(&path, v, "base64 string"));
            0
        }
    }
}

/// Validates a ConfigMap's `data`, `binaryData` and size.
pub(crate) fn validate_config_map(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = check_keys(obj, "data", errs);
    let binary = check_keys(obj, "binaryData", errs);
    let mut total = 0usize;
    for (k, v) in &data {
        match v.as_str() {
            Some(s) => total += s.len(),
            None => errs.push(FieldError::type_invalid(
                &Path::new("data").key(k),
                v,
                "string",
            )),
        }
        if binary.iter().any(|(b, _)| b == k) {
            errs.push(FieldError::invalid(
                &Path::new("data").key(k),
                k.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
    }
    for (k, v) in &binary {
        total += decoded_len("binaryData", k, v, errs);
        if data.iter().any(|(d, _)| d == k) {
            errs.push(FieldError::invalid(
                &Path::new("binaryData").key(k),
                k.as_str(),
                "duplicate of key present in data",
            ));
        }
    }
    shape::boolean(obj, "immutable", &Path::new(""), errs);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long(&Path::new(""), MAX_DATA_SIZE));
    }
}

/// Validates a Secret's `data` (base64), size, and the keys its `type`
/// requires.
pub(crate) fn validate_secret(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = check_keys(obj, "data", errs);
    let mut total = 0usize;
    for (k, v) in &data {
        total += decoded_len("data", k, v, errs);
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long(&Path::new("data"), MAX_DATA_SIZE));
    }
    shape::boolean(obj, "immutable", &Path::new(""), errs);
    let ty = shape::string(obj, "type", &Path::new(""), errs).unwrap_or("Opaque");
    let has = |key: &str| data.iter().any(|(k, _)| k.as_str() == key);
    let require = |key: &str, errs: &mut Vec<FieldError>| {
        if !has(key) {
            errs.push(FieldError::required(&Path::new("data").key(key), ""));
        }
    };
    match ty {
        "kubernetes.io/tls" => {
            require("tls.crt", errs);
            require("tls.key", errs);
        }
        "kubernetes.io/dockerconfigjson" => require(".dockerconfigjson", errs),
        "kubernetes.io/dockercfg" => require(".dockercfg", errs),
        "kubernetes.io/ssh-auth" => require("ssh-privatekey", errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required(&Path::new("data").key("username"), ""));
            errs.push(FieldError::required(&Path::new("data").key("password"), ""));
        }
        "kubernetes.io/service-account-token" => {
            let has_annotation = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !has_annotation {
                errs.push(FieldError::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        _ => {}
    }
}

/// Update rules shared by ConfigMap and Secret: `immutable: true` freezes
/// data and itself; a Secret's type never changes.
pub(crate) fn validate_config_update(
    kind: &str,
    new: &Value,
    old: &Value,
    errs: &mut Vec<FieldError>,
) {
    if kind == "Secret" {
        let t = |o: &Value| {
            o.get("type")
                .and_then(Value::as_str)
                .unwrap_or("Opaque")
                .to_string()
        };
        if t(new) != t(old) {
            errs.push(FieldError::invalid(
                &Path::new("type"),
                t(new),
                "field is immutable",
            ));
        }
    }
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            &Path::new("immutable"),
            "field is immutable when `immutable` is set",
        ));
    }
    let fields: &[&str] = if kind == "Secret" {
        &["data"]
    } else {
        &["data", "binaryData"]
    };
    for f in fields {
        let empty = Value::Object(Default::default());
        let norm = |v: Option<&Value>| match v {
            None | Some(Value::Null) => empty.clone(),
            Some(v) => v.clone(),
        };
        if norm(new.get(*f)) != norm(old.get(*f)) {
            errs.push(FieldError::forbidden(
                &Path::new(f),
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn config_map_keys_and_size() {
        let mut errs = Vec::new();
        validate_config_map(
            &json!({"data": {"ok.key": "v", "bad/key": "v", "dup": "x"}, "binaryData": {"dup": "eA=="}}),
            &mut errs,
        );
        let e = msgs(&errs);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
        assert_eq!(
            e[1],
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"
        );
        assert_eq!(
            e[2],
            "binaryData[dup]: Invalid value: \"dup\": duplicate of key present in data"
        );
        let mut errs = Vec::new();
        validate_config_map(
            &json!({"data": {"a": "x".repeat(MAX_DATA_SIZE + 1)}}),
            &mut errs,
        );
        assert_eq!(
            msgs(&errs),
            vec![": Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn secret_data_is_base64_and_typed() {
        let mut errs = Vec::new();
        validate_secret(
            &json!({"data": {"a": "aGVsbG8=", "b": "not base64!"}}),
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "data[b]");
        let mut errs = Vec::new();
        validate_secret(
            &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}}),
            &mut errs,
        );
        assert_eq!(msgs(&errs), vec!["data[tls.key]: Required value"]);
        let mut errs = Vec::new();
        validate_secret(
            &json!({"type": "kubernetes.io/dockerconfigjson"}),
            &mut errs,
        );
        assert_eq!(msgs(&errs), vec!["data[.dockerconfigjson]: Required value"]);
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_DATA_SIZE + 1]);
        let mut errs = Vec::new();
        validate_secret(&json!({"data": {"a": big}}), &mut errs);
        assert_eq!(
            msgs(&errs),
            vec!["data: Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn immutable_objects() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let mut errs = Vec::new();
        validate_config_update("ConfigMap", &old, &old, &mut errs);
        assert!(errs.is_empty());
        validate_config_update(
            "ConfigMap",
            &json!({"immutable": false, "data": {"a": "2"}}),
            &old,
            &mut errs,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let mut errs = Vec::new();
        validate_config_update(
            "ConfigMap",
            &json!({"data": {"a": "2"}}),
            &json!({"data": {"a": "1"}}),
            &mut errs,
        );
        assert!(errs.is_empty());
        let mut errs = Vec::new();
        validate_config_update(
            "Secret",
            &json!({"type": "kubernetes.io/tls"}),
            &json!({}),
            &mut errs,
        );
        assert_eq!(
            msgs(&errs),
            vec!["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
    }
}
