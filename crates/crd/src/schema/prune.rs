//! Dropping fields the schema does not specify, as upstream does before
//! storing a custom object (and reports as `unknown field "spec.foo"` for
//! `fieldValidation=Warn|Strict`).
//!
//! Rules (upstream's): at the resource root, and in every
//! `x-kubernetes-embedded-resource`, `apiVersion` and `kind` (strings) and
//! `metadata` (an object) are kept; under
//! `x-kubernetes-preserve-unknown-fields` unknown fields are kept, but
//! fields that *are* specified are still pruned inside; a value with no
//! schema at all (e.g. under `additionalProperties: true`) keeps its
//! scalars but loses every object field. Recursion follows the schema,
//! whose depth is capped at compile time.

use serde_json::Value;
use skiff_apimachinery::Path;

use super::structural::{AdditionalProperties, Structural};

impl Structural {
    /// Removes unknown fields from a whole custom object in place and
    /// returns their paths (`spec.foo`, `spec.items[0].bar`) in the order
    /// found.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut removed = Vec::new();
        prune_node(obj, Some(self), true, &Path::new(""), &mut removed);
        removed
    }

    /// Like [`Structural::prune`] for a value that is not a resource root
    /// (a `default`, a nested part of an object).
    pub fn prune_value(&self, v: &mut Value) -> Vec<String> {
        let mut removed = Vec::new();
        prune_node(v, Some(self), false, &Path::new(""), &mut removed);
        removed
    }
}

/// Whether `k` of an embedded resource (or the root) is kept regardless of
/// the schema.
fn is_type_meta(k: &str, v: &Value) -> bool {
    match k {
        "apiVersion" | "kind" => v.is_string(),
        "metadata" => v.is_object(),
        _ => false,
    }
}

fn prune_node(
    v: &mut Value,
    s: Option<&Structural>,
    resource_root: bool,
    path: &Path,
    removed: &mut Vec<String>,
) {
    match v {
        Value::Object(m) => {
            let Some(s) = s else {
                for k in m.keys() {
                    removed.push(path.child(k).to_string());
                }
                m.clear();
                return;
            };
            let embedded = resource_root || s.embedded_resource;
            let mut drop = Vec::new();
            for (k, child) in m.iter_mut() {
                if embedded && is_type_meta(k, child) {
                    continue;
                }
                let at = path.child(k);
                if let Some(p) = s.properties.get(k) {
                    prune_node(child, Some(p), false, &at, removed);
                } else if let Some(ap) = &s.additional_properties {
                    let sub = match ap {
                        AdditionalProperties::Schema(x) => Some(&**x),
                        AdditionalProperties::Allows(_) => None,
                    };
                    if sub.is_some() || !s.preserve_unknown_fields {
                        prune_node(child, sub, false, &at, removed);
                    }
                } else if !s.preserve_unknown_fields {
                    removed.push(at.to_string());
                    drop.push(k.clone());
                }
            }
            for k in drop {
                m.remove(&k);
            }
        }
        Value::Array(items) => {
            let item_schema = match s {
                None => None,
                Some(s) => match s.items.as_deref() {
                    Some(i) => Some(i),
                    // unknown items under preserve-unknown-fields are kept
                    None if s.preserve_unknown_fields => return,
                    None => None,
                },
            };
            for (i, it) in items.iter_mut().enumerate() {
                prune_node(it, item_schema, false, &path.index(i), removed);
            }
        }
        _ => {}
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

    #[test]
    fn drops_unknown_and_keeps_type_meta() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "replicas": {"type": "integer"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }}}}),
        );
        let mut o = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x", "foo": 1},
            "spec": {"replicas": 1, "foo": 2, "items": [{"name": "a", "bar": 3}]}, "extra": true});
        let removed = s.prune(&mut o);
        assert_eq!(removed, vec!["extra", "spec.foo", "spec.items[0].bar"]);
        assert_eq!(
            o,
            json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x", "foo": 1},
                "spec": {"replicas": 1, "items": [{"name": "a"}]}})
        );
    }

    #[test]
    fn preserve_unknown_fields_keeps_but_prunes_known() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}}}}),
        );
        let mut o = json!({"spec": {"free": {"deep": [1, {"x": 1}]}, "known": {"a": "x", "b": 1}}});
        let removed = s.prune(&mut o);
        assert_eq!(removed, vec!["spec.known.b"]);
        assert_eq!(
            o,
            json!({"spec": {"free": {"deep": [1, {"x": 1}]}, "known": {"a": "x"}}})
        );
    }

    #[test]
    fn embedded_resources_keep_type_meta() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "properties": {"spec": {"type": "object", "properties": {}}}}}}}}),
        );
        let mut o = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"x": 1}, "other": 2}}});
        let removed = s.prune(&mut o);
        assert_eq!(removed, vec!["spec.template.other", "spec.template.spec.x"]);
    }

    #[test]
    fn maps_keep_keys_and_prune_values() {
        let s = schema(
            json!({"type": "object", "properties": {"m": {"type": "object",
            "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}}}}}),
        );
        let mut o = json!({"m": {"k1": {"a": "x", "b": 1}, "k2": {}}});
        assert_eq!(s.prune(&mut o), vec!["m.k1.b"]);
        assert_eq!(o, json!({"m": {"k1": {"a": "x"}, "k2": {}}}));
    }
}
