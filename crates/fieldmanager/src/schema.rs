//! How the walkers see a value through its [`Shapes`]: as a leaf, a
//! granular map, or a granular list (set or list-map).
//!
//! Anything without a declared shape (undeclared fields, `Untyped`, unknown
//! ids) is *deduced* as upstream does: maps are granular, lists atomic.
//! When a value's JSON kind does not match its declared shape (a string
//! where a map is declared), it is treated as a leaf instead of failing:
//! validation is the API server's job, ownership must never crash on it.

use serde_json::{Map, Value};
use skiff_apimachinery::shape::{ListType, Shape, ShapeId, Shapes};

use crate::path::PathElement;

/// The declared type of a position: a shape id, or `None` when deduced.
pub(crate) type Ty = Option<ShapeId>;

/// How a value at a position is walked.
pub(crate) enum Kind<'s> {
    /// Owned as a whole: scalars, null, atomic maps and lists, deduced lists.
    Leaf,
    /// A map whose keys are owned one by one; `shape` has the declared
    /// fields (None when deduced).
    Map(Option<&'s Shape>),
    /// A set (`keys` empty) or list-map of items of type `items`.
    List {
        items: Ty,
        keys: &'s [String],
        set: bool,
    },
}

#[derive(Clone, Copy)]
pub(crate) struct Schema<'s> {
    pub shapes: &'s Shapes,
}

impl<'s> Schema<'s> {
    fn shape(&self, ty: Ty) -> Option<&'s Shape> {
        ty.map(|id| self.shapes.get(id))
    }

    /// The walk kind of `v` at a position of type `ty`.
    pub fn kind(&self, ty: Ty, v: &Value) -> Kind<'s> {
        match (self.shape(ty), v) {
            (None | Some(Shape::Untyped), Value::Object(_)) => Kind::Map(None),
            (Some(shape @ Shape::Map { atomic: false, .. }), Value::Object(_)) => {
                Kind::Map(Some(shape))
            }
            (
                Some(Shape::List {
                    items,
                    list_type: ListType::Map(keys),
                }),
                Value::Array(_),
            ) => Kind::List {
                items: Some(*items),
                keys,
                set: false,
            },
            (
                Some(Shape::List {
                    items,
                    list_type: ListType::Set,
                }),
                Value::Array(_),
            ) => Kind::List {
                items: Some(*items),
                keys: &[],
                set: true,
            },
            _ => Kind::Leaf,
        }
    }

    /// The type of field `name` of a map, and whether it is a *declared*
    /// field (upstream "named field": owned only through its children).
    pub fn field(&self, map: Option<&'s Shape>, name: &str) -> (Ty, bool) {
        match map {
            Some(shape @ Shape::Map { values, .. }) => match shape.field(name) {
                Some(f) => (Some(f.shape), true),
                None => (*values, false),
            },
            _ => (None, false),
        }
    }

    /// The type reached by one element from a node of type `ty` (for walks
    /// over sets rather than values).
    pub fn child_ty(&self, ty: Ty, pe: &PathElement) -> Ty {
        match (self.shape(ty), pe) {
            (Some(shape @ Shape::Map { .. }), PathElement::Field(name)) => {
                self.field(Some(shape), name).0
            }
            (
                Some(Shape::List { items, .. }),
                PathElement::Key(_) | PathElement::Value(_) | PathElement::Index(_),
            ) => Some(*items),
            _ => None,
        }
    }

    /// Whether `name` is a declared field of the map type `ty`.
    pub fn is_named_field(&self, ty: Ty, name: &str) -> bool {
        matches!(self.shape(ty), Some(s @ Shape::Map { .. }) if s.field(name).is_some())
    }
}

/// The path element of a list item: `k:{...}` for list-maps, `v:` for sets.
pub(crate) fn item_element(
    keys: &[String],
    set: bool,
    item: &Value,
) -> Result<PathElement, String> {
    if set {
        return match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".to_owned())
            }
            Value::Array(_) => {
                Err("not supported: associative list with lists as elements".to_owned())
            }
            v => Ok(PathElement::Value(v.clone())),
        };
    }
    let map: &Map<String, Value> = match item {
        Value::Null => {
            return Err("associative list with keys may not have a null element".to_owned());
        }
        Value::Object(m) => m,
        _ => return Err("associative list with keys may not have non-map elements".to_owned()),
    };
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        match map.get(key) {
            Some(v) => fields.push((key.clone(), v.clone())),
            None => match key_default(key) {
                Some(v) => fields.push((key.clone(), v)),
                None => {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                    ));
                }
            },
        }
    }
    Ok(PathElement::key(fields))
}

/// Defaults of list-map key fields. Upstream reads them from the schema
/// (`default` of the key property); [`Shapes`] does not carry defaults yet,
/// and the only defaulted key in the built-in API is `protocol` (ports of
/// containers, services and endpoints, all defaulting to TCP).
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".to_owned()))
}
