//! Validation of `metadata`, common to every kind: names, namespace,
//! labels, annotations, finalizers, owner references, and what may not
//! change on update.

use std::collections::BTreeMap;

use serde_json::Value;

use super::shape;
use crate::field_error::FieldError;
use crate::names::{self, NameRule, TOTAL_ANNOTATION_SIZE_LIMIT};
use crate::path::Path;

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `metadata.namespace` is required.
    Namespaced,
    /// `metadata.namespace` is forbidden.
    Cluster,
}

/// Finalizers upstream accepts without a `/` prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Validates `metadata` of a new object. `scope` `None` (unknown kind)
/// skips the namespace required/forbidden rule but still checks its syntax.
pub fn validate_object_meta(obj: &Value, scope: Option<Scope>, rule: NameRule) -> Vec<FieldError> {
    validate_meta(obj, scope, rule, true)
}

/// [`validate_object_meta`] as upstream's generic validation does it for
/// CustomResourceDefinitions and custom resources: finalizers need only be
/// qualified names (the built-in kinds also want a `/` or a standard name).
pub fn validate_generic_object_meta(
    obj: &Value,
    scope: Option<Scope>,
    rule: NameRule,
) -> Vec<FieldError> {
    validate_meta(obj, scope, rule, false)
}

fn validate_meta(
    obj: &Value,
    scope: Option<Scope>,
    rule: NameRule,
    kube_finalizers: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let at = Path::new("metadata");
    let meta = match shape::get(obj, "metadata") {
        None => &shape::EMPTY,
        Some(m) if m.is_object() => m,
        Some(m) => {
            errs.push(FieldError::type_invalid(&at, m, "object"));
            return errs;
        }
    };

    let generate_name = shape::string(meta, "generateName", &at, &mut errs).unwrap_or("");
    if !generate_name.is_empty() {
        for m in rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                &at.child("generateName"),
                generate_name,
                m,
            ));
        }
    }
    let name = shape::string(meta, "name", &at, &mut errs).unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            &at.child("name"),
            "name or generateName is required",
        ));
    } else {
        for m in rule.check(name, false) {
            errs.push(FieldError::invalid(&at.child("name"), name, m));
        }
    }

    let namespace = shape::string(meta, "namespace", &at, &mut errs).unwrap_or("");
    match scope {
        Some(Scope::Namespaced) if namespace.is_empty() => {
            errs.push(FieldError::required(&at.child("namespace"), ""));
        }
        Some(Scope::Cluster) if !namespace.is_empty() => {
            errs.push(FieldError::forbidden(
                &at.child("namespace"),
                "not allowed on this type",
            ));
        }
        _ if !namespace.is_empty() => {
            for m in names::dns1123_label(namespace) {
                errs.push(FieldError::invalid(&at.child("namespace"), namespace, m));
            }
        }
        _ => {}
    }

    shape::non_negative(meta, "generation", &at, &mut errs);
    let labels = shape::string_map(meta, "labels", &at, &mut errs);
    validate_labels(&labels, &at.child("labels"), &mut errs);
    validate_annotations(meta, &at, &mut errs);
    validate_finalizers(meta, &at, kube_finalizers, &mut errs);
    validate_owner_references(meta, &at, &mut errs);
    errs
}

/// Checks label keys (qualified names) and values, reporting at `at`
/// (upstream reports the map's path, not each key's).
pub fn validate_labels(labels: &[(&str, &str)], at: &Path, errs: &mut Vec<FieldError>) {
    for (k, v) in labels {
        for m in names::qualified_name(k) {
            errs.push(FieldError::invalid(at, *k, m));
        }
        for m in names::label_value(v) {
            errs.push(FieldError::invalid(at, *v, m));
        }
    }
}

