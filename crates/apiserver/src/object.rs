//! Reading and writing the common parts of an object (`metadata`), and
//! converting between what is stored and what clients see.

use bytes::Bytes;
use rand::Rng;
use serde_json::{Map, Value, json};
use skiff_store::KeyValue;

use crate::resources::ResourceInfo;
use crate::status::ApiError;

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name").filter(|n| !n.is_empty())
}

/// `metadata`, created if absent (or replaced if not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // Just made sure it is an object.
        _ => unreachable_meta(),
    }
}

#[allow(clippy::panic)]
fn unreachable_meta() -> ! {
    panic!("metadata was just set to an object")
}

/// The labels of an object (absent or malformed labels are none).
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// RFC 3339 timestamp `seconds` from now.
pub fn rfc3339_in(seconds: i64) -> String {
    let at = jiff::Timestamp::now().as_second().saturating_add(seconds);
    jiff::Timestamp::from_second(at)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now_rfc3339())
}

/// The 5-character suffix of `generateName`, from upstream's alphabet
/// (no vowels, no look-alike characters).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A stored object as clients see it: `resourceVersion` is the store
/// revision, `apiVersion`/`kind` those of the version asked for.
pub fn decode(kv: &KeyValue, r: &ResourceInfo) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is unreadable: {e}", kv.key)))?;
    stamp(&mut obj, r, kv.mod_revision);
    Ok(obj)
}

/// Sets apiVersion and kind to those of `r` (the version a client asked
/// for; all versions of a resource share their stored objects).
pub fn set_type(obj: &mut Value, r: &ResourceInfo) {
    if let Value::Object(map) = obj {
        map.insert("apiVersion".into(), json!(r.api_version()));
        map.insert("kind".into(), json!(r.kind));
    }
}

/// Sets apiVersion, kind and resourceVersion.
pub fn stamp(obj: &mut Value, r: &ResourceInfo, revision: i64) {
    set_type(obj, r);
    meta_mut(obj).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// A store event as clients see it: the object (for a delete, its last
/// state at the deletion revision) and its previous state, if any.
pub fn decode_event(
    event: &skiff_store::Event,
    r: &ResourceInfo,
) -> Option<(Value, Option<Value>)> {
    let prev = event.prev.as_ref().and_then(|kv| decode(kv, r).ok());
    let obj = match event.kind {
        skiff_store::EventKind::Put => decode(&event.kv, r).ok()?,
        skiff_store::EventKind::Delete => {
            let mut last = prev.clone()?;
            stamp(&mut last, r, event.revision());
            last
        }
    };
    Some((obj, prev))
}

/// What goes into the store: the object without its resourceVersion (the
/// store revision is the truth).
pub fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    let mut stored = obj.clone();
    meta_mut(&mut stored).remove("resourceVersion");
    serde_json::to_vec(&stored)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// Parses `metadata.resourceVersion` (or a query value) as a revision.
pub fn parse_revision(rv: &str) -> Result<i64, ApiError> {
    rv.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version {rv:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_objects_carry_no_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        let bytes = encode(&obj).unwrap();
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(back["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn generated_suffixes_use_the_upstream_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
