//! Small facts about JSON values shared by validation and list checks:
//! upstream's type names, integer-ness, and a depth-capped canonical form
//! for equality (so `1` equals `1.0` the way Go's decoded numbers compare).

use serde_json::{Number, Value};

/// Values nested deeper than this are never considered equal to anything
/// (keeps comparisons of hostile objects from recursing without bound).
const MAX_VALUE_DEPTH: usize = 128;

/// Whether `n` is a whole number: upstream decodes `1.0` as an integer.
pub fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// The OpenAPI type name of a value, as upstream prints it in
/// "must be of type" errors.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `v` has the schema type `ty` (`integer,string` for
/// int-or-string).
pub fn has_type(ty: &str, v: &Value) -> bool {
    ty.split(',').any(|t| match (t, v) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        _ => false,
    })
}

/// A number the way Go's `%v` prints a float64 holding it: whole numbers
/// without a fraction.
pub fn go_number(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else {
        format!("{f}")
    }
}

/// A canonical string for equality and hashing; `None` when the value is
/// nested deeper than the cap.
pub fn canonical(v: &Value) -> Option<String> {
    let mut out = String::new();
    write_canonical(v, 0, &mut out).then_some(out)
}

fn write_canonical(v: &Value, depth: usize, out: &mut String) -> bool {
    if depth > MAX_VALUE_DEPTH {
        return false;
    }
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if is_integer(n) && !n.is_i64() && !n.is_u64() => out.push_str(&go_number(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_canonical(it, depth + 1, out) {
                    return false;
                }
            }
            out.push(']');
        }
        Value::Object(m) => {
            // serde_json maps are sorted (no preserve_order feature here),
            // but sort anyway so the form never depends on that.
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if !m.get(k).is_some_and(|x| write_canonical(x, depth + 1, out)) {
                    return false;
                }
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
    true
}

/// JSON equality with numbers compared by value.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_and_numbers() {
        assert_eq!(type_name(&json!(1.0)), "integer");
        assert_eq!(type_name(&json!(1.5)), "number");
        assert!(has_type("integer,string", &json!("a")));
        assert!(!has_type("integer", &json!(1.5)));
        assert!(has_type("number", &json!(1)));
        assert_eq!(go_number(10.0), "10");
        assert_eq!(go_number(1.5), "1.5");
        assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_eq(&json!("1"), &json!(1)));
    }

    #[test]
    fn deep_values_are_not_compared() {
        let mut v = json!(1);
        for _ in 0..500 {
            v = json!([v]);
        }
        assert!(canonical(&v).is_none());
    }
}
