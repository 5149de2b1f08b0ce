//! Validation of a CustomResourceDefinition itself, as upstream's
//! `ValidateCustomResourceDefinition` / `...Update` do for
//! `apiextensions.k8s.io/v1`: naming, group and scope, versions, schemas
//! (OpenAPI restrictions, structural invariants, defaults), subresources,
//! printer columns, conversion, stored versions, and what may not change.
//!
//! Call [`default_definition`] first (as upstream defaults before it
//! validates): `singular` and `listKind` are derived from `kind` there and
//! are required afterwards. The generic `metadata` checks every kind gets
//! (name syntax, labels, ...) are the server's job, not this module's; here
//! only the CRD-specific name rule is checked.

mod columns;
mod jsonpath_rules;
mod names;
mod schema_rules;
mod subresources;

use serde_json::{Value, json};
use skiff_apimachinery::{FieldError, Path, names as dns};

pub use columns::{COLUMN_FORMATS, COLUMN_TYPES, validate_column};
pub use names::validate_names;
pub use schema_rules::check_schema;
pub use subresources::validate_subresources;

use crate::versions::{condition_true, versions};

/// Applies upstream's v1 defaults to a CRD: `spec.names.singular` =
/// lowercased kind, `spec.names.listKind` = kind + `List`,
/// `spec.conversion.strategy` = `None`.
pub fn default_definition(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let empty = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
        if !kind.is_empty() {
            if empty(names.get("singular")) {
                names.insert("singular".into(), Value::from(kind.to_lowercase()));
            }
            if empty(names.get("listKind")) {
                names.insert("listKind".into(), Value::from(format!("{kind}List")));
            }
        }
    }
    match spec.get_mut("conversion") {
        Some(Value::Object(c)) => {
            if c.get("strategy")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                c.insert("strategy".into(), Value::from("None"));
            }
        }
        _ => {
            spec.insert("conversion".into(), json!({"strategy": "None"}));
        }
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Validates a (defaulted) CRD on create (`old` = `None`) or update.
pub fn validate_definition(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = crd.get("spec").unwrap_or(&Value::Null);
    let names = spec.get("names").unwrap_or(&Value::Null);
    let plural = s(names, "plural");
    let group = s(spec, "group");

    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !name.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            &Path::new("metadata").child("name"),
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let sp = Path::new("spec");
    if !spec.is_object() {
        errs.push(FieldError::required(&sp, ""));
        return errs;
    }
    validate_spec(spec, old.and_then(|o| o.get("spec")), &sp, &mut errs);

    let status = crd.get("status").unwrap_or(&Value::Null);
    if let Some(accepted) = status.get("acceptedNames") {
        errs.extend(validate_names(
            accepted,
            &Path::new("status").child("acceptedNames"),
        ));
    }
    if let Some(stored) = status.get("storedVersions") {
        stored_versions(spec, stored, &mut errs);
    }

    if let Some(old) = old {
        update_rules(spec, old, &sp, &mut errs);
    }
    errs
}

