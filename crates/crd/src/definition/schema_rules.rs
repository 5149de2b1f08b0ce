//! Static checks of a version's `openAPIV3Schema`: upstream's OpenAPI
//! restrictions for CRDs (no `$ref`, no `uniqueItems`, list/map extension
//! rules, ...) and its *structural* invariants (every node typed, metadata
//! only constraining name/generateName, value validations under
//! `allOf`/`anyOf`/`oneOf`/`not` not shaping anything). Structural schemas
//! are what make pruning, defaulting and server-side apply well defined,
//! which is why upstream requires them for `apiextensions.k8s.io/v1`.
//!
//! The walk is over the raw JSON (so keywords the compiled form ignores,
//! like `$ref`, are still seen) and is depth-capped.

use serde_json::{Map, Value, json};
use skiff_apimachinery::{FieldError, Path};

use crate::schema::{MAX_SCHEMA_DEPTH, Pattern, Structural};

const OPENAPI_V3_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// Keywords allowed at the root when the status subresource is enabled
/// (so that extracting `properties[status]` loses no validation).
const ALLOWED_AT_ROOT_WITH_STATUS: &[&str] = &[
    "description",
    "type",
    "format",
    "title",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "required",
    "items",
    "properties",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
];
const ALLOWED_AT_ROOT_MSG: &str = "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled";

/// Where a node sits, for the "type must not be empty ..." wording.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// What the surrounding context allows (upstream's `specStandardValidator`).
#[derive(Clone)]
struct Ctx {
    defaults_forbidden: Option<String>,
    inside_resource_meta: bool,
}

/// Checks `schema` found at `path` (`spec.versions[0].schema.openAPIV3Schema`).
pub fn check_schema(schema: &Value, status_enabled: bool, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(obj) = schema.as_object() else {
        errs.push(FieldError::invalid(
            path,
            schema.clone(),
            "must be an object",
        ));
        return errs;
    };
    if status_enabled {
        root_with_status(obj, path, &mut errs);
    }
    if obj.get("nullable") == Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden(
            &path.child("nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let ctx = Ctx {
        defaults_forbidden: None,
        inside_resource_meta: false,
    };
    openapi_rules(schema, path, &ctx, true, 0, &mut errs);

    let mut structural = Vec::new();
    structural_invariants(schema, Level::Root, path, 0, &mut structural);
    completeness(schema, path, 0, &mut structural);
    structural.sort_by_key(ToString::to_string);
    errs.extend(structural);

    match Structural::from_schema(schema) {
        Err(e) => {
            if errs.is_empty() {
                errs.push(FieldError::invalid(path, "", e.to_string()));
            }
        }
        Ok(s) => {
            if errs.is_empty() {
                defaults(&s, schema, path, true, 0, &mut errs);
            }
        }
    }
    errs
}

fn root_with_status(obj: &Map<String, Value>, path: &Path, errs: &mut Vec<FieldError>) {
    for (k, v) in obj {
        if is_zero(v) {
            continue;
        }
        if k == "type" {
            if v.as_str() != Some("object") {
                errs.push(FieldError::invalid(
                    &path.child("type"),
                    v.clone(),
                    "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                ));
                return;
            }
            continue;
        }
        if !ALLOWED_AT_ROOT_WITH_STATUS.contains(&k.as_str()) {
            errs.push(FieldError::invalid(
                path,
                Value::Object(obj.clone()),
                ALLOWED_AT_ROOT_MSG,
            ));
            return;
        }
    }
}

/// Go's zero values: what upstream's reflection skips.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(_) => false,
    }
}

fn str_of<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

fn is_true(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key) == Some(&Value::Bool(true))
}

fn props(obj: &Map<String, Value>) -> Option<&Map<String, Value>> {
    obj.get("properties").and_then(Value::as_object)
}

fn too_deep(path: &Path, errs: &mut Vec<FieldError>) {
    errs.push(FieldError::forbidden(
        path,
        format!("must not be nested deeper than {MAX_SCHEMA_DEPTH} levels"),
    ));
}

