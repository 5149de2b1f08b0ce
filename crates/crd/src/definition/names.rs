//! `spec.names` (and `status.acceptedNames`): the syntax upstream demands
//! of plural, singular, short names, categories, kind and listKind. They
//! become URL segments and `kubectl` arguments, hence DNS-1035 labels;
//! kinds may be CamelCase but must otherwise be labels too.

use serde_json::Value;
use skiff_apimachinery::{FieldError, Path, names};

fn label_errors(value: &str, path: &Path, prefix: &str, lower: bool, errs: &mut Vec<FieldError>) {
    if value.is_empty() {
        return;
    }
    let checked = if lower {
        value.to_lowercase()
    } else {
        value.to_string()
    };
    let problems = names::dns1035_label(&checked);
    if !problems.is_empty() {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("{prefix}{}", problems.join(",")),
        ));
    }
}

fn str_at<'a>(names: &'a Value, key: &str) -> &'a str {
    names.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Upstream's `ValidateCustomResourceDefinitionNames` for the names object
/// at `path` (`spec.names` or `status.acceptedNames`).
pub fn validate_names(names: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !names.is_object() {
        if !names.is_null() {
            errs.push(FieldError::type_invalid(path, names, "object"));
        }
        return errs;
    }
    label_errors(
        str_at(names, "plural"),
        &path.child("plural"),
        "",
        false,
        &mut errs,
    );
    label_errors(
        str_at(names, "singular"),
        &path.child("singular"),
        "",
        false,
        &mut errs,
    );
    let mixed = "may have mixed case, but should otherwise match: ";
    let kind = str_at(names, "kind");
    let list_kind = str_at(names, "listKind");
    label_errors(kind, &path.child("kind"), mixed, true, &mut errs);
    label_errors(list_kind, &path.child("listKind"), mixed, true, &mut errs);
    for (key, _) in [("shortNames", ()), ("categories", ())] {
        if let Some(list) = names.get(key).and_then(Value::as_array) {
            for (i, v) in list.iter().enumerate() {
                match v.as_str() {
                    Some(s) => {
                        let problems = names::dns1035_label(s);
                        if !problems.is_empty() {
                            errs.push(FieldError::invalid(
                                &path.child(key).index(i),
                                s,
                                problems.join(","),
                            ));
                        }
                    }
                    None => errs.push(FieldError::type_invalid(
                        &path.child(key).index(i),
                        v,
                        "string",
                    )),
                }
            }
        }
    }
    if !kind.is_empty() && kind == list_kind {
        errs.push(FieldError::invalid(
            &path.child("listKind"),
            list_kind,
            "kind and listKind may not be the same",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_messages() {
        let errs = validate_names(
            &json!({"plural": "Foos", "singular": "foo", "kind": "Foo", "listKind": "Foo", "shortNames": ["f_"]}),
            &Path::new("spec.names"),
        );
        let m: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(m[0].starts_with("spec.names.plural: Invalid value: \"Foos\": a DNS-1035 label must consist of lower case"));
        assert!(
            m[1].starts_with("spec.names.shortNames[0]: Invalid value: \"f_\": a DNS-1035 label")
        );
        assert_eq!(
            m[2],
            "spec.names.listKind: Invalid value: \"Foo\": kind and listKind may not be the same"
        );
        let errs = validate_names(&json!({"kind": "My Kind"}), &Path::new("spec.names"));
        assert!(errs[0].to_string().starts_with(
            "spec.names.kind: Invalid value: \"My Kind\": may have mixed case, but should otherwise match: a DNS-1035 label"
        ));
        assert!(validate_names(
            &json!({"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList", "shortNames": ["ct"], "categories": ["all"]}),
            &Path::new("spec.names")
        )
        .is_empty());
    }
}
