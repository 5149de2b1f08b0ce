//! Applying schema `default`s to a custom object, as upstream's structural
//! defaulting does on every read from the request and from storage.
//!
//! Rules (upstream's): for an object present in the data, each property
//! with a default that is missing (or `null` while not `nullable`) gets a
//! copy of the default; then every present field is defaulted by its own
//! schema, including map values under `additionalProperties` and list
//! items. Absent objects are not created unless a default creates them.
//! Recursion follows the schema, whose depth is capped at compile time.

use serde_json::Value;

use super::structural::Structural;

impl Structural {
    /// Fills in defaults in place. Applying twice changes nothing more.
    pub fn default(&self, obj: &mut Value) {
        default_node(self, obj);
    }
}

/// A `null` that a default replaces: not nullable and a default exists.
fn non_nullable_null(v: &Value, s: &Structural) -> bool {
    v.is_null() && !s.nullable && s.default.is_some()
}

fn default_node(s: &Structural, v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, prop) in &s.properties {
                let Some(d) = &prop.default else { continue };
                let missing = m.get(k).is_none_or(|x| non_nullable_null(x, prop));
                if missing {
                    m.insert(k.clone(), d.clone());
                }
            }
            let additional = s.additional_schema();
            for (k, child) in m.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    default_node(prop, child);
                } else if let Some(ap) = additional {
                    if non_nullable_null(child, ap)
                        && let Some(d) = &ap.default
                    {
                        *child = d.clone();
                    }
                    default_node(ap, child);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = s.items.as_deref() else {
                return;
            };
            for it in items.iter_mut() {
                if non_nullable_null(it, item_schema)
                    && let Some(d) = &item_schema.default
                {
                    *it = d.clone();
                }
                default_node(item_schema, it);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Structural {
        Structural::from_schema(&v).unwrap()
    }

    #[test]
    fn defaults_missing_fields_of_present_objects() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1},
                "image": {"type": "string"}
            }}}}),
        );
        let mut o = json!({"spec": {"image": "x"}});
        s.default(&mut o);
        assert_eq!(o, json!({"spec": {"image": "x", "replicas": 1}}));
        // absent objects are not created
        let mut o = json!({});
        s.default(&mut o);
        assert_eq!(o, json!({}));
        // present values win
        let mut o = json!({"spec": {"replicas": 5}});
        s.default(&mut o);
        assert_eq!(o, json!({"spec": {"replicas": 5}}));
    }

    #[test]
    fn object_defaults_are_defaulted_inside() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "default": {},
            "properties": {"replicas": {"type": "integer", "default": 1}}}}}),
        );
        let mut o = json!({});
        s.default(&mut o);
        assert_eq!(o, json!({"spec": {"replicas": 1}}));
    }

    #[test]
    fn nulls_items_and_maps() {
        let s = schema(json!({"type": "object", "properties": {
            "a": {"type": "string", "default": "x"},
            "n": {"type": "string", "nullable": true, "default": "y"},
            "list": {"type": "array", "items": {"type": "object", "properties": {"p": {"type": "integer", "default": 80}}}},
            "m": {"type": "object", "additionalProperties": {"type": "string", "default": "d"}},
            "nums": {"type": "array", "items": {"type": "integer", "default": 7}}
        }}));
        let mut o = json!({"a": null, "n": null, "list": [{}, {"p": 1}], "m": {"k": null}, "nums": [null, 1]});
        s.default(&mut o);
        assert_eq!(
            o,
            json!({"a": "x", "n": null, "list": [{"p": 80}, {"p": 1}], "m": {"k": "d"}, "nums": [7, 1]})
        );
    }
}
