//! Reading a pod spec the way the Pod Security Standards' checks do, and
//! wording their findings as upstream's PodSecurity admission does.

use serde_json::Value;

/// A check that failed: upstream's `ForbiddenReason` and
/// `ForbiddenDetail` (`reason (detail)` in the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

impl Violation {
    pub fn new(reason: &str, detail: impl Into<String>) -> Violation {
        Violation {
            reason: reason.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Every container of a pod spec: init, regular, then ephemeral ones.
pub fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .collect()
}

pub fn name(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// A field of the pod's `securityContext`.
pub fn pod_sc<'a>(spec: &'a Value, field: &str) -> Option<&'a Value> {
    spec.get("securityContext").and_then(|sc| sc.get(field))
}

/// A field of a container's `securityContext`.
pub fn container_sc<'a>(c: &'a Value, field: &str) -> Option<&'a Value> {
    c.get("securityContext").and_then(|sc| sc.get(field))
}

/// `"a", "b"` as Go's `%q` joined with `, ` (names here never need
/// escaping beyond quotes).
pub fn join_quoted<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` or `containers "a", "b"`.
pub fn pluralize<S: AsRef<str>>(singular: &str, plural: &str, items: &[S]) -> String {
    let word = if items.len() == 1 { singular } else { plural };
    format!("{word} {}", join_quoted(items))
}

/// The names of containers for which `bad` holds.
pub fn containers_where(spec: &Value, bad: impl Fn(&Value) -> bool) -> Vec<String> {
    containers(spec)
        .into_iter()
        .filter(|c| bad(c))
        .map(|c| name(c).to_owned())
        .collect()
}
