//! Forgiving accessors for JSON objects.
//!
//! Printers read objects that came from storage, from any client, possibly
//! malformed. Every accessor here answers "absent" for a missing field, a
//! `null`, or a value of the wrong JSON type, so that printing never fails.

use jiff::Timestamp;
use serde_json::{Map, Value};

/// The value at `path` (object keys only); `None` when absent or `null`.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    (!cur.is_null()).then_some(cur)
}

pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

/// The string at `path`, or `""` (Go's zero value) when absent.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

/// The string at `path` when present and non-empty.
pub(crate) fn non_empty<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    opt_str(v, path).filter(|s| !s.is_empty())
}

/// A JSON number read as an integer (integral floats too, saturating).
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    if let Some(u) = v.as_u64() {
        return Some(i64::try_from(u).unwrap_or(i64::MAX));
    }
    let f = v.as_f64()?;
    // `as` saturates at the i64 bounds, which is what we want here.
    (f.is_finite() && f.fract() == 0.0).then_some(f as i64)
}

pub(crate) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    as_int(at(v, path)?)
}

/// The integer at `path`, or `0` when absent.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

pub(crate) fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path)?.as_bool()
}

/// The boolean at `path`, or `false` when absent.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(crate) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(v, path)?.as_object()
}

/// Number of entries of the array or map at `path` (`len()` in Go).
pub(crate) fn count_at(v: &Value, path: &[&str]) -> i64 {
    let n = match at(v, path) {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(m)) => m.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z), which
/// `metav1.Time` treats as "unset".
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Parses an RFC 3339 `metav1.Time`/`MicroTime`; `None` for the zero time.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    let ts: Timestamp = s.parse().ok()?;
    let zero = ts.as_second() == GO_ZERO_TIME_SECONDS && ts.subsec_nanosecond() == 0;
    (!zero).then_some(ts)
}

pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    parse_time(opt_str(v, path)?)
}

/// `metadata.name`.
pub(crate) fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"])
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(obj: &Value) -> bool {
    at(obj, &["metadata", "deletionTimestamp"]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_read_as_absent() {
        let v = json!({"a": {"b": 3, "s": "x", "f": 2.0, "g": 2.5, "n": null}});
        assert_eq!(int_at(&v, &["a", "b"]), 3);
        assert_eq!(int_at(&v, &["a", "f"]), 2);
        assert_eq!(opt_int(&v, &["a", "g"]), None);
        assert_eq!(str_at(&v, &["a", "b"]), "");
        assert_eq!(str_at(&v, &["a", "s", "deeper"]), "");
        assert!(at(&v, &["a", "n"]).is_none());
        assert!(arr_at(&v, &["a"]).is_empty());
        assert_eq!(count_at(&v, &["a"]), 5);
    }

    #[test]
    fn go_zero_time_is_unset() {
        assert!(parse_time("0001-01-01T00:00:00Z").is_none());
        assert!(parse_time("2024-05-01T10:00:00Z").is_some());
        assert!(parse_time("not a time").is_none());
    }
}
