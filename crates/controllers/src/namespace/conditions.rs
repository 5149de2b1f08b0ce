//! The conditions a terminating namespace reports, with upstream's types,
//! reasons and messages (namespace_condition_utils.go).

use serde_json::{Value, json};

use super::content::Outcome;

/// The condition types, in upstream's order.
pub const TYPES: [&str; 5] = [
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
];

/// Reason and message of a condition that is fine (status False).
fn okay(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "NamespaceDeletionDiscoveryFailure" => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        "NamespaceDeletionGroupVersionParsingFailure" => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        "NamespaceDeletionContentFailure" => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        "NamespaceContentRemaining" => ("ContentRemoved", "All content successfully removed"),
        _ => (
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    }
}

/// Errors as upstream's aggregate prints them.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The failing conditions of a pass: (type, reason, message).
pub fn failures(outcome: &Outcome) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if !outcome.discovery_errors.is_empty() {
        out.push((
            TYPES[0],
            "DiscoveryFailed",
            format!(
                "Discovery failed for some groups, {} failing: {}",
                outcome.discovery_errors.len(),
                aggregate(&outcome.discovery_errors)
            ),
        ));
    }
    if !outcome.delete_errors.is_empty() {
        out.push((
            TYPES[2],
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                outcome.delete_errors.len(),
                aggregate(&outcome.delete_errors)
            ),
        ));
    }
    let remaining: Vec<String> = outcome
        .remaining
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r} has {n} resource instances"))
        .collect();
    if !remaining.is_empty() {
        out.push((
            TYPES[3],
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", remaining.join(", ")),
        ));
    }
    let finalizers: Vec<String> = outcome
        .finalizers
        .iter()
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    if !finalizers.is_empty() {
        out.push((
            TYPES[4],
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                finalizers.join(", ")
            ),
        ));
    }
    out
}

/// `current` conditions updated with a pass's outcome (upstream's
/// updateConditions: every type present, lastTransitionTime changed only
/// with the status); `None` when nothing changed.
pub fn update(current: &[Value], outcome: &Outcome, now: &str) -> Option<Vec<Value>> {
    let failing = failures(outcome);
    let mut out: Vec<Value> = current.to_vec();
    let mut changed = false;
    for kind in TYPES {
        let (status, reason, message) = match failing.iter().find(|(t, _, _)| *t == kind) {
            Some((_, reason, message)) => ("True", *reason, message.clone()),
            None => {
                let (reason, message) = okay(kind);
                ("False", reason, message.to_owned())
            }
        };
        match out
            .iter_mut()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        {
            None => {
                out.push(json!({
                    "type": kind, "status": status, "lastTransitionTime": now,
                    "reason": reason, "message": message,
                }));
                changed = true;
            }
            Some(old) => {
                let same =
                    |field: &str, want: &str| old.get(field).and_then(Value::as_str) == Some(want);
                if same("status", status) && same("reason", reason) && same("message", &message) {
                    continue;
                }
                if !same("status", status) {
                    old["lastTransitionTime"] = json!(now);
                }
                old["status"] = json!(status);
                old["reason"] = json!(reason);
                old["message"] = json!(message);
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_as_upstream() {
        let mut outcome = Outcome::default();
        outcome.remaining.insert("widgets.example.com".into(), 2);
        outcome.remaining.insert("configmaps.".into(), 1);
        outcome.finalizers.insert("example.com/hold".into(), 2);
        outcome.estimate = 5;
        let Some(first) = update(&[], &outcome, "t1") else {
            panic!("no conditions");
        };
        assert_eq!(first.len(), 5);
        assert_eq!(first[3]["status"], "True");
        assert_eq!(
            first[3]["message"],
            "Some resources are remaining: configmaps. has 1 resource instances, widgets.example.com has 2 resource instances"
        );
        assert_eq!(
            first[4]["message"],
            "Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances"
        );
        assert_eq!(first[0]["reason"], "ResourcesDiscovered");
        assert_eq!(first[0]["status"], "False");
        assert!(update(&first, &outcome, "t2").is_none());
        let Some(done) = update(&first, &Outcome::default(), "t3") else {
            panic!("unchanged");
        };
        assert_eq!(done[3]["reason"], "ContentRemoved");
        assert_eq!(done[3]["lastTransitionTime"], "t3");
        assert_eq!(done[0]["lastTransitionTime"], "t1");
        let failed = Outcome {
            discovery_errors: vec!["a/v1: boom".into()],
            ..Outcome::default()
        };
        let Some(f) = update(&done, &failed, "t4") else {
            panic!("unchanged");
        };
        assert_eq!(
            f[0]["message"],
            "Discovery failed for some groups, 1 failing: a/v1: boom"
        );
    }
}