/// Upstream's `ValidateCustomResourceDefinitionOpenAPISchema` (minus CEL).
fn openapi_rules(
    schema: &Value,
    path: &Path,
    ctx: &Ctx,
    is_root: bool,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    if depth > MAX_SCHEMA_DEPTH {
        too_deep(path, errs);
        return;
    }
    let Some(obj) = schema.as_object() else {
        if !schema.is_null() {
            errs.push(FieldError::invalid(
                path,
                schema.clone(),
                "must be an object",
            ));
        }
        return;
    };
    standard(obj, path, ctx, errs);

    if is_true(obj, "uniqueItems") {
        errs.push(FieldError::forbidden(
            &path.child("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let embedded = is_true(obj, "x-kubernetes-embedded-resource");
    let properties = props(obj);
    if let Some(ap) = obj.get("additionalProperties").filter(|v| !v.is_null()) {
        if properties.is_some_and(|p| !p.is_empty()) && ap != &Value::Bool(true) {
            errs.push(FieldError::forbidden(
                &path.child("additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if ap.is_object() {
            let mut sub = ctx.clone();
            if ctx.inside_resource_meta {
                sub.defaults_forbidden =
                    Some("inside additionalProperties applying to object metadata".to_string());
            }
            openapi_rules(
                ap,
                &path.child("additionalProperties"),
                &sub,
                false,
                depth + 1,
                errs,
            );
        }
    }
    if let Some(p) = properties {
        for (k, v) in p {
            let mut sub = ctx.clone();
            if (is_root || embedded) && matches!(k.as_str(), "metadata" | "kind" | "apiVersion") {
                sub.inside_resource_meta = true;
                if is_root {
                    sub.defaults_forbidden = Some(format!("in top-level {k}"));
                }
            }
            openapi_rules(
                v,
                &path.child("properties").key(k),
                &sub,
                false,
                depth + 1,
                errs,
            );
        }
    }
    if let Some(not) = obj.get("not") {
        openapi_rules(not, &path.child("not"), ctx, false, depth + 1, errs);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(list)) = obj.get(key) {
            for (i, v) in list.iter().enumerate() {
                openapi_rules(v, &path.child(key).index(i), ctx, false, depth + 1, errs);
            }
        }
    }
    if let Some(items) = obj.get("items") {
        match items {
            Value::Array(list) => {
                for (i, v) in list.iter().enumerate() {
                    openapi_rules(
                        v,
                        &path.child("items").index(i),
                        ctx,
                        false,
                        depth + 1,
                        errs,
                    );
                }
            }
            other => openapi_rules(other, &path.child("items"), ctx, false, depth + 1, errs),
        }
    }
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            &path.child("x-kubernetes-preserve-unknown-fields"),
            false,
            "must be true or undefined",
        ));
    }
    list_and_map_types(obj, path, errs);
}

/// Upstream's `specStandardValidatorV3.validate`: keywords CRDs reject.
fn standard(obj: &Map<String, Value>, path: &Path, ctx: &Ctx, errs: &mut Vec<FieldError>) {
    match obj.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => {
            if !t.is_empty() && !OPENAPI_V3_TYPES.contains(&t.as_str()) {
                errs.push(FieldError::not_supported(
                    &path.child("type"),
                    t.as_str(),
                    OPENAPI_V3_TYPES,
                ));
            }
            if t == "null" {
                errs.push(FieldError::forbidden(
                    &path.child("type"),
                    "type cannot be set to null, use nullable as an alternative",
                ));
            }
        }
        Some(other) => errs.push(FieldError::type_invalid(
            &path.child("type"),
            other,
            "string",
        )),
    }
    if obj.contains_key("default")
        && let Some(reason) = &ctx.defaults_forbidden
    {
        errs.push(FieldError::forbidden(
            &path.child("default"),
            format!("must not be set {reason}"),
        ));
    }
    if !str_of(obj, "id").is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("id"),
            "id is not supported",
        ));
    }
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    let non_empty = |k: &str| obj.get(k).is_some_and(|v| !is_zero(v));
    if present("additionalItems") {
        errs.push(FieldError::forbidden(
            &path.child("additionalItems"),
            "additionalItems is not supported",
        ));
    }
    if non_empty("patternProperties") {
        errs.push(FieldError::forbidden(
            &path.child("patternProperties"),
            "patternProperties is not supported",
        ));
    }
    if non_empty("definitions") {
        errs.push(FieldError::forbidden(
            &path.child("definitions"),
            "definitions is not supported",
        ));
    }
    if present("dependencies") {
        errs.push(FieldError::forbidden(
            &path.child("dependencies"),
            "dependencies is not supported",
        ));
    }
    if present("$ref") {
        errs.push(FieldError::forbidden(
            &path.child("$ref"),
            "$ref is not supported",
        ));
    }
    if obj.get("items").is_some_and(Value::is_array) {
        errs.push(FieldError::forbidden(
            &path.child("items"),
            "items must be a schema object and not an array",
        ));
    }
    if ctx.inside_resource_meta && is_true(obj, "x-kubernetes-embedded-resource") {
        errs.push(FieldError::forbidden(
            &path.child("x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
}

/// `x-kubernetes-list-type`, `-list-map-keys`, `-map-type` rules.
fn list_and_map_types(obj: &Map<String, Value>, path: &Path, errs: &mut Vec<FieldError>) {
    let ty = str_of(obj, "type");
    let map_type = obj.get("x-kubernetes-map-type").and_then(Value::as_str);
    let list_type = obj.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = obj
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let items = obj.get("items").and_then(Value::as_object);

    if let Some(mt) = map_type {
        if ty != "object" {
            let msg = "must be object if x-kubernetes-map-type is specified";
            errs.push(if ty.is_empty() {
                FieldError::required(&path.child("type"), msg)
            } else {
                FieldError::invalid(&path.child("type"), ty, msg)
            });
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                &path.child("x-kubernetes-map-type"),
                mt,
                &["atomic", "granular"],
            ));
        }
    }
    if let Some(lt) = list_type {
        if ty != "array" {
            let msg = "must be array if x-kubernetes-list-type is specified";
            errs.push(if ty.is_empty() {
                FieldError::required(&path.child("type"), msg)
            } else {
                FieldError::invalid(&path.child("type"), ty, msg)
            });
        } else if lt == "set"
            && let Some(is) = items
        {
            match str_of(is, "type") {
                "array" => {
                    if let Some(ilt) = is.get("x-kubernetes-list-type").and_then(Value::as_str)
                        && ilt != "atomic"
                    {
                        errs.push(FieldError::invalid(
                            &path.child("items").child("x-kubernetes-list-type"),
                            ilt,
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ));
                    }
                }
                "object"
                    if is.get("x-kubernetes-map-type").and_then(Value::as_str)
                        != Some("atomic") =>
                {
                    errs.push(FieldError::invalid(
                        &path.child("items").child("x-kubernetes-map-type"),
                        Value::Null,
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
                _ => {}
            }
        }
        if !matches!(lt, "atomic" | "set" | "map") {
            errs.push(FieldError::not_supported(
                &path.child("x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            ));
        }
    }
    if !keys.is_empty() {
        let msg = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type {
            None => errs.push(FieldError::required(
                &path.child("x-kubernetes-list-type"),
                msg,
            )),
            Some("map") => {}
            Some(lt) => errs.push(FieldError::invalid(
                &path.child("x-kubernetes-list-type"),
                lt,
                msg,
            )),
        }
    }
    if list_type == Some("map") {
        if keys.is_empty() {
            errs.push(FieldError::required(
                &path.child("x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match items {
            None => errs.push(FieldError::required(
                &path.child("items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(is) if str_of(is, "type") != "object" => errs.push(FieldError::invalid(
                &path.child("items").child("type"),
                str_of(is, "type"),
                "must be object if parent array's x-kubernetes-list-type is map",
            )),
            Some(is) => {
                let item_props = props(is);
                let mut seen = Vec::new();
                for k in &keys {
                    match item_props
                        .and_then(|p| p.get(*k))
                        .and_then(Value::as_object)
                    {
                        Some(kp) => {
                            if matches!(str_of(kp, "type"), "array" | "object") {
                                errs.push(FieldError::invalid(
                                    &path.child("items").child("properties").key(k).child("type"),
                                    "object",
                                    "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                ));
                            }
                        }
                        None => errs.push(FieldError::invalid(
                            &path.child("x-kubernetes-list-map-keys"),
                            json!(keys),
                            "entries must all be names of item properties",
                        )),
                    }
                    if seen.contains(k) {
                        errs.push(FieldError::invalid(
                            &path.child("x-kubernetes-list-map-keys"),
                            json!(keys),
                            "must not contain duplicate entries",
                        ));
                    }
                    seen.push(*k);
                }
            }
        }
    }
    // set and map list items: not nullable; map keys required or defaulted
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, items) {
        if is_true(is, "nullable") {
            errs.push(FieldError::forbidden(
                &path.child("items").child("nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            let required: Vec<&str> = is
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for k in &keys {
                let Some(kp) = props(is).and_then(|p| p.get(*k)).and_then(Value::as_object) else {
                    continue;
                };
                let at = path.child("items").child("properties").key(k);
                if !required.contains(k) && !kp.contains_key("default") {
                    errs.push(FieldError::required(
                        &at.child("default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if is_true(kp, "nullable") {
                    errs.push(FieldError::forbidden(
                        &at.child("nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

fn int_or_string_any_of(v: Option<&Value>) -> bool {
    v == Some(&json!([{"type": "integer"}, {"type": "string"}]))
}

/// Upstream's `validateStructuralInvariants`.
fn structural_invariants(
    schema: &Value,
    lvl: Level,
    path: &Path,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    if depth > MAX_SCHEMA_DEPTH {
        return; // reported by openapi_rules
    }
    let Some(obj) = schema.as_object() else {
        return;
    };
    let ty = str_of(obj, "type");
    let embedded = is_true(obj, "x-kubernetes-embedded-resource");
    let preserve = is_true(obj, "x-kubernetes-preserve-unknown-fields");
    let int_or_string = is_true(obj, "x-kubernetes-int-or-string");

    if ty == "array" && obj.get("items").is_none_or(Value::is_null) {
        errs.push(FieldError::required(
            &path.child("items"),
            "must be specified",
        ));
    }
    if let Some(items @ Value::Object(_)) = obj.get("items") {
        structural_invariants(items, Level::Item, &path.child("items"), depth + 1, errs);
    }
    if let Some(p) = props(obj) {
        for (k, v) in p {
            structural_invariants(
                v,
                Level::Field,
                &path.child("properties").key(k),
                depth + 1,
                errs,
            );
        }
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| !v.is_null()) {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                &path.child("additionalProperties"),
                "must not be used at the root",
            ));
        }
        if ap.is_object() {
            structural_invariants(
                ap,
                Level::Field,
                &path.child("additionalProperties"),
                depth + 1,
                errs,
            );
        }
    }
    if int_or_string && preserve {
        errs.push(FieldError::invalid(
            &path.child("x-kubernetes-preserve-unknown-fields"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid(
            &path.child("x-kubernetes-embedded-resource"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }

    let skip_any_of = int_or_string_any_of(obj.get("anyOf"));
    let skip_first_all_of_any_of = obj
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|first| int_or_string_any_of(first.get("anyOf")));
    value_validation(
        obj,
        skip_any_of,
        skip_first_all_of_any_of,
        path,
        depth,
        errs,
    );

    if embedded && ty != "object" {
        let msg = "must be object if x-kubernetes-embedded-resource is true";
        errs.push(if ty.is_empty() {
            FieldError::required(&path.child("type"), msg)
        } else {
            FieldError::invalid(&path.child("type"), ty, msg)
        });
    } else if ty.is_empty() && !int_or_string && !preserve {
        let msg = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(&path.child("type"), msg));
    }
    if embedded
        && obj
            .get("additionalProperties")
            .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            &path.child("additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid(
            &path.child("type"),
            ty,
            "must be object at the root",
        ));
    }
    let check_metadata = lvl == Level::Root || embedded;
    if let Some(p) = props(obj).filter(|_| check_metadata) {
        for (key, want) in [
            ("kind", "string"),
            ("apiVersion", "string"),
            ("metadata", "object"),
        ] {
            if let Some(sub) = p.get(key).and_then(Value::as_object) {
                let t = str_of(sub, "type");
                if t != want {
                    errs.push(FieldError::invalid(
                        &path.child("properties").key(key).child("type"),
                        t,
                        format!("must be {want}"),
                    ));
                }
            }
        }
    }
    if lvl == Level::Root
        && let Some(meta) = props(obj)
            .and_then(|p| p.get("metadata"))
            .and_then(Value::as_object)
        && !metadata_only_names(meta)
    {
        errs.push(FieldError::forbidden(
                    &path.child("properties").key("metadata"),
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
    }
    if embedded && !preserve && props(obj).is_none_or(Map::is_empty) {
        errs.push(FieldError::required(
            &path.child("properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// Whether a root `metadata` schema restricts only `name`/`generateName`.
fn metadata_only_names(meta: &Map<String, Value>) -> bool {
    meta.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v
            .as_object()
            .is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
        _ => is_zero(v),
    })
}

/// Upstream's `validateValueValidation`: junctors hold value validations
/// only, and patterns must compile.
fn value_validation(
    obj: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &Path,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    if !skip_any_of {
        for_each_in(obj, "anyOf", |i, v| {
            nested(v, false, &path.child("anyOf").index(i), depth + 1, errs)
        });
    }
    for_each_in(obj, "allOf", |i, v| {
        nested(
            v,
            skip_first_all_of_any_of && i == 0,
            &path.child("allOf").index(i),
            depth + 1,
            errs,
        )
    });
    for_each_in(obj, "oneOf", |i, v| {
        nested(v, false, &path.child("oneOf").index(i), depth + 1, errs)
    });
    if let Some(not) = obj.get("not").filter(|v| !v.is_null()) {
        nested(not, false, &path.child("not"), depth + 1, errs);
    }
    if let Some(p) = obj.get("pattern").and_then(Value::as_str)
        && let Err(e) = Pattern::new(p)
    {
        errs.push(FieldError::invalid(
            &path.child("pattern"),
            p,
            format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
}

fn for_each_in(obj: &Map<String, Value>, key: &str, mut f: impl FnMut(usize, &Value)) {
    if let Some(Value::Array(list)) = obj.get(key) {
        for (i, v) in list.iter().enumerate() {
            f(i, v);
        }
    }
}

/// Upstream's `validateNestedValueValidation`.
fn nested(
    schema: &Value,
    skip_any_of: bool,
    path: &Path,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    let Some(obj) = schema.as_object() else {
        return;
    };
    value_validation(obj, skip_any_of, false, path, depth, errs);
    if let Some(items @ Value::Object(_)) = obj.get("items") {
        nested(items, false, &path.child("items"), depth + 1, errs);
    }
    if let Some(p) = props(obj) {
        for (k, v) in p {
            nested(v, false, &path.child("properties").key(k), depth + 1, errs);
        }
        if p.contains_key("metadata") {
            errs.push(FieldError::forbidden(
                &path.child("properties").key("metadata"),
                "must not be specified in a nested context",
            ));
        }
    }
    let forbidden: [(&str, &str); 11] = [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
    ];
    for (k, msg) in forbidden {
        let set = match (k, obj.get(k)) {
            (_, None | Some(Value::Null)) => false,
            ("additionalProperties" | "default" | "x-kubernetes-list-type", Some(_)) => true,
            (_, Some(v)) => !is_zero(v),
        };
        if set {
            errs.push(FieldError::forbidden(&path.child(k), msg));
        }
    }
}

/// Upstream's `validateStructuralCompleteness`: whatever a value validation
/// talks about (properties, items) must also exist in the structural part.
fn completeness(schema: &Value, path: &Path, depth: usize, errs: &mut Vec<FieldError>) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    let Some(obj) = schema.as_object() else {
        return;
    };
    let mut check = |key: &str, i: Option<usize>, v: &Value| {
        let vpath = match i {
            Some(i) => path.child(key).index(i),
            None => path.child(key),
        };
        nested_completeness(v, Some(schema), path, &vpath, depth + 1, errs);
    };
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = obj.get(key) {
            for (i, v) in list.iter().enumerate() {
                check(key, Some(i), v);
            }
        }
    }
    if let Some(not) = obj.get("not").filter(|v| !v.is_null()) {
        check("not", None, not);
    }
    if let Some(items @ Value::Object(_)) = obj.get("items") {
        completeness(items, &path.child("items"), depth + 1, errs);
    }
    if let Some(p) = props(obj) {
        for (k, v) in p {
            completeness(v, &path.child("properties").key(k), depth + 1, errs);
        }
    }
    if let Some(ap @ Value::Object(_)) = obj.get("additionalProperties") {
        completeness(ap, &path.child("additionalProperties"), depth + 1, errs);
    }
}

fn nested_completeness(
    v: &Value,
    s: Option<&Value>,
    spath: &Path,
    vpath: &Path,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    let Some(vobj) = v.as_object() else { return };
    let Some(sobj) = s.and_then(Value::as_object) else {
        errs.push(FieldError::required(
            spath,
            format!("because it is defined in {vpath}"),
        ));
        return;
    };
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = vobj.get(key) {
            for (i, sub) in list.iter().enumerate() {
                nested_completeness(sub, s, spath, &vpath.child(key).index(i), depth + 1, errs);
            }
        }
    }
    if let Some(not) = vobj.get("not").filter(|x| !x.is_null()) {
        nested_completeness(not, s, spath, &vpath.child("not"), depth + 1, errs);
    }
    if let Some(items @ Value::Object(_)) = vobj.get("items") {
        nested_completeness(
            items,
            sobj.get("items").filter(|x| x.is_object()),
            &spath.child("items"),
            &vpath.child("items"),
            depth + 1,
            errs,
        );
    }
    if let Some(p) = props(vobj) {
        let sprops = props(sobj);
        let ap = sobj.get("additionalProperties").filter(|x| x.is_object());
        for (k, sub) in p {
            let target = sprops.and_then(|sp| sp.get(k)).or(ap);
            let sp = if sprops.and_then(|sp| sp.get(k)).is_some() || ap.is_none() {
                spath.child("properties").key(k)
            } else {
                spath.child("additionalProperties")
            };
            nested_completeness(
                sub,
                target,
                &sp,
                &vpath.child("properties").key(k),
                depth + 1,
                errs,
            );
        }
    }
}

/// Upstream's `ValidateDefaults`: every `default` must validate against
/// its own schema and survive pruning unchanged.
fn defaults(
    s: &Structural,
    raw: &Value,
    path: &Path,
    is_root: bool,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    if let Some(d) = &s.default {
        let at = path.child("default");
        let mut pruned = d.clone();
        let removed = if s.embedded_resource {
            s.prune(&mut pruned)
        } else {
            s.prune_value(&mut pruned)
        };
        if !removed.is_empty() {
            errs.push(FieldError::invalid(
                &at,
                d.clone(),
                "must not have unknown fields",
            ));
        }
        errs.extend(s.validate_at(d, &at));
    }
    let raw_props = raw.get("properties");
    for (k, p) in &s.properties {
        // top-level metadata defaults are rejected by openapi_rules already
        if is_root && k == "metadata" {
            continue;
        }
        let raw_p = raw_props.and_then(|rp| rp.get(k)).unwrap_or(&Value::Null);
        defaults(
            p,
            raw_p,
            &path.child("properties").key(k),
            false,
            depth + 1,
            errs,
        );
    }
    if let (Some(items), Some(raw_items)) = (&s.items, raw.get("items")) {
        defaults(
            items,
            raw_items,
            &path.child("items"),
            false,
            depth + 1,
            errs,
        );
    }
    if let (Some(ap), Some(raw_ap)) = (s.additional_schema(), raw.get("additionalProperties")) {
        defaults(
            ap,
            raw_ap,
            &path.child("additionalProperties"),
            false,
            depth + 1,
            errs,
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msgs(schema: Value) -> Vec<String> {
        check_schema(
            &schema,
            false,
            &Path::new("spec.versions[0].schema.openAPIV3Schema"),
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    const P: &str = "spec.versions[0].schema.openAPIV3Schema";

    #[test]
    fn good_schema_passes() {
        assert!(msgs(json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1, "minimum": 1},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }}))
        .is_empty());
    }

    #[test]
    fn missing_types() {
        assert_eq!(
            msgs(
                json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}},
                "list": {"type": "array", "items": {}}}})
            ),
            vec![
                format!(
                    "{P}.properties[list].items.type: Required value: must not be empty for specified array items"
                ),
                format!(
                    "{P}.properties[spec].type: Required value: must not be empty for specified object fields"
                ),
            ]
        );
        assert_eq!(
            msgs(json!({"properties": {}})),
            vec![format!(
                "{P}.type: Required value: must not be empty at the root"
            )]
        );
        assert_eq!(
            msgs(json!({"type": "string"})),
            vec![format!(
                "{P}.type: Invalid value: \"string\": must be object at the root"
            )]
        );
    }

    #[test]
    fn openapi_restrictions() {
        let m = msgs(json!({"type": "object", "properties": {
            "a": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "b": {"$ref": "#/definitions/x", "type": "string"},
            "c": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
            "d": {"type": "string", "x-kubernetes-list-type": "set"}
        }}));
        assert!(m.contains(&format!("{P}.properties[a].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive")), "{m:?}");
        assert!(m.contains(&format!(
            "{P}.properties[b].$ref: Forbidden: $ref is not supported"
        )));
        assert!(m.contains(&format!("{P}.properties[c].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic")));
        assert!(m.contains(&format!("{P}.properties[d].type: Invalid value: \"string\": must be array if x-kubernetes-list-type is specified")));
    }

    #[test]
    fn metadata_restrictions() {
        assert_eq!(
            msgs(
                json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}})
            ),
            vec![format!(
                "{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            )]
        );
        assert_eq!(
            msgs(
                json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}})
            ),
            vec![format!(
                "{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata"
            )]
        );
    }

    #[test]
    fn nested_value_validations() {
        let m = msgs(
            json!({"type": "object", "properties": {"a": {"type": "string",
            "anyOf": [{"type": "string", "description": "x"}]}}}),
        );
        assert_eq!(
            m,
            vec![
                format!(
                    "{P}.properties[a].anyOf[0].description: Forbidden: must be empty to be structural"
                ),
                format!(
                    "{P}.properties[a].anyOf[0].type: Forbidden: must be empty to be structural"
                ),
            ]
        );
        let m = msgs(
            json!({"type": "object", "properties": {"a": {"type": "object",
            "anyOf": [{"properties": {"x": {"minLength": 1}}}]}}}),
        );
        assert_eq!(
            m,
            vec![format!(
                "{P}.properties[a].properties[x]: Required value: because it is defined in {P}.properties[a].anyOf[0].properties[x]"
            )]
        );
    }

    #[test]
    fn defaults_are_validated_and_pruned() {
        let m = msgs(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": "one"},
                "obj": {"type": "object", "default": {"zzz": 1}, "properties": {"a": {"type": "string"}}}
            }}}}),
        );
        assert_eq!(
            m,
            vec![
                format!(
                    "{P}.properties[spec].properties[obj].default: Invalid value: {{\"zzz\":1}}: must not have unknown fields"
                ),
                format!(
                    "{P}.properties[spec].properties[replicas].default: Invalid value: \"string\": {P}.properties[spec].properties[replicas].default in body must be of type integer: \"string\""
                ),
            ]
        );
    }

    #[test]
    fn status_root_restrictions_and_bad_patterns() {
        let errs = check_schema(
            &json!({"type": "object", "minProperties": 1, "properties": {"a": {"type": "string", "pattern": "("}}}),
            true,
            &Path::new(P),
        );
        let m: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(m[0].starts_with(&format!("{P}: Invalid value: ")));
        assert!(m[0].ends_with(
            "fields are allowed at the root of the schema if the status subresource is enabled"
        ));
        assert!(m[1].starts_with(&format!("{P}.properties[a].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: ")));
    }

    #[test]
    fn hostile_depth_is_reported_not_overflowed() {
        let mut s = json!({"type": "string"});
        for _ in 0..1000 {
            s = json!({"type": "object", "properties": {"a": s}});
        }
        let errs = check_schema(&s, false, &Path::new(P));
        assert!(errs.iter().any(|e| e.message.contains("nested deeper")));
        // dropping a deep Value recurses; leak it to keep the test about us
        std::mem::forget(s);
    }
}
