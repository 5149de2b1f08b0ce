//! The compiled form of a CRD's `openAPIV3Schema`: what validation,
//! defaulting and pruning walk, instead of re-reading raw JSON each time.
//!
//! Compiling once per CRD version keeps the per-request work to a walk over
//! the object, and catches what cannot be evaluated at all (a pattern that
//! is not a regular expression, a keyword of the wrong JSON type, a schema
//! nested absurdly deep) before any object meets it. Whether the schema is
//! *structural* in upstream's sense (every node typed, no `properties`
//! beside `additionalProperties`, ...) is a separate question answered by
//! [`crate::definition`] with field errors; a compiled schema may be
//! non-structural and still usable.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use thiserror::Error;

use super::pattern::Pattern;

/// Deepest schema nesting accepted (properties, items, additionalProperties
/// and the logical junctors all count). Real CRDs stay far below; the cap
/// keeps every recursive walk over schemas and objects bounded.
pub const MAX_SCHEMA_DEPTH: usize = 64;

/// Why a schema could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// A keyword holds the wrong JSON type (`"minimum": "1"`).
    #[error("{path}: {keyword} must be {expected}")]
    WrongType {
        /// Path of the schema node inside the schema (`properties[spec]`).
        path: String,
        /// The keyword.
        keyword: String,
        /// The JSON type it must have.
        expected: &'static str,
    },
    /// `pattern` does not compile.
    #[error("{path}: pattern must be a valid regular expression, but isn't: {message}")]
    BadPattern {
        /// Path of the schema node.
        path: String,
        /// The compiler's complaint.
        message: String,
    },
    /// The schema nests deeper than [`MAX_SCHEMA_DEPTH`].
    #[error("{path}: schema nests deeper than {MAX_SCHEMA_DEPTH} levels")]
    TooDeep {
        /// Path where the limit was hit.
        path: String,
    },
}

/// What `additionalProperties` says about keys not in `properties`.
#[derive(Debug, Clone)]
pub enum AdditionalProperties {
    /// `true` or `false`: any value, or none at all.
    Allows(bool),
    /// Every other key's value must match this schema (a map).
    Schema(Box<Structural>),
}

/// Value validations: they constrain a value without shaping it.
#[derive(Debug, Clone, Default)]
pub struct ValueValidation {
    /// `maximum`.
    pub maximum: Option<f64>,
    /// `exclusiveMaximum`.
    pub exclusive_maximum: bool,
    /// `minimum`.
    pub minimum: Option<f64>,
    /// `exclusiveMinimum`.
    pub exclusive_minimum: bool,
    /// `multipleOf`.
    pub multiple_of: Option<f64>,
    /// `maxLength` (in characters, as upstream counts runes).
    pub max_length: Option<u64>,
    /// `minLength`.
    pub min_length: Option<u64>,
    /// `pattern`.
    pub pattern: Option<Pattern>,
    /// `maxItems`.
    pub max_items: Option<u64>,
    /// `minItems`.
    pub min_items: Option<u64>,
    /// `uniqueItems` (forbidden in CRDs, honoured if present anyway).
    pub unique_items: bool,
    /// `maxProperties`.
    pub max_properties: Option<u64>,
    /// `minProperties`.
    pub min_properties: Option<u64>,
    /// `enum`.
    pub enum_values: Option<Vec<Value>>,
    /// `allOf`.
    pub all_of: Vec<Structural>,
    /// `anyOf`.
    pub any_of: Vec<Structural>,
    /// `oneOf`.
    pub one_of: Vec<Structural>,
    /// `not`.
    pub not: Option<Box<Structural>>,
}