fn validate_spec(spec: &Value, old_spec: Option<&Value>, sp: &Path, errs: &mut Vec<FieldError>) {
    let group = s(spec, "group");
    if group.is_empty() {
        errs.push(FieldError::required(&sp.child("group"), ""));
    } else {
        let problems = dns::dns1123_subdomain(group);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                &sp.child("group"),
                group,
                problems.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                &sp.child("group"),
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match s(spec, "scope") {
        "" => errs.push(FieldError::required(&sp.child("scope"), "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            &sp.child("scope"),
            other,
            &["Cluster", "Namespaced"],
        )),
    }

    // don't tighten validation for CRDs stored before schemas were required
    let require_schema = old_spec.is_none_or(|o| {
        versions(o).iter().all(|v| {
            v.pointer("/schema/openAPIV3Schema")
                .is_some_and(|x| !x.is_null())
        })
    });
    let vp = sp.child("versions");
    let list = versions(spec);
    let mut storage = 0;
    let mut seen: Vec<&str> = Vec::new();
    let mut unique = true;
    let mut has_defaults = false;
    for (i, v) in list.iter().enumerate() {
        let at = vp.index(i);
        let vname = s(v, "name");
        if v.get("storage") == Some(&Value::Bool(true)) {
            storage += 1;
        }
        if seen.contains(&vname) {
            unique = false;
        } else {
            seen.push(vname);
        }
        let problems = dns::dns1035_label(vname);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                &at.child("name"),
                vname,
                problems.join(","),
            ));
        }
        version_rules(v, &at, require_schema, errs);
        has_defaults |= v
            .pointer("/schema/openAPIV3Schema")
            .is_some_and(schema_has_defaults);
    }
    if !unique {
        errs.push(FieldError::invalid(
            &vp,
            Value::Array(list.iter().map(|v| (*v).clone()).collect()),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            &vp,
            Value::Array(list.iter().map(|v| (*v).clone()).collect()),
            "must have exactly one version marked as storage version",
        ));
    }

    let np = sp.child("names");
    let names = spec.get("names").unwrap_or(&Value::Null);
    for key in ["plural", "singular", "kind", "listKind"] {
        if s(names, key).is_empty() {
            errs.push(FieldError::required(&np.child(key), ""));
        }
    }
    errs.extend(validate_names(names, &np));

    if spec.get("preserveUnknownFields") == Some(&Value::Bool(true)) {
        if has_defaults {
            errs.push(FieldError::invalid(
                &sp.child("preserveUnknownFields"),
                true,
                "must be false in order to use defaults in the schema",
            ));
        }
        errs.push(FieldError::invalid(
            &sp.child("preserveUnknownFields"),
            true,
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    conversion(spec.get("conversion"), &sp.child("conversion"), errs);
}

fn schema_has_defaults(schema: &Value) -> bool {
    fn walk(v: &Value, depth: usize) -> bool {
        if depth > crate::schema::MAX_SCHEMA_DEPTH {
            return false;
        }
        match v {
            Value::Object(m) => {
                m.contains_key("default") && m.get("default").is_some_and(|d| !d.is_null())
                    || m.iter().any(|(k, x)| {
                        // `default` and `enum`/`example` values are data, not schemas
                        !matches!(k.as_str(), "default" | "enum" | "example") && walk(x, depth + 1)
                    })
            }
            Value::Array(a) => a.iter().any(|x| walk(x, depth + 1)),
            _ => false,
        }
    }
    walk(schema, 0)
}

fn version_rules(v: &Value, at: &Path, require_schema: bool, errs: &mut Vec<FieldError>) {
    let deprecated = v.get("deprecated") == Some(&Value::Bool(true));
    if let Some(w) = v.get("deprecationWarning").and_then(Value::as_str) {
        let wp = at.child("deprecationWarning");
        if !deprecated {
            errs.push(FieldError::invalid(
                &wp,
                w,
                "can only be set for deprecated versions",
            ));
        } else {
            if w.len() > 256 {
                errs.push(FieldError::invalid(
                    &wp,
                    w,
                    "must be <= 256 characters long",
                ));
            }
            if w.is_empty() {
                errs.push(FieldError::invalid(&wp, w, "must not be an empty string"));
            }
            if let Some((i, _)) = w.char_indices().find(|(_, c)| c.is_control()) {
                errs.push(FieldError::invalid(
                    &wp,
                    w,
                    format!("must only contain printable UTF-8 characters; control character found at index {i}"),
                ));
            }
        }
    }
    let subresources = v.get("subresources").unwrap_or(&Value::Null);
    let status_enabled = subresources.get("status").is_some_and(|x| !x.is_null());
    let schema_path = at.child("schema").child("openAPIV3Schema");
    match v
        .pointer("/schema/openAPIV3Schema")
        .filter(|x| !x.is_null())
    {
        None if require_schema => {
            errs.push(FieldError::required(&schema_path, "schemas are required"))
        }
        None => {}
        Some(schema) => errs.extend(check_schema(schema, status_enabled, &schema_path)),
    }
    errs.extend(validate_subresources(
        subresources,
        &at.child("subresources"),
    ));
    if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
        for (i, c) in cols.iter().enumerate() {
            errs.extend(validate_column(
                c,
                &at.child("additionalPrinterColumns").index(i),
            ));
        }
    }
}

fn conversion(c: Option<&Value>, cp: &Path, errs: &mut Vec<FieldError>) {
    let Some(c) = c.filter(|c| !c.is_null()) else {
        return;
    };
    let strategy = s(c, "strategy");
    match strategy {
        "" => errs.push(FieldError::required(&cp.child("strategy"), "")),
        "None" | "Webhook" => {}
        other => errs.push(FieldError::not_supported(
            &cp.child("strategy"),
            other,
            &["None", "Webhook"],
        )),
    }
    let webhook = c.get("webhook").filter(|w| !w.is_null());
    if strategy == "Webhook" {
        let wp = cp.child("webhook");
        let Some(w) = webhook else {
            errs.push(FieldError::required(
                &wp,
                "required when strategy is set to Webhook",
            ));
            return;
        };
        let cc = w.get("clientConfig").filter(|x| !x.is_null());
        match cc {
            None => errs.push(FieldError::required(
                &wp.child("clientConfig"),
                "required when strategy is set to Webhook",
            )),
            Some(cc) => {
                let has_url = cc.get("url").is_some_and(|x| !x.is_null());
                let has_svc = cc.get("service").is_some_and(|x| !x.is_null());
                if has_url == has_svc {
                    errs.push(FieldError::required(
                        &wp.child("clientConfig"),
                        "exactly one of url or service is required",
                    ));
                }
            }
        }
        let rv = w
            .get("conversionReviewVersions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default();
        let rp = wp.child("conversionReviewVersions");
        if rv.is_empty() {
            errs.push(FieldError::required(&rp, ""));
        } else if !rv.iter().any(|v| *v == "v1" || *v == "v1beta1") {
            errs.push(FieldError::invalid(
                &rp,
                json!(rv),
                "must include at least one of v1, v1beta1",
            ));
        }
    } else if webhook.is_some() {
        errs.push(FieldError::forbidden(
            &cp.child("webhook"),
            "should not be set when strategy is not set to Webhook",
        ));
    }
}

/// Upstream's `ValidateCustomResourceDefinitionStoredVersions`.
fn stored_versions(spec: &Value, stored: &Value, errs: &mut Vec<FieldError>) {
    let p = Path::new("status").child("storedVersions");
    let list: Vec<&str> = stored
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if list.is_empty() {
        errs.push(FieldError::invalid(
            &p,
            json!(list),
            "must have at least one stored version",
        ));
        return;
    }
    let spec_versions = versions(spec);
    for v in &spec_versions {
        let name = s(v, "name");
        if v.get("storage") == Some(&Value::Bool(true)) && !list.contains(&name) {
            errs.push(FieldError::invalid(
                &p,
                json!(list),
                format!("must have the storage version {name}"),
            ));
        }
    }
    for (i, sv) in list.iter().enumerate() {
        if !spec_versions.iter().any(|v| s(v, "name") == *sv) {
            errs.push(FieldError::invalid(
                &p.index(i),
                *sv,
                format!("missing from spec.versions; {sv} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {sv} and removes {sv} from status.storedVersions"),
            ));
        }
    }
}

/// What may not change: group and plural always (they make up the name
/// and the storage key), scope and kind once the CRD is established.
fn update_rules(spec: &Value, old: &Value, sp: &Path, errs: &mut Vec<FieldError>) {
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    let immutable =
        |new: Option<&Value>, old: Option<&Value>, path: &Path, errs: &mut Vec<FieldError>| {
            if new != old {
                errs.push(FieldError::invalid(
                    path,
                    new.cloned().unwrap_or(Value::Null),
                    "field is immutable",
                ));
            }
        };
    if condition_true(old, "Established") {
        immutable(
            spec.get("scope"),
            old_spec.get("scope"),
            &sp.child("scope"),
            errs,
        );
        immutable(
            spec.pointer("/names/kind"),
            old_spec.pointer("/names/kind"),
            &sp.child("names").child("kind"),
            errs,
        );
    }
    immutable(
        spec.get("group"),
        old_spec.get("group"),
        &sp.child("group"),
        errs,
    );
    immutable(
        spec.pointer("/names/plural"),
        old_spec.pointer("/names/plural"),
        &sp.child("names").child("plural"),
        errs,
    );
}
