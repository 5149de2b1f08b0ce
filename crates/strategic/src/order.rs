//! The order of a merged list, as upstream's `normalizeElementOrder`.
//!
//! A merged list is split into the items the patch (or `$setElementOrder`)
//! names and the items only the server had. The first keep the patch's
//! order, the second the server's; then the server-only items are slotted
//! back in front of the first patch item that came after them on the
//! server. So `[a b c] + patch [c a]` is `[b c a]`: the patch decides the
//! order of what it mentions, untouched items keep their neighbours.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{PatchError, go_fmt, go_type};

/// Identity of a list item for matching and ordering: its merge key value
/// (lists of objects) or the value itself (lists of scalars). Equality is
/// Go's `==` on decoded JSON: numbers compare as `float64`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Ident {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    /// Objects and lists (only ever compared for equality), by their JSON.
    Other(String),
}

impl Ident {
    pub(crate) fn of(v: &Value) -> Ident {
        match v {
            Value::Null => Ident::Null,
            Value::Bool(b) => Ident::Bool(*b),
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // -0.0 == 0.0 in Go too.
                Ident::Num(if f == 0.0 { 0 } else { f.to_bits() })
            }
            Value::String(s) => Ident::Str(s.clone()),
            other => Ident::Other(other.to_string()),
        }
    }

    /// The identity of `item`: the value of `key` when lists are merged by
    /// key, else the item itself.
    pub(crate) fn of_item(item: &Value, key: Option<&str>) -> Result<Ident, PatchError> {
        let Some(key) = key else {
            return Ok(Ident::of(item));
        };
        let Value::Object(map) = item else {
            return Err(PatchError::BadArgType {
                expected: "map[string]interface {}",
                actual: go_type(item),
            });
        };
        match map.get(key) {
            Some(v) => Ok(Ident::of(v)),
            None => Err(PatchError::NoMergeKey {
                map: go_fmt(item),
                key: key.to_owned(),
            }),
        }
    }
}

/// Identities of a list's items.
pub(crate) fn idents(items: &[Value], key: Option<&str>) -> Result<Vec<Ident>, PatchError> {
    items.iter().map(|v| Ident::of_item(v, key)).collect()
}

/// First position of every identity.
fn positions(order: &[Ident]) -> HashMap<&Ident, usize> {
    let mut map = HashMap::with_capacity(order.len());
    for (i, id) in order.iter().enumerate() {
        map.entry(id).or_insert(i);
    }
    map
}

/// Orders `merged`: items named in `patch_order` in that order, the others
/// in `server_order`'s, interleaved as upstream's `mergeSortedSlice`.
pub(crate) fn normalize(
    merged: Vec<Value>,
    patch_order: &[Ident],
    server_order: &[Ident],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let in_patch = positions(patch_order);
    let in_server = positions(server_order);
    // (position in its own order, position on the server, item)
    let mut patch_items = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let id = Ident::of_item(&item, key)?;
        let server_pos = in_server.get(&id).copied();
        match in_patch.get(&id) {
            Some(&p) => patch_items.push((p, server_pos, item)),
            None => server_only.push((server_pos.unwrap_or(usize::MAX), server_pos, item)),
        }
    }
    // Stable: items sharing an identity keep their relative order.
    patch_items.sort_by_key(|(p, _, _)| *p);
    server_only.sort_by_key(|(p, _, _)| *p);

    // Insert each server-only item before the first patch item that the
    // server had after it; items we cannot compare go after.
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, l, _)), Some((_, r, _))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some((_, _, item)) = next {
            out.push(item);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(v: &[i64]) -> Vec<Ident> {
        v.iter().map(|n| Ident::of(&json!(n))).collect()
    }

    fn order(merged: &[i64], patch: &[i64], server: &[i64]) -> Vec<Value> {
        let merged = merged.iter().map(|n| json!(n)).collect();
        normalize(merged, &ids(patch), &ids(server), None).unwrap_or_default()
    }

    #[test]
    fn patch_order_then_server_items_slotted_back() {
        // [a b c] + patch [c a] -> [b c a]
        assert_eq!(
            order(&[1, 2, 3], &[3, 1], &[1, 2, 3]),
            vec![json!(2), json!(3), json!(1)]
        );
        // items the server never had go before server-only ones
        assert_eq!(order(&[1, 9], &[9], &[1]), vec![json!(9), json!(1)]);
        // untouched items keep their server order among themselves
        assert_eq!(
            order(&[4, 3, 2, 1], &[2], &[4, 3, 2, 1]),
            vec![json!(4), json!(3), json!(2), json!(1)]
        );
    }

    #[test]
    fn numbers_are_identified_as_go_float64() {
        assert_eq!(Ident::of(&json!(80)), Ident::of(&json!(80.0)));
        assert_eq!(Ident::of(&json!(0)), Ident::of(&json!(-0.0)));
        assert_ne!(Ident::of(&json!("80")), Ident::of(&json!(80)));
    }
}
