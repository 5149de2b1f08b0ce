//! The shape of API objects as the merge algorithms see it.
//!
//! Strategic merge patch and server-side apply both need the same few facts
//! about every field: is it a scalar, a map with named fields, a free-form
//! map, or a list — and if a list, is it atomic, a set, or a map keyed by
//! some of its items' fields (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`), and how strategic merge treats it
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`). Those
//! facts come from the API's own OpenAPI schemas (built-in kinds and
//! CustomResourceDefinitions); `skiff-openapi` compiles them into a
//! [`Shapes`] arena so no algorithm walks JSON schemas per request and no
//! hand-typed list of merge keys can drift from the schemas.
//!
//! Recursive types (`JSONSchemaProps`) refer to their own [`ShapeId`], which
//! is why shapes live in an arena instead of a tree of boxes.

use std::collections::HashMap;

/// Index of a shape in its [`Shapes`].
pub type ShapeId = u32;

/// How server-side apply treats a list (`x-kubernetes-list-type`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole; one owner for the whole list (the default).
    #[default]
    Atomic,
    /// Scalars, each owned on its own (`v:<value>` in fieldsV1).
    Set,
    /// Objects identified by the values of these keys (`k:{...}`).
    Map(Vec<String>),
}

/// `x-kubernetes-patch-strategy` of a field (comma-separated upstream:
/// `merge,retainKeys`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatchStrategy {
    /// Lists are merged (by [`Field::patch_merge_key`] for lists of
    /// objects, by value for lists of scalars) instead of replaced.
    pub merge: bool,
    /// The field is replaced as a whole.
    pub replace: bool,
    /// A map whose keys absent from the patch are cleared (`$retainKeys`).
    pub retain_keys: bool,
}

impl PatchStrategy {
    /// Parses the extension's value (`"merge"`, `"retainKeys"`,
    /// `"merge,retainKeys"`, `"replace"`); unknown words are ignored.
    pub fn parse(value: &str) -> PatchStrategy {
        let mut strategy = PatchStrategy::default();
        for word in value.split(',').map(str::trim) {
            match word {
                "merge" => strategy.merge = true,
                "replace" => strategy.replace = true,
                "retainKeys" => strategy.retain_keys = true,
                _ => {}
            }
        }
        strategy
    }
}

/// A named field of a map, with the patch metadata its parent declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub shape: ShapeId,
    pub patch_strategy: PatchStrategy,
    /// `x-kubernetes-patch-merge-key`: identifies items of a merged list of
    /// objects.
    pub patch_merge_key: Option<String>,
}

impl Field {
    /// A field without patch metadata.
    pub fn plain(shape: ShapeId) -> Field {
        Field {
            shape,
            patch_strategy: PatchStrategy::default(),
            patch_merge_key: None,
        }
    }
}

/// One schema node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A string, number, boolean, int-or-string or quantity: replaced as a
    /// whole.
    Scalar,
    /// Free-form JSON (`RawExtension`, `x-kubernetes-preserve-unknown-fields`
    /// without properties): its structure is deduced from the value, as
    /// upstream's "deduced" type (maps granular, lists atomic).
    Untyped,
    /// A JSON object.
    Map {
        /// Declared fields, sorted by name.
        fields: Vec<(String, Field)>,
        /// The shape of any other key's value (`additionalProperties`), or
        /// `None` when other keys are not declared.
        values: Option<ShapeId>,
        /// `x-kubernetes-map-type: atomic`: replaced and owned as a whole.
        atomic: bool,
    },
    /// A JSON array.
    List { items: ShapeId, list_type: ListType },
}

impl Shape {
    /// The declared field `name` of a map, or `None` (not a map, or not
    /// declared: see [`Shape::Map::values`]).
    pub fn field(&self, name: &str) -> Option<&Field> {
        let Shape::Map { fields, .. } = self else {
            return None;
        };
        fields
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| &fields[i].1)
    }
}

/// An arena of shapes and the root shape of every kind.
#[derive(Clone, Debug, Default)]
pub struct Shapes {
    nodes: Vec<Shape>,
    /// By kind first, so a lookup (one per write) allocates nothing.
    roots: HashMap<String, Vec<(String, String, ShapeId)>>,
}

impl Shapes {
    pub fn new() -> Shapes {
        Shapes::default()
    }

    /// Adds a shape and returns its id. Map fields are sorted here.
    pub fn push(&mut self, shape: Shape) -> ShapeId {
        let id = ShapeId::try_from(self.nodes.len()).unwrap_or(ShapeId::MAX);
        self.nodes.push(Self::sorted(shape));
        id
    }

    /// Replaces a shape (to close recursive types: push a placeholder,
    /// build the children, then set it).
    pub fn set(&mut self, id: ShapeId, shape: Shape) {
        if let Some(slot) = self.nodes.get_mut(id as usize) {
            *slot = Self::sorted(shape);
        }
    }

    /// The shape with the id; an unknown id reads as [`Shape::Untyped`].
    pub fn get(&self, id: ShapeId) -> &Shape {
        self.nodes.get(id as usize).unwrap_or(&Shape::Untyped)
    }

    /// Registers the root shape of a kind.
    pub fn add_root(&mut self, group: &str, version: &str, kind: &str, id: ShapeId) {
        let roots = self.roots.entry(kind.to_owned()).or_default();
        roots.retain(|(g, v, _)| g != group || v != version);
        roots.push((group.to_owned(), version.to_owned(), id));
    }

    /// The root shape of a kind (`group` is `""` for core).
    pub fn root(&self, group: &str, version: &str, kind: &str) -> Option<ShapeId> {
        self.roots
            .get(kind)?
            .iter()
            .find(|(g, v, _)| g == group && v == version)
            .map(|(_, _, id)| *id)
    }

    fn sorted(mut shape: Shape) -> Shape {
        if let Shape::Map { fields, .. } = &mut shape {
            fields.sort_by(|a, b| a.0.cmp(&b.0));
        }
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_like_upstream() {
        let s = PatchStrategy::parse("merge,retainKeys");
        assert!(s.merge && s.retain_keys && !s.replace);
        assert_eq!(PatchStrategy::parse(""), PatchStrategy::default());
    }

    #[test]
    fn recursive_shapes_close_through_set() {
        let mut shapes = Shapes::new();
        let node = shapes.push(Shape::Untyped);
        let items = shapes.push(Shape::List {
            items: node,
            list_type: ListType::Atomic,
        });
        shapes.set(
            node,
            Shape::Map {
                fields: vec![
                    ("z".into(), Field::plain(items)),
                    ("a".into(), Field::plain(node)),
                ],
                values: None,
                atomic: false,
            },
        );
        shapes.add_root("g", "v1", "K", node);
        let root = shapes.root("g", "v1", "K").expect("root");
        let field = shapes.get(root).field("a").expect("declared");
        assert_eq!(field.shape, node);
        assert!(shapes.get(root).field("missing").is_none());
        assert_eq!(shapes.get(9999), &Shape::Untyped);
    }
}
