//! Whether a webhook is interested in a request: its `rules` (operations,
//! groups, versions, resources with `*` and `resource/subresource`, scope),
//! then its `objectSelector` and `namespaceSelector`.

use std::collections::BTreeMap;

use serde_json::Value;
use skiff_apimachinery::selectors::LabelSelector;

/// What a request is, as rules see it.
pub struct Request<'a> {
    pub operation: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespaced: bool,
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn has(list: &[&str], item: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == item)
}

fn resource_matches(patterns: &[&str], resource: &str, subresource: &str) -> bool {
    patterns.iter().any(|p| {
        let (res, sub) = p.split_once('/').unwrap_or((p, ""));
        let res_ok = res == "*" || res == resource;
        let sub_ok = if subresource.is_empty() {
            sub.is_empty()
        } else {
            sub == "*" || sub == subresource
        };
        res_ok && sub_ok && !(res == "*" && sub.is_empty() && !subresource.is_empty())
    })
}

/// Whether one of `rules` covers the request.
pub fn rules_match(rules: &Value, req: &Request<'_>) -> bool {
    rules.as_array().into_iter().flatten().any(|rule| {
        let scope = rule.get("scope").and_then(Value::as_str).unwrap_or("*");
        let scope_ok = match scope {
            "Cluster" => !req.namespaced,
            "Namespaced" => req.namespaced,
            _ => true,
        };
        scope_ok
            && has(&strings(rule.get("operations")), req.operation)
            && has(&strings(rule.get("apiGroups")), req.group)
            && has(&strings(rule.get("apiVersions")), req.version)
            && resource_matches(
                &strings(rule.get("resources")),
                req.resource,
                req.subresource,
            )
    })
}

pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Whether a selector (absent: everything) selects `labels`; an invalid
/// one selects nothing.
pub fn selects(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    match selector {
        None | Some(Value::Null) => true,
        Some(s) => LabelSelector::from_json(s).is_ok_and(|s| s.matches(labels)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_cover_operations_resources_and_scope() {
        let rules = json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": ["pods"], "scope": "Namespaced"}]);
        let mut req = Request {
            operation: "CREATE",
            group: "",
            version: "v1",
            resource: "pods",
            subresource: "",
            namespaced: true,
        };
        assert!(rules_match(&rules, &req));
        req.operation = "UPDATE";
        assert!(!rules_match(&rules, &req));
        req.operation = "CREATE";
        req.subresource = "status";
        assert!(!rules_match(&rules, &req));
        let any = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}]);
        assert!(rules_match(&any, &req));
        let top = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]);
        assert!(!rules_match(&top, &req));
        assert!(selects(None, &BTreeMap::new()));
    }
}