/// Reads a `map[string]string` (labels, selectors) the way validators need
/// it for matching.
pub(crate) fn to_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn validate_annotations(meta: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    let path = at.child("annotations");
    let annotations = shape::string_map(meta, "annotations", at, errs);
    let mut total = 0usize;
    for (k, v) in &annotations {
        for m in names::qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(&path, *k, m));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(&path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn validate_finalizers(meta: &Value, at: &Path, kube_rule: bool, errs: &mut Vec<FieldError>) {
    let path = at.child("finalizers");
    let Some(items) = shape::array(meta, "finalizers", at, errs) else {
        return;
    };
    let mut has_orphan = false;
    let mut has_foreground = false;
    for (i, f) in items.iter().enumerate() {
        let Some(f) = f.as_str() else {
            errs.push(FieldError::type_invalid(&path.index(i), f, "string"));
            continue;
        };
        has_orphan |= f == "orphan";
        has_foreground |= f == "foregroundDeletion";
        let msgs = names::qualified_name(f);
        let bad = !msgs.is_empty();
        for m in msgs {
            errs.push(FieldError::invalid(&path, f, m));
        }
        if kube_rule && !bad && !f.contains('/') && !STANDARD_FINALIZERS.contains(&f) {
            errs.push(FieldError::invalid(
                &path,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    if has_orphan && has_foreground {
        errs.push(FieldError::invalid(
            &path,
            Value::Array(items.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

fn validate_owner_references(meta: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    let path = at.child("ownerReferences");
    let mut first_controller: Option<String> = None;
    for (_, r, item_path) in shape::objects(meta, "ownerReferences", at, errs) {
        let api_version = shape::string(r, "apiVersion", &item_path, errs).unwrap_or("");
        let kind = shape::string(r, "kind", &item_path, errs).unwrap_or("");
        let name = shape::string(r, "name", &item_path, errs).unwrap_or("");
        let uid = shape::string(r, "uid", &item_path, errs).unwrap_or("");
        let version = match api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => *v,
            [_, v] => *v,
            _ => "",
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("kind"),
                kind,
                "must not be empty",
            ));
        }
        if name.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("name"),
                name,
                "must not be empty",
            ));
        }
        if uid.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("uid"),
                uid,
                "must not be empty",
            ));
        }
        if (api_version == "v1" || api_version == "events.k8s.io/v1") && kind == "Event" {
            errs.push(FieldError::invalid(
                &path,
                r.clone(),
                format!("{api_version}, Kind=Event is disallowed from being an owner"),
            ));
        }
        if shape::boolean(r, "controller", &item_path, errs) == Some(true) {
            let this = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    &path,
                    meta.get("ownerReferences").cloned().unwrap_or(Value::Null),
                    format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"),
                )),
                None => first_controller = Some(this),
            }
        }
    }
}

