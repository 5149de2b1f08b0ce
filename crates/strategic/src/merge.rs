//! The merge itself: a patch map walked against the original map and the
//! schema, one field at a time (upstream's `mergeMap` / `mergeSlice`).

use std::collections::HashSet;

use serde_json::{Map, Value};
use skiff_apimachinery::shape::{PatchStrategy, Shape, ShapeId, Shapes};

use crate::error::{PatchError, go_fmt, go_type};
use crate::order::{Ident, idents, normalize};

/// `$patch`: `replace`, `merge` or `delete` the map (or list item) it is in.
pub(crate) const PATCH: &str = "$patch";
/// `$retainKeys`: the only keys the map keeps.
const RETAIN_KEYS: &str = "$retainKeys";
/// `$setElementOrder/<field>`: the order of the merged list `<field>`.
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
/// `$deleteFromPrimitiveList/<field>`: values removed from list `<field>`.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// What the schema says about one value: its shape (`None`: untyped, merged
/// as JSON merge patch) and the patch metadata of the field holding it.
#[derive(Clone, Copy)]
struct Slot<'s> {
    shape: Option<ShapeId>,
    strategy: PatchStrategy,
    merge_key: Option<&'s str>,
}

impl Slot<'_> {
    fn untyped() -> Self {
        Slot {
            shape: None,
            strategy: PatchStrategy::default(),
            merge_key: None,
        }
    }

    fn merges_lists(&self) -> bool {
        self.strategy.merge && !self.strategy.replace
    }
}

pub(crate) struct Merger<'s> {
    pub(crate) shapes: &'s Shapes,
}

