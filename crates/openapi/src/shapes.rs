//! Compiles the documents' schemas into the [`Shapes`] arena strategic
//! merge patch and server-side apply walk.
//!
//! The list semantics follow upstream's conversion of OpenAPI to
//! structured-merge-diff types: `x-kubernetes-list-type` when present;
//! otherwise a list with `x-kubernetes-patch-strategy: merge` is
//! associative (keyed by its `x-kubernetes-patch-merge-key`, or a set of
//! scalars without one), and anything else is atomic.

use crate::definitions::{OBJECT_META, REF_PREFIX};
use serde_json::{Map, Value};
use skiff_apimachinery::shape::{Field, ListType, PatchStrategy, Shape, ShapeId, Shapes};
use std::collections::{HashMap, HashSet};

/// A kind whose root shape to register.
pub(crate) struct ShapeRoot<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub definition: &'a str,
}

/// Compiles every root (and what it refers to) from the v2-form
/// `definitions`; `custom` names the structural (custom resource) ones.
pub(crate) fn compile<'a>(
    definitions: &Map<String, Value>,
    custom: &HashSet<String>,
    roots: impl IntoIterator<Item = ShapeRoot<'a>>,
) -> Shapes {
    let mut compiler = Compiler {
        definitions,
        custom,
        shapes: Shapes::new(),
        resolved: HashMap::new(),
        scalar: None,
        untyped: None,
    };
    for root in roots {
        let id = compiler.definition(root.definition);
        compiler
            .shapes
            .add_root(root.group, root.version, root.kind, id);
    }
    compiler.shapes
}

struct Compiler<'a> {
    definitions: &'a Map<String, Value>,
    custom: &'a HashSet<String>,
    shapes: Shapes,
    resolved: HashMap<&'a str, ShapeId>,
    scalar: Option<ShapeId>,
    untyped: Option<ShapeId>,
}

impl<'a> Compiler<'a> {
    /// The one shared scalar / untyped node (they carry no data).
    fn shared(&mut self, shape: Shape) -> ShapeId {
        let slot = match shape {
            Shape::Scalar => &mut self.scalar,
            _ => &mut self.untyped,
        };
        if let Some(id) = slot {
            return *id;
        }
        let id = self.shapes.push(shape);
        match self.shapes.get(id) {
            Shape::Scalar => self.scalar = Some(id),
            _ => self.untyped = Some(id),
        }
        id
    }

    /// A named definition, compiled once (recursive types refer to it).
    fn definition(&mut self, name: &str) -> ShapeId {
        let definitions = self.definitions;
        let Some((name, schema)) = definitions.get_key_value(name) else {
            return self.shared(Shape::Untyped);
        };
        if let Some(id) = self.resolved.get(name.as_str()) {
            return *id;
        }
        let id = self.shapes.push(Shape::Untyped);
        self.resolved.insert(name.as_str(), id);
        let structural = self.custom.contains(name.as_str());
        let shape = self.shape(schema, structural);
        self.shapes.set(id, shape);
        id
    }

    fn id(&mut self, schema: &'a Value, structural: bool) -> ShapeId {
        if let Some(name) = reference(schema) {
            return self.definition(name);
        }
        match self.shape(schema, structural) {
            shape @ (Shape::Scalar | Shape::Untyped) => self.shared(shape),
            shape => self.shapes.push(shape),
        }
    }

    fn shape(&mut self, schema: &'a Value, structural: bool) -> Shape {
        let Value::Object(s) = schema else {
            return Shape::Untyped;
        };
        if let Some(name) = reference(schema) {
            let id = self.definition(name);
            return self.shapes.get(id).clone();
        }
        let flag = |key: &str| s.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("x-kubernetes-int-or-string") {
            return Shape::Scalar;
        }
        let preserve = flag("x-kubernetes-preserve-unknown-fields");
        let embedded = flag("x-kubernetes-embedded-resource");
        let ty = s.get("type").and_then(Value::as_str);
        if let Some(items) = s.get("items").filter(|i| i.is_object()) {
            let items = self.id(items, structural);
            return Shape::List {
                items,
                list_type: list_type(s),
            };
        }
        let properties = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        if properties.is_none() && additional.is_none() && !embedded {
            if ty != Some("object") {
                return if ty.is_some() {
                    Shape::Scalar
                } else {
                    Shape::Untyped
                };
            }
            if preserve || !structural {
                return Shape::Untyped;
            }
        }
        let mut fields = Vec::new();
        for (name, property) in properties.into_iter().flatten() {
            if embedded && name == "metadata" {
                continue;
            }
            let shape = self.id(property, structural);
            let patch_strategy = property
                .get("x-kubernetes-patch-strategy")
                .and_then(Value::as_str)
                .map(PatchStrategy::parse)
                .unwrap_or_default();
            let patch_merge_key = property
                .get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str)
                .map(str::to_owned);
            fields.push((
                name.clone(),
                Field {
                    shape,
                    patch_strategy,
                    patch_merge_key,
                },
            ));
        }
        if embedded {
            let meta = self.definition(OBJECT_META);
            fields.push(("metadata".into(), Field::plain(meta)));
            for name in ["apiVersion", "kind"] {
                if !fields.iter().any(|(n, _)| n == name) {
                    let scalar = self.shared(Shape::Scalar);
                    fields.push((name.into(), Field::plain(scalar)));
                }
            }
        }
        let values = match additional {
            _ if preserve => Some(self.shared(Shape::Untyped)),
            Some(Value::Bool(true)) => Some(self.shared(Shape::Untyped)),
            Some(schema @ Value::Object(_)) => Some(self.id(schema, structural)),
            _ => None,
        };
        Shape::Map {
            fields,
            values,
            atomic: s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"),
        }
    }
}

