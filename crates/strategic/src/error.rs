//! Why a strategic merge patch was refused.
//!
//! The messages follow upstream's (`k8s.io/apimachinery/pkg/util/mergepatch`
//! and `strategicpatch`) because clients and users search for them; maps and
//! lists inside messages are rendered the way Go's `%v` prints
//! `map[string]interface{}` (`map[image:nginx name:web]`).

use serde_json::Value;

/// A patch that cannot be applied. Every variant is the client's fault
/// (the API server answers 400/422), never a server bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch (or the object being patched) is not a JSON object.
    #[error(
        "invalid JSON document: the {what} of a strategic merge patch must be a JSON object, not {found}"
    )]
    NotAnObject {
        what: &'static str,
        found: &'static str,
    },
    /// `$patch` holds something other than `replace`, `merge` or `delete`.
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType { directive: String, map: String },
    /// An item of a list merged by key lacks the key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    /// A list of objects is declared `merge` but names no merge key.
    #[error("cannot merge lists without merge key for type map")]
    NoMergeKeyDeclared,
    /// `$retainKeys` is not a list, or the patch sets a key it does not list.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// `$deleteFromPrimitiveList/<field>` is malformed or not a list.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// `$setElementOrder/<field>` is malformed or not a list.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// The patch list orders its items differently from `$setElementOrder`
    /// (or has items the order list lacks).
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    SetElementOrderMismatch { patch: String, order: String },
    /// A value has another JSON type than the directive needs.
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        expected: &'static str,
        actual: &'static str,
    },
    /// A merged list contains lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merged list mixes item types (objects and scalars, strings and
    /// numbers).
    #[error("list element types are not identical: {lists}")]
    MixedListTypes { lists: String },
    /// The patch or the object nests deeper than we recurse.
    #[error("strategic merge patch: the patch or the object nests deeper than {max} levels")]
    TooDeep { max: usize },
}

/// Go's `reflect.TypeOf(v).String()` for a decoded JSON value, as in
/// upstream's `expected a []interface {}, but received a string`.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// JSON type name for [`PatchError::NotAnObject`].
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Go's `%v` of a decoded JSON value (maps print with sorted keys). Only
/// called on inputs whose depth was checked, so the recursion is bounded.
pub(crate) fn go_fmt(v: &Value) -> String {
    let mut out = String::new();
    write_go(v, &mut out);
    out
}

fn write_go(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) => out.push_str(&f.to_string()),
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                if let Some(value) = map.get(k) {
                    write_go(value, out);
                }
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_formatting_matches_upstream_messages() {
        let v = json!({"name": "web", "ports": [80, 443], "x": null, "ok": true, "m": {}});
        assert_eq!(
            go_fmt(&v),
            "map[m:map[] name:web ok:true ports:[80 443] x:<nil>]"
        );
        let err = PatchError::NoMergeKey {
            map: go_fmt(&json!({"image": "httpd"})),
            key: "name".into(),
        };
        assert_eq!(
            err.to_string(),
            "map: map[image:httpd] does not contain declared merge key: name"
        );
    }
}