impl<'s> Merger<'s> {
    /// The slot of field `name` of a map with shape `parent`.
    fn field(&self, parent: Option<ShapeId>, name: &str) -> Slot<'s> {
        let Some(id) = parent else {
            return Slot::untyped();
        };
        let shape = self.shapes.get(id);
        let Shape::Map { values, .. } = shape else {
            return Slot::untyped();
        };
        match shape.field(name) {
            Some(f) => Slot {
                shape: Some(f.shape),
                strategy: f.patch_strategy,
                merge_key: f.patch_merge_key.as_deref(),
            },
            None => Slot {
                shape: *values,
                ..Slot::untyped()
            },
        }
    }

    /// The shape of the items of a list with shape `list`.
    fn items(&self, list: Option<ShapeId>) -> Option<ShapeId> {
        match list.map(|id| self.shapes.get(id)) {
            Some(Shape::List { items, .. }) => Some(*items),
            _ => None,
        }
    }

    /// Applies `patch` to `original` (a map with shape `shape`).
    pub(crate) fn merge_map(
        &self,
        original: Map<String, Value>,
        patch: &Map<String, Value>,
        shape: Option<ShapeId>,
    ) -> Result<Map<String, Value>, PatchError> {
        match patch.get(PATCH) {
            None => self.merge_fields(original, patch, shape),
            Some(Value::String(d)) if d == "merge" => self.merge_fields(original, patch, shape),
            // The rest of the patch map, directives applied, replaces the map.
            Some(Value::String(d)) if d == "replace" => self.merge_fields(Map::new(), patch, shape),
            // Upstream leaves an empty map (the key stays).
            Some(Value::String(d)) if d == "delete" => Ok(Map::new()),
            Some(other) => Err(bad_patch_type(other, patch)),
        }
    }

    /// `merge_map` once `$patch` is dealt with (it is skipped here).
    fn merge_fields(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        shape: Option<ShapeId>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            retain_keys(&mut original, patch, retain)?;
        }

        // Lists with `$setElementOrder` are merged and ordered first.
        let mut ordered: HashSet<&str> = HashSet::new();
        for (key, order) in patch {
            let Some(rest) = key.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let name = rest
                .strip_prefix('/')
                .ok_or(PatchError::BadSetElementOrder)?;
            let order = order.as_array().ok_or(PatchError::BadSetElementOrder)?;
            if self.merge_ordered(&mut original, patch, name, order, shape)? {
                ordered.insert(name);
            }
        }

        let mut deletions = Vec::new();
        let mut removed: HashSet<&str> = HashSet::new();
        for (key, patch_value) in patch {
            if key == PATCH
                || key == RETAIN_KEYS
                || key.starts_with(SET_ELEMENT_ORDER)
                || ordered.contains(key.as_str())
            {
                continue;
            }
            if let Some(rest) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let name = rest.strip_prefix('/').ok_or(PatchError::BadPrimitiveList)?;
                let values = patch_value.as_array().ok_or(PatchError::BadPrimitiveList)?;
                deletions.push((name, values));
                continue;
            }
            if patch_value.is_null() {
                removed.insert(key);
                continue;
            }
            let slot = self.field(shape, key);
            let current = original.get_mut(key).map(std::mem::take);
            let merged = match (current, patch_value) {
                (Some(Value::Object(o)), Value::Object(p)) if !slot.strategy.replace => {
                    Value::Object(self.merge_map(o, p, slot.shape)?)
                }
                (Some(Value::Array(o)), Value::Array(p)) => {
                    Value::Array(self.merge_list_field(o, p, slot)?)
                }
                // Absent, of another type, a scalar, or replaced as a whole.
                (_, p) => self.clean(p, slot)?,
            };
            original.insert(key.clone(), merged);
        }

        if !removed.is_empty() {
            // One `retain` rather than `remove`s: linear, and it keeps the
            // other keys' order when serde_json preserves it.
            original.retain(|k, _| !removed.contains(k.as_str()));
        }
        // After the merge, so a value both added and deleted ends up deleted.
        for (name, values) in deletions {
            if let Some(Value::Array(list)) = original.get_mut(name) {
                let gone: HashSet<Ident> = values.iter().map(Ident::of).collect();
                list.retain(|v| !gone.contains(&Ident::of(v)));
            }
        }
        Ok(original)
    }

    /// Merges list `name` (in the original and/or the patch) and orders it
    /// by `$setElementOrder/name`. Returns whether there was a list.
    fn merge_ordered(
        &self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        name: &str,
        order: &[Value],
        shape: Option<ShapeId>,
    ) -> Result<bool, PatchError> {
        let slot = self.field(shape, name);
        let current = match original.get_mut(name) {
            None => None,
            Some(Value::Array(list)) => Some(std::mem::take(list)),
            Some(other) => return Err(not_a_list(other)),
        };
        let patch_list = match patch.get(name) {
            None => None,
            Some(Value::Array(list)) => Some(list.as_slice()),
            Some(other) => return Err(not_a_list(other)),
        };
        validate_order(patch_list.unwrap_or_default(), order, slot.merge_key)?;

        let key = slot.merge_key;
        let server_order = match &current {
            Some(list) => idents(list, key)?,
            None => Vec::new(),
        };
        let merged = match (current, patch_list) {
            (None, None) => return Ok(false),
            (Some(list), None) => list,
            (None, Some(p)) => self.clean_list(p, slot)?,
            (Some(list), Some(p)) => self.merge_list_field(list, p, slot)?,
        };
        let patch_order = idents(order, key)?;
        let ordered = normalize(merged, &patch_order, &server_order, key)?;
        original.insert(name.to_owned(), Value::Array(ordered));
        Ok(true)
    }

    /// A list present in both: merged if the field says so, else replaced.
    fn merge_list_field(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        slot: Slot<'_>,
    ) -> Result<Vec<Value>, PatchError> {
        if slot.merges_lists() {
            self.merge_list(original, patch, slot)
        } else {
            self.clean_list(patch, slot)
        }
    }

    /// Upstream's `mergeSlice`: scalars are united, objects matched by the
    /// merge key; then ordered by the patch (see [`normalize`]).
    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        slot: Slot<'_>,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        if !objects(&original, patch)? {
            let mut seen = HashSet::new();
            let union: Vec<Value> = original
                .iter()
                .chain(patch)
                .filter(|v| seen.insert(Ident::of(v)))
                .cloned()
                .collect();
            let patch_order = idents(patch, None)?;
            let server_order = idents(&original, None)?;
            return normalize(union, &patch_order, &server_order, None);
        }

        let key = slot.merge_key.ok_or(PatchError::NoMergeKeyDeclared)?;
        let item_shape = self.items(slot.shape);
        let mut deleted = HashSet::new();
        let mut replace = false;
        let mut items = Vec::with_capacity(patch.len());
        for item in patch {
            let Value::Object(map) = item else {
                continue; // `objects` checked every item
            };
            match map.get(PATCH) {
                None => items.push(map),
                Some(Value::String(d)) if d == "delete" => match map.get(key) {
                    Some(v) => {
                        deleted.insert(Ident::of(v));
                    }
                    None => return Err(no_merge_key(item, key)),
                },
                Some(Value::String(d)) if d == "replace" => replace = true,
                // The default; an item holding only the marker says nothing.
                Some(Value::String(d)) if d == "merge" => {
                    if map.len() > 1 {
                        items.push(map);
                    }
                }
                Some(other) => return Err(bad_patch_type(other, map)),
            }
        }

        if replace {
            // The patch's other items are the list.
            let mut out = Vec::with_capacity(items.len());
            for map in items {
                if !map.contains_key(key) {
                    return Err(no_merge_key_map(map, key));
                }
                out.push(Value::Object(self.clean_map(map, item_shape)?));
            }
            return Ok(out);
        }

        let mut merged: Vec<Value> = original
            .into_iter()
            .filter(|v| match v.get(key) {
                Some(k) => !deleted.contains(&Ident::of(k)),
                None => true,
            })
            .collect();
        let server_order = idents(&merged, Some(key))?;
        let mut index: std::collections::HashMap<Ident, usize> =
            std::collections::HashMap::with_capacity(merged.len() + items.len());
        for (i, id) in server_order.iter().enumerate() {
            index.entry(id.clone()).or_insert(i);
        }
        let mut patch_order = Vec::with_capacity(items.len());
        for map in items {
            let id = match map.get(key) {
                Some(v) => Ident::of(v),
                None => return Err(no_merge_key_map(map, key)),
            };
            match index.get(&id) {
                Some(&i) => {
                    let slot_value = merged.get_mut(i).map(std::mem::take);
                    let current = match slot_value {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    let value = Value::Object(self.merge_map(current, map, item_shape)?);
                    if let Some(place) = merged.get_mut(i) {
                        *place = value;
                    }
                }
                None => {
                    index.insert(id.clone(), merged.len());
                    merged.push(Value::Object(self.clean_map(map, item_shape)?));
                }
            }
            patch_order.push(id);
        }
        normalize(merged, &patch_order, &server_order, Some(key))
    }

    /// A patch value that lands where the original has nothing to merge
    /// with: directives are applied and nulls dropped, as if merged into
    /// an empty value, so neither reaches the stored object.
    fn clean(&self, value: &Value, slot: Slot<'_>) -> Result<Value, PatchError> {
        Ok(match value {
            Value::Object(map) => Value::Object(self.clean_map(map, slot.shape)?),
            Value::Array(list) => Value::Array(self.clean_list(list, slot)?),
            scalar => scalar.clone(),
        })
    }

    fn clean_map(
        &self,
        map: &Map<String, Value>,
        shape: Option<ShapeId>,
    ) -> Result<Map<String, Value>, PatchError> {
        self.merge_map(Map::new(), map, shape)
    }

    /// A list taken from the patch: list-item directives (`$patch: delete`
    /// or `replace` items) have nothing to act on and are dropped.
    fn clean_list(&self, list: &[Value], slot: Slot<'_>) -> Result<Vec<Value>, PatchError> {
        let item_slot = Slot {
            shape: self.items(slot.shape),
            ..Slot::untyped()
        };
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            if let Value::Object(map) = item {
                match map.get(PATCH) {
                    Some(Value::String(d)) if d == "delete" || d == "replace" => continue,
                    Some(Value::String(d)) if d == "merge" && map.len() == 1 => continue,
                    _ => {}
                }
            }
            out.push(self.clean(item, item_slot)?);
        }
        Ok(out)
    }
}

