//! The set of fields an object sets (upstream `TypedValue.ToFieldSet`).
//!
//! This is what an applier owns after an apply: every leaf it sets, every
//! list item it lists (`k:`/`v:` members, hence `"."` on items with
//! fields), every key of a free-form map (labels, annotations, deduced
//! data), and fields set to `null` or `{}`. Declared struct fields that
//! hold non-empty maps are *not* members themselves — ownership flows
//! through their children — which is why `f:spec` never carries `"."` in
//! an applier's entry.

use serde_json::Value;
use skiff_apimachinery::shape::{ShapeId, Shapes};

use crate::error::InvalidObject;
use crate::path::{Path, PathElement};
use crate::schema::{Kind, Schema, Ty, item_element};
use crate::set::FieldSet;

/// The fields `obj` sets, tolerating malformed list items (they are
/// tracked by index) and duplicates. Use for live objects.
pub fn fields_of(obj: &Value, shapes: &Shapes, root: ShapeId) -> FieldSet {
    let mut w = Walker {
        schema: Schema { shapes },
        strict: false,
        set: FieldSet::new(),
        path: Vec::new(),
    };
    // Lenient walks never fail.
    let _ = w.walk(obj, Some(root));
    w.set
}

/// The fields `obj` sets, refusing list items without their keys, maps in
/// sets and duplicate items as upstream does for apply configurations.
pub fn try_fields_of(
    obj: &Value,
    shapes: &Shapes,
    root: ShapeId,
) -> Result<FieldSet, InvalidObject> {
    let mut w = Walker {
        schema: Schema { shapes },
        strict: true,
        set: FieldSet::new(),
        path: Vec::new(),
    };
    w.walk(obj, Some(root))?;
    Ok(w.set)
}

struct Walker<'s> {
    schema: Schema<'s>,
    strict: bool,
    set: FieldSet,
    path: Vec<PathElement>,
}

impl Walker<'_> {
    fn invalid(&self, message: String) -> InvalidObject {
        InvalidObject {
            path: Path(self.path.clone()).to_string(),
            message,
        }
    }

    fn walk(&mut self, v: &Value, ty: Ty) -> Result<(), InvalidObject> {
        match self.schema.kind(ty, v) {
            Kind::Leaf => {
                self.set.insert(&self.path);
                Ok(())
            }
            Kind::Map(shape) => {
                let Value::Object(map) = v else { return Ok(()) };
                for (name, child) in map {
                    let (child_ty, named) = self.schema.field(shape, name);
                    self.path.push(PathElement::Field(name.clone()));
                    let r = self.walk(child, child_ty);
                    let empty_map = matches!(child, Value::Object(m) if m.is_empty());
                    if child.is_null() || empty_map || !named {
                        self.set.insert(&self.path);
                    }
                    self.path.pop();
                    r?;
                }
                Ok(())
            }
            Kind::List { items, keys, set } => {
                let Value::Array(list) = v else { return Ok(()) };
                let mut seen = FieldSet::new();
                for (i, item) in list.iter().enumerate() {
                    let pe = match item_element(keys, set, item) {
                        Ok(pe) => pe,
                        Err(e) if self.strict => {
                            return Err(self.invalid(format!("element {i}: {e}")));
                        }
                        Err(_) => PathElement::Index(i as u64),
                    };
                    if self.strict {
                        if seen.has_member(&pe) {
                            return Err(self.invalid(format!("duplicate entries for key {pe}")));
                        }
                        seen.insert(std::slice::from_ref(&pe));
                    }
                    self.path.push(pe);
                    let r = self.walk(item, items);
                    self.set.insert(&self.path);
                    self.path.pop();
                    r?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{deployment_shapes, pod_like};
    use serde_json::json;

    #[test]
    fn apply_configuration_fields_match_upstream() {
        let (shapes, root) = deployment_shapes();
        let cfg = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
        });
        let set = try_fields_of(&cfg, &shapes, root).unwrap();
        assert_eq!(
            set.to_fields_json(),
            r#"{"f:apiVersion":{},"f:kind":{},"f:metadata":{"f:labels":{"f:app":{}},"f:name":{}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        );
    }

    #[test]
    fn sets_nulls_and_empty_maps() {
        let (shapes, root) = pod_like();
        let cfg = json!({"metadata": {"finalizers": ["b", "a"]}, "spec": {"nodeName": null, "extra": {}}});
        let set = try_fields_of(&cfg, &shapes, root).unwrap();
        assert_eq!(
            set.to_fields_json(),
            r#"{"f:metadata":{"f:finalizers":{"v:\"a\"":{},"v:\"b\"":{}}},"f:spec":{"f:extra":{},"f:nodeName":{}}}"#
        );
    }

    #[test]
    fn deduced_data_is_granular_for_maps_atomic_for_lists() {
        let mut shapes = Shapes::new();
        let root = shapes.push(skiff_apimachinery::shape::Shape::Untyped);
        let cfg = json!({"spec": {"a": {"b": 1}, "l": [1, 2]}});
        let set = try_fields_of(&cfg, &shapes, root).unwrap();
        assert_eq!(
            set.to_fields_json(),
            r#"{"f:spec":{".":{},"f:a":{".":{},"f:b":{}},"f:l":{}}}"#
        );
    }

    #[test]
    fn strict_walk_refuses_what_upstream_refuses() {
        let (shapes, root) = deployment_shapes();
        let missing = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = try_fields_of(&missing, &shapes, root).unwrap_err();
        assert_eq!(err.path, ".spec.template.spec.containers");
        assert!(err.message.contains("omits key field \"name\""), "{err}");
        let dup =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let err = try_fields_of(&dup, &shapes, root).unwrap_err();
        assert_eq!(err.message, r#"duplicate entries for key [name="a"]"#);
        // The lenient walk tracks the bad item by index instead.
        let set = fields_of(&missing, &shapes, root);
        assert!(set.to_fields_json().contains("i:0"));
    }

    #[test]
    fn ports_key_defaults_protocol() {
        let (shapes, root) = deployment_shapes();
        let cfg = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}}});
        let set = try_fields_of(&cfg, &shapes, root).unwrap();
        assert!(
            set.to_fields_json()
                .contains(r#"k:{\"containerPort\":80,\"protocol\":\"TCP\"}"#)
        );
    }
}