/// Checks that identity fields of `metadata` did not change on update.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let at = Path::new("metadata");
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let n = new.get("metadata").and_then(|m| m.get(field));
        let o = old.get("metadata").and_then(|m| m.get(field));
        let n_val = n.cloned().unwrap_or(Value::Null);
        let o_val = o.cloned().unwrap_or(Value::Null);
        // An update that omits uid/creationTimestamp keeps the stored one
        // (the server fills them in), so only a different value is an error.
        let omitted = n_val.is_null() && matches!(field, "uid" | "creationTimestamp");
        if n_val != o_val && !omitted {
            let shown = if n_val.is_null() {
                Value::String(String::new())
            } else {
                n_val
            };
            errs.push(FieldError::invalid(
                &at.child(field),
                shown,
                "field is immutable",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn check(meta: Value, scope: Option<Scope>) -> Vec<String> {
        msgs(&validate_object_meta(
            &json!({ "metadata": meta }),
            scope,
            NameRule::Dns1123Subdomain,
        ))
    }

    #[test]
    fn name_required_unless_generate_name() {
        assert_eq!(
            check(json!({"namespace": "default"}), Some(Scope::Namespaced)),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        // generateName alone passes here; the server fills `name` before validating
        assert_eq!(
            check(json!({"generateName": "web-"}), None),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert!(check(json!({"generateName": "web-", "name": "web-abcde"}), None).is_empty());
        let e = check(json!({"generateName": "Web-", "name": "x"}), None);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with(
            "metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123 subdomain"
        ));
    }

    #[test]
    fn bad_name_message() {
        let e = check(json!({"name": "Foo"}), None);
        assert_eq!(
            e,
            vec![
                "metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
    }

    #[test]
    fn namespace_rules() {
        assert_eq!(
            check(json!({"name": "a"}), Some(Scope::Namespaced)),
            vec!["metadata.namespace: Required value"]
        );
        assert_eq!(
            check(json!({"name": "a", "namespace": "x"}), Some(Scope::Cluster)),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert!(
            check(
                json!({"name": "a", "namespace": "x"}),
                Some(Scope::Namespaced)
            )
            .is_empty()
        );
        assert_eq!(
            check(
                json!({"name": "a", "namespace": "X.y"}),
                Some(Scope::Namespaced)
            )
            .len(),
            1
        );
    }

    #[test]
    fn labels_and_annotations() {
        let e = check(
            json!({"name": "a", "labels": {"-bad": "ok", "good": "not ok"}}),
            None,
        );
        assert_eq!(e.len(), 2);
        assert!(
            e[0].starts_with("metadata.labels: Invalid value: \"-bad\": name part must consist")
        );
        assert!(
            e[1].starts_with("metadata.labels: Invalid value: \"not ok\": a valid label must be")
        );
        assert!(
            check(
                json!({"name": "a", "annotations": {"Example.com/Upper": "any value at all"}}),
                None
            )
            .is_empty()
        );
        let e = check(json!({"name": "a", "annotations": {"a b": "x"}}), None);
        assert_eq!(e.len(), 1);
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        assert_eq!(
            check(json!({"name": "a", "annotations": {"k": big}}), None),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        let e = check(json!({"name": "a", "labels": {"k": 1}}), None);
        assert_eq!(
            e,
            vec!["metadata.labels[k]: Invalid value: 1: expected string"]
        );
    }

    #[test]
    fn finalizers() {
        assert!(
            check(
                json!({"name": "a", "finalizers": ["kubernetes", "example.com/x"]}),
                None
            )
            .is_empty()
        );
        assert_eq!(
            check(json!({"name": "a", "finalizers": ["custom"]}), None),
            vec![
                "metadata.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );
        assert_eq!(
            check(
                json!({"name": "a", "finalizers": ["orphan", "foregroundDeletion"]}),
                None
            )
            .len(),
            1
        );
    }

    #[test]
    fn owner_references() {
        let e = check(
            json!({"name": "a", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "", "name": "x", "uid": ""}]}),
            None,
        );
        assert_eq!(
            e,
            vec![
                "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty"
            ]
        );
        let e = check(
            json!({"name": "a", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": true}]}),
            None,
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"));
        let e = check(
            json!({"name": "a", "ownerReferences": [{"apiVersion": "a/b/c", "kind": "K", "name": "x", "uid": "1"}]}),
            None,
        );
        assert_eq!(
            e,
            vec![
                "metadata.ownerReferences.apiVersion: Invalid value: \"a/b/c\": version must not be empty"
            ]
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        let e = msgs(&validate_object_meta(
            &json!({"metadata": "x"}),
            None,
            NameRule::Dns1123Subdomain,
        ));
        assert_eq!(e, vec!["metadata: Invalid value: \"x\": expected object"]);
        let e = check(json!({"name": 5}), None);
        assert_eq!(e[0], "metadata.name: Invalid value: 5: expected string");
    }

    #[test]
    fn identity_is_immutable() {
        let old = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u"}});
        assert!(validate_object_meta_update(&old, &old).is_empty());
        let new = json!({"metadata": {"name": "b", "namespace": "ns"}});
        assert_eq!(
            msgs(&validate_object_meta_update(&new, &old)),
            vec!["metadata.name: Invalid value: \"b\": field is immutable"]
        );
        let new = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "v"}});
        assert_eq!(validate_object_meta_update(&new, &old).len(), 1);
    }
}
