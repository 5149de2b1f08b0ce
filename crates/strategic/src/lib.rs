//! Strategic merge patch (`application/strategic-merge-patch+json`) with
//! upstream Kubernetes semantics, driven by the schemas' patch metadata.
//!
//! `kubectl apply`, `kubectl patch`, `kubectl edit` and controllers send
//! strategic merge patches for built-in kinds; the API server applies them
//! to the stored object with [`apply_patch`]. Only that direction exists
//! here (as upstream's `StrategicMergeMapPatch`): clients compute patches
//! themselves.
//!
//! How a field merges comes from the kind's [`Shapes`]
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`), so no
//! hand-kept table of merge keys can drift from the schemas:
//!
//! - maps merge recursively; `null` deletes a key; `$patch: replace`
//!   replaces the map with the rest of the patch map, `$patch: delete`
//!   empties it; `$retainKeys: [..]` drops the original's unlisted keys;
//! - lists with strategy `merge`: objects are matched by the merge key and
//!   merged (`{"<key>": v, "$patch": "delete"}` removes an item, an item
//!   `{"$patch": "replace"}` makes the patch list replace the list),
//!   scalars are united; `$deleteFromPrimitiveList/<field>` removes values;
//!   the result keeps the patch's order for the items it names, or
//!   `$setElementOrder/<field>`'s (see `order`);
//! - other lists, and fields of strategy `replace`, are replaced;
//! - untyped values ([`Shape::Untyped`](skiff_apimachinery::shape::Shape),
//!   undeclared fields) merge as JSON merge patch (RFC 7386): maps merged,
//!   lists replaced, directives still honoured.
//!
//! Directives never reach the result, nor do `null`s of the patch. Start
//! reading at [`apply_patch`], then `merge.rs`.

mod error;
mod merge;
mod order;

pub use error::PatchError;

use serde_json::Value;
use skiff_apimachinery::shape::{ShapeId, Shapes};

use crate::error::json_type;
use crate::merge::Merger;

/// How deep the original or the patch may nest. The merge recurses a few
/// frames per level, so this bounds its stack use: at this depth it still
/// fits a 2 MiB thread stack (tokio's worker default) in a debug build.
/// Real objects nest a few dozen levels, and serde_json's parser stops at
/// 128 anyway.
pub const MAX_DEPTH: usize = 256;

/// Applies the strategic merge patch `patch` to `original`, an object of
/// the kind whose root shape is `root` in `shapes`, and returns the
/// patched object. Neither input is changed.
///
/// Errors are the client's (malformed directives, list items without their
/// merge key, a patch that is not an object, nesting deeper than
/// [`MAX_DEPTH`]); the messages follow upstream's.
///
/// ```
/// use serde_json::json;
/// use skiff_apimachinery::shape::{Field, ListType, PatchStrategy, Shape, Shapes};
///
/// let mut shapes = Shapes::new();
/// let item = shapes.push(Shape::Untyped);
/// let list = shapes.push(Shape::List { items: item, list_type: ListType::Map(vec!["name".into()]) });
/// let containers = Field {
///     shape: list,
///     patch_strategy: PatchStrategy::parse("merge"),
///     patch_merge_key: Some("name".into()),
/// };
/// let spec = shapes.push(Shape::Map {
///     fields: vec![("containers".into(), containers)],
///     values: None,
///     atomic: false,
/// });
///
/// let original = json!({"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log"}]});
/// let patch = json!({"containers": [{"name": "web", "image": "nginx:2"}]});
/// let patched = skiff_strategic::apply_patch(&original, &patch, &shapes, spec)?;
/// assert_eq!(
///     patched,
///     json!({"containers": [{"name": "web", "image": "nginx:2"}, {"name": "log"}]})
/// );
/// # Ok::<(), skiff_strategic::PatchError>(())
/// ```
pub fn apply_patch(
    original: &Value,
    patch: &Value,
    shapes: &Shapes,
    root: ShapeId,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject {
            what: "patch",
            found: json_type(patch),
        });
    };
    let Value::Object(original) = original else {
        return Err(PatchError::NotAnObject {
            what: "original object",
            found: json_type(original),
        });
    };
    // Checked without recursion before anything recurses.
    if deeper_than(patch, MAX_DEPTH) || deeper_than(original, MAX_DEPTH) {
        return Err(PatchError::TooDeep { max: MAX_DEPTH });
    }
    let merger = Merger { shapes };
    let merged = merger.merge_map(original.clone(), patch, Some(root))?;
    Ok(Value::Object(merged))
}

/// Whether a map nests more than `max` maps/lists deep (iteratively).
fn deeper_than(map: &serde_json::Map<String, Value>, max: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = map.values().map(|v| (v, 2)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(m) => Box::new(m.values()),
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        if depth > max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}