/// One node of a compiled schema. The same type serves the structural
/// skeleton and the schemas nested under `allOf`/`anyOf`/`oneOf`/`not`
/// (where only the value validations and nested shapes matter).
#[derive(Debug, Clone, Default)]
pub struct Structural {
    /// `type`, empty when unset.
    pub type_: String,
    /// `format`, empty when unset.
    pub format: String,
    /// `nullable`.
    pub nullable: bool,
    /// `default`.
    pub default: Option<Value>,
    /// `required`.
    pub required: Vec<String>,
    /// `properties`.
    pub properties: BTreeMap<String, Structural>,
    /// `additionalProperties`.
    pub additional_properties: Option<AdditionalProperties>,
    /// `items` (an array of schemas is not allowed in CRDs; ignored).
    pub items: Option<Box<Structural>>,
    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub preserve_unknown_fields: bool,
    /// `x-kubernetes-embedded-resource: true`.
    pub embedded_resource: bool,
    /// `x-kubernetes-int-or-string: true`.
    pub int_or_string: bool,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`.
    pub map_type: Option<String>,
    /// The value validations.
    pub validation: ValueValidation,
}

impl Structural {
    /// Compiles a raw `openAPIV3Schema` (JSON as in the CRD).
    pub fn from_schema(schema: &Value) -> Result<Structural, SchemaError> {
        compile(schema, "", 0)
    }

    /// The schema of a property, if declared.
    pub fn property(&self, name: &str) -> Option<&Structural> {
        self.properties.get(name)
    }

    /// The schema for map values (`additionalProperties` as a schema).
    pub fn additional_schema(&self) -> Option<&Structural> {
        match &self.additional_properties {
            Some(AdditionalProperties::Schema(s)) => Some(s),
            _ => None,
        }
    }
}

fn child_path(base: &str, seg: &str) -> String {
    if base.is_empty() {
        seg.to_string()
    } else {
        format!("{base}.{seg}")
    }
}

fn wrong(path: &str, keyword: &str, expected: &'static str) -> SchemaError {
    SchemaError::WrongType {
        path: if path.is_empty() {
            "<root>".to_string()
        } else {
            path.to_string()
        },
        keyword: keyword.to_string(),
        expected,
    }
}

struct Reader<'a> {
    obj: &'a Map<String, Value>,
    path: &'a str,
}

impl Reader<'_> {
    fn string(&self, key: &str) -> Result<String, SchemaError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(wrong(self.path, key, "a string")),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool, SchemaError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(wrong(self.path, key, "a boolean")),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, SchemaError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(wrong(self.path, key, "a number")),
        }
    }

    fn count(&self, key: &str) -> Result<Option<u64>, SchemaError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Ok(Some(u)),
                // negative limits can never be met except by nothing: treat as 0
                (None, Some(_)) => Ok(Some(0)),
                _ => Err(wrong(self.path, key, "an integer")),
            },
            Some(_) => Err(wrong(self.path, key, "an integer")),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, SchemaError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong(self.path, key, "a list of strings"))
                })
                .collect(),
            Some(_) => Err(wrong(self.path, key, "a list of strings")),
        }
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, SchemaError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong(self.path, key, "a string")),
        }
    }

    fn schemas(&self, key: &str, depth: usize) -> Result<Vec<Structural>, SchemaError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    compile(
                        v,
                        &format!("{}[{i}]", child_path(self.path, key)),
                        depth + 1,
                    )
                })
                .collect(),
            Some(_) => Err(wrong(self.path, key, "a list of schemas")),
        }
    }
}

fn compile(schema: &Value, path: &str, depth: usize) -> Result<Structural, SchemaError> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(SchemaError::TooDeep {
            path: path.to_string(),
        });
    }
    let obj = match schema {
        Value::Object(m) => m,
        Value::Null => return Ok(<Structural as Default>::default()),
        _ => return Err(wrong(path, "schema", "an object")),
    };
    let r = Reader { obj, path };

    let mut properties = BTreeMap::new();
    match obj.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(props)) => {
            for (k, v) in props {
                let p = format!("{}[{k}]", child_path(path, "properties"));
                properties.insert(k.clone(), compile(v, &p, depth + 1)?);
            }
        }
        Some(_) => return Err(wrong(path, "properties", "an object")),
    }

    let additional_properties = match obj.get("additionalProperties") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(AdditionalProperties::Allows(*b)),
        Some(v @ Value::Object(_)) => Some(AdditionalProperties::Schema(Box::new(compile(
            v,
            &child_path(path, "additionalProperties"),
            depth + 1,
        )?))),
        Some(_) => return Err(wrong(path, "additionalProperties", "a boolean or a schema")),
    };

    let items = match obj.get("items") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => {
            Some(Box::new(compile(v, &child_path(path, "items"), depth + 1)?))
        }
        // an array of schemas is rejected by definition validation; at
        // runtime it constrains nothing we support
        Some(Value::Array(_)) => None,
        Some(_) => return Err(wrong(path, "items", "a schema")),
    };

    let pattern = match r.opt_string("pattern")? {
        None => None,
        Some(src) => Some(
            Pattern::new(&src).map_err(|message| SchemaError::BadPattern {
                path: if path.is_empty() {
                    "<root>".to_string()
                } else {
                    path.to_string()
                },
                message,
            })?,
        ),
    };

    let enum_values = match obj.get("enum") {
        None | Some(Value::Null) => None,
        Some(Value::Array(v)) => Some(v.clone()),
        Some(_) => return Err(wrong(path, "enum", "a list")),
    };

    let not = match obj.get("not") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Box::new(compile(v, &child_path(path, "not"), depth + 1)?)),
    };

    let validation = ValueValidation {
        maximum: r.number("maximum")?,
        exclusive_maximum: r.boolean("exclusiveMaximum")?,
        minimum: r.number("minimum")?,
        exclusive_minimum: r.boolean("exclusiveMinimum")?,
        multiple_of: r.number("multipleOf")?,
        max_length: r.count("maxLength")?,
        min_length: r.count("minLength")?,
        pattern,
        max_items: r.count("maxItems")?,
        min_items: r.count("minItems")?,
        unique_items: r.boolean("uniqueItems")?,
        max_properties: r.count("maxProperties")?,
        min_properties: r.count("minProperties")?,
        enum_values,
        all_of: r.schemas("allOf", depth)?,
        any_of: r.schemas("anyOf", depth)?,
        one_of: r.schemas("oneOf", depth)?,
        not,
    };

    Ok(Structural {
        type_: r.string("type")?,
        format: r.string("format")?,
        nullable: r.boolean("nullable")?,
        default: obj.get("default").cloned(),
        required: r.strings("required")?,
        properties,
        additional_properties,
        items,
        preserve_unknown_fields: r.boolean("x-kubernetes-preserve-unknown-fields")?,
        embedded_resource: r.boolean("x-kubernetes-embedded-resource")?,
        int_or_string: r.boolean("x-kubernetes-int-or-string")?,
        list_type: r.opt_string("x-kubernetes-list-type")?,
        list_map_keys: r.strings("x-kubernetes-list-map-keys")?,
        map_type: r.opt_string("x-kubernetes-map-type")?,
        validation,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn compiles_nested_schema() {
        let s = Structural::from_schema(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "required": ["image"], "properties": {
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }}
            }
        }))
        .unwrap();
        let spec = s.property("spec").unwrap();
        assert_eq!(spec.required, vec!["image"]);
        let r = spec.property("replicas").unwrap();
        assert_eq!(r.validation.maximum, Some(10.0));
        assert_eq!(r.default, Some(json!(1)));
        assert_eq!(
            spec.property("tags").unwrap().list_type.as_deref(),
            Some("set")
        );
        assert_eq!(
            spec.property("labels")
                .unwrap()
                .additional_schema()
                .unwrap()
                .type_,
            "string"
        );
    }

    #[test]
    fn wrong_keyword_types_are_errors() {
        let e = Structural::from_schema(
            &json!({"type": "object", "properties": {"a": {"minimum": "x"}}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "properties[a]: minimum must be a number");
        assert!(Structural::from_schema(&json!("x")).is_err());
        let e = Structural::from_schema(&json!({"type": "string", "pattern": "("})).unwrap_err();
        assert!(matches!(e, SchemaError::BadPattern { .. }));
    }

    #[test]
    fn depth_is_capped() {
        let mut s = json!({"type": "string"});
        for _ in 0..200 {
            s = json!({"type": "object", "properties": {"a": s}});
        }
        assert!(matches!(
            Structural::from_schema(&s),
            Err(SchemaError::TooDeep { .. })
        ));
        let mut s = json!({"type": "string"});
        for _ in 0..200 {
            s = json!({"anyOf": [s]});
        }
        assert!(matches!(
            Structural::from_schema(&s),
            Err(SchemaError::TooDeep { .. })
        ));
    }
}