/// Applies `$retainKeys`: every key the patch sets must be listed, and the
/// original loses the keys not listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
) -> Result<(), PatchError> {
    let list = retain.as_array().ok_or(PatchError::BadRetainKeys)?;
    let keep: HashSet<&str> = list.iter().filter_map(Value::as_str).collect();
    for (key, value) in patch {
        if value.is_null() || is_directive(key) {
            continue;
        }
        if !keep.contains(key.as_str()) {
            return Err(PatchError::BadRetainKeys);
        }
    }
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// Upstream's `validatePatchWithSetOrderList`: the patch list's items
/// (deletions and directive items aside) must appear in the order list, in
/// the same relative order.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch.len());
    for item in patch {
        if key.is_some() {
            let Value::Object(map) = item else {
                return Err(PatchError::BadArgType {
                    expected: "map[string]interface {}",
                    actual: go_type(item),
                });
            };
            if map.contains_key(PATCH) {
                continue; // deletions, and directives that name no item
            }
        }
        items.push(item);
    }
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if Ident::of_item(items[p], key)? == Ident::of_item(&order[o], key)? {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(PatchError::SetElementOrderMismatch {
            patch: go_fmt(&Value::Array(patch.to_vec())),
            order: go_fmt(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

/// Whether the items of a merged list are objects (else scalars); the
/// items of both lists must share one JSON type, as upstream's
/// `sliceElementType`.
fn objects(original: &[Value], patch: &[Value]) -> Result<bool, PatchError> {
    let mut first: Option<&'static str> = None;
    for item in original.iter().chain(patch) {
        if item.is_array() {
            return Err(PatchError::ListOfLists);
        }
        let t = go_type(item);
        match first {
            None => first = Some(t),
            Some(f) if f != t => {
                return Err(PatchError::MixedListTypes {
                    lists: format!(
                        "[{} {}]",
                        go_fmt(&Value::Array(original.to_vec())),
                        go_fmt(&Value::Array(patch.to_vec()))
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(first == Some(go_type(&Value::Object(Map::new()))))
}

fn not_a_list(v: &Value) -> PatchError {
    PatchError::BadArgType {
        expected: "[]interface {}",
        actual: go_type(v),
    }
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> PatchError {
    PatchError::BadPatchType {
        directive: go_fmt(directive),
        map: go_fmt(&Value::Object(map.clone())),
    }
}

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::NoMergeKey {
        map: go_fmt(item),
        key: key.to_owned(),
    }
}

fn no_merge_key_map(map: &Map<String, Value>, key: &str) -> PatchError {
    no_merge_key(&Value::Object(map.clone()), key)
}
