//! The v2 JSON document converted into gnostic's protobuf messages, the form
//! kubectl 1.27/1.28 download (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`).
//!
//! Arbitrary JSON values (defaults, enums, examples, `x-` extensions) become
//! `Any.yaml` holding the compact JSON text, which every YAML parser reads.

use crate::gnostic as g;
use serde_json::{Map, Value};

/// Converts the document produced by [`crate::v2::document`].
pub(crate) fn document(doc: &Value) -> g::Document {
    g::Document {
        swagger: string(doc, "swagger"),
        info: doc.get("info").map(|info| g::Info {
            title: string(info, "title"),
            version: string(info, "version"),
            description: string(info, "description"),
            vendor_extension: extensions(info),
        }),
        paths: doc
            .get("paths")
            .and_then(Value::as_object)
            .map(|paths| g::Paths {
                vendor_extension: vec![],
                path: paths
                    .iter()
                    .map(|(name, item)| g::NamedPathItem {
                        name: name.clone(),
                        value: Some(path_item(item)),
                    })
                    .collect(),
            }),
        definitions: doc
            .get("definitions")
            .and_then(Value::as_object)
            .map(|defs| g::Definitions {
                additional_properties: named_schemas(defs),
            }),
        vendor_extension: extensions(doc),
        ..Default::default()
    }
}

fn string(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn boolean(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn float(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn any(v: &Value) -> g::Any {
    g::Any {
        yaml: v.to_string(),
    }
}

/// The `x-` keys of an object, in order.
fn extensions(v: &Value) -> Vec<g::NamedAny> {
    v.as_object()
        .map(|obj| {
            obj.iter()
                .filter(|(k, _)| k.starts_with("x-"))
                .map(|(k, v)| g::NamedAny {
                    name: k.clone(),
                    value: Some(any(v)),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn named_schemas(map: &Map<String, Value>) -> Vec<g::NamedSchema> {
    map.iter()
        .map(|(name, s)| g::NamedSchema {
            name: name.clone(),
            value: Some(schema(s)),
        })
        .collect()
}

/// A JSON schema (already reduced to v2 keywords) as `openapi.v2.Schema`.
pub(crate) fn schema(s: &Value) -> g::Schema {
    let types: Vec<String> = match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    };
    let additional_properties = s.get("additionalProperties").and_then(|ap| {
        let oneof = match ap {
            Value::Bool(b) => g::additional_properties_item::Oneof::Boolean(*b),
            Value::Object(_) => g::additional_properties_item::Oneof::Schema(schema(ap)),
            _ => return None,
        };
        Some(Box::new(g::AdditionalPropertiesItem { oneof: Some(oneof) }))
    });
    let items = s.get("items").map(|items| g::ItemsItem {
        schema: match items {
            Value::Array(all) => all.iter().map(schema).collect(),
            other => vec![schema(other)],
        },
    });
    g::Schema {
        xref: string(s, "$ref"),
        format: string(s, "format"),
        title: string(s, "title"),
        description: string(s, "description"),
        default: s.get("default").map(any),
        multiple_of: float(s, "multipleOf"),
        maximum: float(s, "maximum"),
        exclusive_maximum: boolean(s, "exclusiveMaximum"),
        minimum: float(s, "minimum"),
        exclusive_minimum: boolean(s, "exclusiveMinimum"),
        max_length: int(s, "maxLength"),
        min_length: int(s, "minLength"),
        pattern: string(s, "pattern"),
        max_items: int(s, "maxItems"),
        min_items: int(s, "minItems"),
        unique_items: boolean(s, "uniqueItems"),
        max_properties: int(s, "maxProperties"),
        min_properties: int(s, "minProperties"),
        required: strings(s, "required"),
        r#enum: s
            .get("enum")
            .and_then(Value::as_array)
            .map(|e| e.iter().map(any).collect())
            .unwrap_or_default(),
        additional_properties,
        r#type: (!types.is_empty()).then_some(g::TypeItem { value: types }),
        items,
        all_of: s
            .get("allOf")
            .and_then(Value::as_array)
            .map(|all| all.iter().map(schema).collect())
            .unwrap_or_default(),
        properties: s
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| g::Properties {
                additional_properties: named_schemas(props),
            }),
        discriminator: string(s, "discriminator"),
        read_only: boolean(s, "readOnly"),
        example: s.get("example").map(any),
        vendor_extension: extensions(s),
    }
}

fn path_item(item: &Value) -> g::PathItem {
    let op = |method: &str| item.get(method).map(operation);
    g::PathItem {
        xref: string(item, "$ref"),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters(item),
        vendor_extension: extensions(item),
    }
}

fn parameters(v: &Value) -> Vec<g::ParametersItem> {
    v.get("parameters")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(parameter).collect())
        .unwrap_or_default()
}

fn parameter(p: &Value) -> Option<g::ParametersItem> {
    use g::non_body_parameter::Oneof as NonBody;
    let location = string(p, "in");
    let param = match location.as_str() {
        "body" => g::parameter::Oneof::BodyParameter(g::BodyParameter {
            description: string(p, "description"),
            name: string(p, "name"),
            r#in: location.clone(),
            required: boolean(p, "required"),
            schema: p.get("schema").map(schema),
            vendor_extension: extensions(p),
        }),
        "query" => g::parameter::Oneof::NonBodyParameter(g::NonBodyParameter {
            oneof: Some(NonBody::QueryParameterSubSchema(
                g::QueryParameterSubSchema {
                    required: boolean(p, "required"),
                    r#in: location.clone(),
                    description: string(p, "description"),
                    name: string(p, "name"),
                    r#type: string(p, "type"),
                    format: string(p, "format"),
                    unique_items: boolean(p, "uniqueItems"),
                    vendor_extension: extensions(p),
                    ..Default::default()
                },
            )),
        }),
        "path" => g::parameter::Oneof::NonBodyParameter(g::NonBodyParameter {
            oneof: Some(NonBody::PathParameterSubSchema(g::PathParameterSubSchema {
                required: boolean(p, "required"),
                r#in: location.clone(),
                description: string(p, "description"),
                name: string(p, "name"),
                r#type: string(p, "type"),
                format: string(p, "format"),
                unique_items: boolean(p, "uniqueItems"),
                vendor_extension: extensions(p),
            })),
        }),
        // Header and form parameters are never generated.
        _ => return None,
    };
    Some(g::ParametersItem {
        oneof: Some(g::parameters_item::Oneof::Parameter(g::Parameter {
            oneof: Some(param),
        })),
    })
}

fn operation(op: &Value) -> g::Operation {
    g::Operation {
        tags: strings(op, "tags"),
        summary: string(op, "summary"),
        description: string(op, "description"),
        operation_id: string(op, "operationId"),
        produces: strings(op, "produces"),
        consumes: strings(op, "consumes"),
        parameters: parameters(op),
        responses: op
            .get("responses")
            .and_then(Value::as_object)
            .map(|rs| g::Responses {
                response_code: rs
                    .iter()
                    .map(|(code, r)| g::NamedResponseValue {
                        name: code.clone(),
                        value: Some(g::ResponseValue {
                            oneof: Some(g::response_value::Oneof::Response(g::Response {
                                description: string(r, "description"),
                                schema: r.get("schema").map(|s| g::SchemaItem {
                                    oneof: Some(g::schema_item::Oneof::Schema(schema(s))),
                                }),
                                vendor_extension: extensions(r),
                            })),
                        }),
                    })
                    .collect(),
                vendor_extension: vec![],
            }),
        schemes: strings(op, "schemes"),
        deprecated: boolean(op, "deprecated"),
        vendor_extension: extensions(op),
    }
}
