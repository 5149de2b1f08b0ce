//! Apply conflicts and the messages a client sees for them.
//!
//! The 409 Status of a refused apply carries one message summarising all
//! conflicts and one cause per conflicting field; both are worded exactly
//! as upstream's `NewConflictError` words them, since users and tools
//! (`kubectl apply --server-side` prints them verbatim) match on them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::go_format;
use crate::managed::{ManagedFieldsEntry, Operation};
use crate::path::Path;

/// A field the applier sets to a value another manager set differently.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub subresource: Option<String>,
    pub path: Path,
}

impl Conflict {
    pub(crate) fn new(owner: &ManagedFieldsEntry, path: Path) -> Conflict {
        Conflict {
            manager: owner.manager.clone(),
            operation: owner.operation,
            api_version: owner.api_version.clone(),
            subresource: owner.subresource.clone(),
            path,
        }
    }

    fn identifier(&self) -> String {
        ManagedFieldsEntry::new(
            &self.manager,
            self.operation,
            &self.api_version,
            None,
            Default::default(),
            self.subresource.as_deref(),
        )
        .identifier()
    }

    /// Upstream `printManager`: `"name"`, plus ` with subresource "s"`,
    /// plus ` using <apiVersion>` for Update managers.
    pub fn manager_description(&self) -> String {
        let mut s = go_format::quote(&self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(" with subresource ");
            s.push_str(&go_format::quote(sub));
        }
        if self.operation == Operation::Update {
            s.push_str(" using ");
            s.push_str(&self.api_version);
        }
        s
    }
}

/// The Status message: `Apply failed with 1 conflict: conflict with
/// "mgr" using v1: .spec.replicas`, or for several, one block per manager
/// (sorted by identifier) listing `- <path>` lines.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager_description(),
            only.path
        );
    }
    let mut by_manager: BTreeMap<String, (String, Vec<&Path>)> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry(c.identifier())
            .or_insert_with(|| (c.manager_description(), Vec::new()))
            .1
            .push(&c.path);
    }
    let mut lines = Vec::new();
    for (description, paths) in by_manager.values() {
        lines.push(format!("conflicts with {description}:"));
        for p in paths {
            lines.push(format!("- {p}"));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The Status `details.causes`: one `FieldManagerConflict` per conflict.
pub fn conflict_causes(conflicts: &[Conflict]) -> Vec<Value> {
    conflicts
        .iter()
        .map(|c| {
            json!({
                "type": "FieldManagerConflict",
                "message": format!("conflict with {}", c.manager_description()),
                "field": c.path.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathElement;
    use serde_json::json;

    fn conflict(manager: &str, op: Operation, path: Path) -> Conflict {
        Conflict {
            manager: manager.into(),
            operation: op,
            api_version: "apps/v1".into(),
            subresource: None,
            path,
        }
    }

    #[test]
    fn single_conflict_message() {
        let c = conflict(
            "kubectl-client-side-apply",
            Operation::Update,
            Path::fields(&["spec", "replicas"]),
        );
        assert_eq!(
            conflict_message(std::slice::from_ref(&c)),
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
        assert_eq!(
            conflict_causes(&[c]),
            vec![
                json!({"type": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"})
            ]
        );
    }

    #[test]
    fn several_conflicts_grouped_by_manager() {
        let image = Path(vec![
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key(vec![("name".into(), json!("web"))]),
            PathElement::field("image"),
        ]);
        let cs = vec![
            conflict(
                "other",
                Operation::Apply,
                Path::fields(&["spec", "replicas"]),
            ),
            conflict("kubectl", Operation::Update, image),
            conflict("other", Operation::Apply, Path::fields(&["spec", "paused"])),
        ];
        assert_eq!(
            conflict_message(&cs),
            "Apply failed with 3 conflicts: conflicts with \"kubectl\" using apps/v1:\n- .spec.containers[name=\"web\"].image\nconflicts with \"other\":\n- .spec.replicas\n- .spec.paused"
        );
        let mut status = conflict("kcm", Operation::Update, Path::fields(&["status"]));
        status.subresource = Some("status".into());
        assert_eq!(
            status.manager_description(),
            r#""kcm" with subresource "status" using apps/v1"#
        );
    }
}