/// How a list schema's items are identified, as upstream's schema
/// conversion decides it.
fn list_type(schema: &Map<String, Value>) -> ListType {
    let keys = |name: &str| -> Option<Vec<String>> {
        let keys: Vec<String> = schema
            .get(name)?
            .as_array()?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        (!keys.is_empty()).then_some(keys)
    };
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => return ListType::Set,
        Some("map") => {
            return keys("x-kubernetes-list-map-keys").map_or(ListType::Atomic, ListType::Map);
        }
        Some(_) => return ListType::Atomic,
        None => {}
    }
    let strategy = schema
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .map(PatchStrategy::parse)
        .unwrap_or_default();
    if !strategy.merge {
        return ListType::Atomic;
    }
    match schema
        .get("x-kubernetes-patch-merge-key")
        .and_then(Value::as_str)
    {
        Some(key) => ListType::Map(vec![key.to_owned()]),
        None => ListType::Set,
    }
}

/// The definition a schema's `$ref` names.
fn reference(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(REF_PREFIX)
}

#[cfg(test)]
mod tests {
    use crate::builtin;
    use skiff_apimachinery::shape::{ListType, Shape, Shapes};

    fn walk<'s>(shapes: &'s Shapes, root: u32, path: &[&str]) -> &'s Shape {
        let mut id = root;
        for name in path {
            id = match shapes.get(id) {
                Shape::List { items, .. } if *name == "[]" => *items,
                shape => shape.field(name).expect(name).shape,
            };
        }
        shapes.get(id)
    }

    #[test]
    fn builtin_kinds_carry_upstream_merge_metadata() {
        let api = builtin().build().expect("build");
        let shapes = api.shapes();
        let deploy = shapes.root("apps", "v1", "Deployment").expect("deployment");
        let template_spec = ["spec", "template", "spec"];
        let pod_spec = shapes.get(deploy);
        assert!(matches!(pod_spec, Shape::Map { .. }));
        let containers = walk(
            shapes,
            deploy,
            &[&template_spec[..], &["containers"]].concat(),
        );
        assert!(matches!(
            containers,
            Shape::List { list_type: ListType::Map(keys), .. } if keys == &["name"]
        ));
        let spec = walk(shapes, deploy, &template_spec);
        let field = spec.field("containers").expect("containers");
        assert!(field.patch_strategy.merge);
        assert_eq!(field.patch_merge_key.as_deref(), Some("name"));
        let strategy = walk(shapes, deploy, &["spec"])
            .field("strategy")
            .expect("strategy");
        assert!(strategy.patch_strategy.retain_keys);
        let finalizers = walk(shapes, deploy, &["metadata", "finalizers"]);
        assert!(matches!(
            finalizers,
            Shape::List {
                list_type: ListType::Set,
                ..
            }
        ));
        let selector = walk(shapes, deploy, &["spec", "selector"]);
        assert!(matches!(selector, Shape::Map { atomic: true, .. }));
        let labels = walk(shapes, deploy, &["metadata", "labels"]);
        assert!(matches!(
            labels,
            Shape::Map {
                values: Some(_),
                ..
            }
        ));
        let image = walk(
            shapes,
            deploy,
            &[&template_spec[..], &["containers", "[]", "image"]].concat(),
        );
        assert_eq!(image, &Shape::Scalar);
        let args = walk(
            shapes,
            deploy,
            &[&template_spec[..], &["containers", "[]", "args"]].concat(),
        );
        assert!(matches!(
            args,
            Shape::List {
                list_type: ListType::Atomic,
                ..
            }
        ));
    }
}
