//! Path elements and paths: how server-side apply names a field.
//!
//! A field is reached from the object root by a sequence of elements: a map
//! field (`f:<name>`), an item of a list-map by its key fields
//! (`k:{"name":"web"}`), an item of a set by its value (`v:"finalizer"`), or
//! an item of an atomic list by index (`i:0`, only for deduced data). The
//! fieldsV1 encoding uses these strings as JSON object keys; conflict
//! messages print the human form (`.spec.containers[name="web"].image`).
//! Elements order like upstream's `PathElement.Compare` because fieldsV1
//! keys are emitted in that order.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::error::FieldsError;
use crate::{go_format, value_order};

/// One step from a node to a child.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of a map (`f:<name>`).
    Field(String),
    /// An item of a list-map by its key fields, sorted by name (`k:{...}`).
    Key(Vec<(String, Value)>),
    /// An item of a set by its value (`v:<json>`).
    Value(Value),
    /// An item of an atomic list by position (`i:<n>`).
    Index(u64),
}

impl PathElement {
    /// A list-map key from (name, value) pairs; sorts the pairs by name as
    /// upstream's `KeyByFields` callers do.
    pub fn key(mut fields: Vec<(String, Value)>) -> PathElement {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    /// A map field.
    pub fn field(name: impl Into<String>) -> PathElement {
        PathElement::Field(name.into())
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// Parses a fieldsV1 key (`f:name`, `k:{...}`, `v:...`, `i:0`).
    pub fn parse(s: &str) -> Result<PathElement, FieldsError> {
        let bad = |reason: &str| FieldsError::PathElement {
            element: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (prefix, rest) = match (s.get(..2), s.get(2..)) {
            (Some(p), Some(r)) => (p, r),
            _ => return Err(bad("too short")),
        };
        match prefix {
            "f:" => Ok(PathElement::Field(rest.to_owned())),
            "v:" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|e| bad(&e.to_string())),
            "i:" => rest
                .parse::<u64>()
                .map(PathElement::Index)
                .map_err(|e| bad(&e.to_string())),
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => Ok(PathElement::key(map.into_iter().collect())),
                Ok(_) => Err(bad("key is not a JSON object")),
                Err(e) => Err(bad(&e.to_string())),
            },
            _ => Err(bad("unknown path element type")),
        }
    }

    /// The fieldsV1 key for this element.
    pub fn to_fields_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Value(v) => format!("v:{}", compact_json(v)),
            PathElement::Index(i) => format!("i:{i}"),
            PathElement::Key(fields) => {
                let mut out = String::from("k:{");
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&compact_json(&Value::String(name.clone())));
                    out.push(':');
                    out.push_str(&compact_json(v));
                }
                out.push('}');
                out
            }
        }
    }
}

/// Compact JSON of a value (serde_json cannot fail on a `Value`).
fn compact_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn key_cmp(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((an, av), (bn, bv)) in a.iter().zip(b) {
        let c = an.cmp(bn).then_with(|| value_order::compare(av, bv));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => key_cmp(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => value_order::compare(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// The human form used in conflict messages (`.name`, `[k="v"]`, `[="v"]`,
/// `[0]`).
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", go_format::value(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", go_format::value(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A sequence of elements from the object root.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A path of map fields, e.g. `Path::fields(&["spec", "replicas"])`.
    pub fn fields(names: &[&str]) -> Path {
        Path(names.iter().map(|n| PathElement::field(*n)).collect())
    }

    /// This path with one more element.
    pub fn child(&self, pe: PathElement) -> Path {
        let mut v = self.0.clone();
        v.push(pe);
        Path(v)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_prints_every_kind() {
        for s in [
            "f:metadata",
            "f:",
            r#"k:{"name":"web"}"#,
            r#"k:{"containerPort":80,"protocol":"TCP"}"#,
            r#"v:"example.com/finalizer""#,
            "v:5",
            "i:3",
        ] {
            let pe = PathElement::parse(s).expect(s);
            assert_eq!(pe.to_fields_key(), s);
        }
    }

    #[test]
    fn key_fields_are_sorted_on_parse() {
        let pe = PathElement::parse(r#"k:{"protocol":"TCP","containerPort":80}"#).unwrap();
        assert_eq!(
            pe.to_fields_key(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
    }

    #[test]
    fn rejects_malformed_elements() {
        for s in ["", "f", "x:a", "k:[1]", "k:{", "v:", "i:-1", "i:x"] {
            assert!(PathElement::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn orders_like_upstream() {
        let a = PathElement::parse("f:z").unwrap();
        let b = PathElement::parse(r#"k:{"port":80}"#).unwrap();
        let c = PathElement::parse(r#"k:{"port":8080}"#).unwrap();
        let d = PathElement::parse("v:1").unwrap();
        let e = PathElement::parse("i:0").unwrap();
        assert!(a < b && b < c && c < d && d < e);
    }

    #[test]
    fn human_form_matches_upstream() {
        let p = Path(vec![
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key(vec![("name".into(), json!("web"))]),
            PathElement::field("image"),
        ]);
        assert_eq!(p.to_string(), r#".spec.containers[name="web"].image"#);
        let p = Path(vec![
            PathElement::field("spec"),
            PathElement::field("ports"),
            PathElement::key(vec![
                ("protocol".into(), json!("TCP")),
                ("port".into(), json!(80)),
            ]),
        ]);
        assert_eq!(p.to_string(), r#".spec.ports[port=80,protocol="TCP"]"#);
        let p = Path(vec![
            PathElement::field("metadata"),
            PathElement::field("finalizers"),
            PathElement::Value(json!("a/b")),
        ]);
        assert_eq!(p.to_string(), r#".metadata.finalizers[="a/b"]"#);
    }
}
