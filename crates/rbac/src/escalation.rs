//! Escalation prevention: a user may only create or bind roles granting
//! permissions they already hold (upstream's `validation.Covers` and
//! `ConfirmNoEscalation`).

use std::collections::{BTreeSet, HashMap};

use crate::policy::Policy;
use crate::quote::{go_quote, go_quote_list};
use crate::rule::{ALL, PolicyRule};
use crate::user::UserInfo;

/// Members of this group bypass escalation checks, as upstream's
/// `EscalationAllowed`. (Holders of the `escalate`/`bind` verbs on roles
/// also bypass them; check that with [`Policy::authorize`].)
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// Whether `user` may grant anything without an escalation check.
pub fn escalation_allowed(user: &UserInfo) -> bool {
    user.in_group(PRIVILEGED_GROUP)
}

/// Splits a rule into one rule per (group, resource, verb[, name]) and per
/// (URL, verb), so each piece can be checked on its own.
pub fn breakdown_rule(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    verbs: vec![verb.clone()],
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    out.extend(rule.resource_names.iter().map(|n| PolicyRule {
                        resource_names: vec![n.clone()],
                        ..base.clone()
                    }));
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: vec![url.clone()],
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

/// Whether `owner` rules grant everything `requested` does. On failure,
/// returns the broken-down pieces no owner rule covers.
pub fn covers(owner: &[PolicyRule], requested: &[PolicyRule]) -> Result<(), Vec<PolicyRule>> {
    let missing: Vec<PolicyRule> = requested
        .iter()
        .flat_map(breakdown_rule)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

/// Whether one owner rule covers one broken-down rule.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = sub
        .non_resource_urls
        .iter()
        .all(|u| owner.non_resource_urls.iter().any(|o| url_covers(o, u)));
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && urls && names
}

/// `*` covers everything; `*/sub` covers `anything/sub`.
fn resources_cover(owner: &[String], requested: &[String]) -> bool {
    if has(owner, ALL) {
        return true;
    }
    requested.iter().all(|r| {
        has(owner, r)
            || r.split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn url_covers(owner: &str, requested: &str) -> bool {
    owner == requested
        || (owner.ends_with('*') && requested.starts_with(owner.trim_end_matches('*')))
}

/// Merges rules that differ only in verbs and name a single group and
/// resource (and at most one name), to keep refusal messages short
/// (upstream's `CompactRules`).
pub fn compact_rules(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut by_key: HashMap<(String, String, Option<String>), usize> = HashMap::new();
    for rule in rules {
        let is_simple = rule.api_groups.len() == 1
            && rule.resources.len() == 1
            && rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty();
        if !is_simple {
            out.push(rule.clone());
            continue;
        }
        let key = (
            rule.api_groups[0].clone(),
            rule.resources[0].clone(),
            rule.resource_names.first().cloned(),
        );
        match by_key.get(&key) {
            Some(&i) => simple[i].verbs.extend(rule.verbs.iter().cloned()),
            None => {
                by_key.insert(key, simple.len());
                simple.push(rule.clone());
            }
        }
    }
    out.extend(simple);
    out
}

/// A refused attempt to grant permissions the user does not hold. Its
/// message is upstream's; the API server returns it as 403 Forbidden for
/// the role or binding (`roles.rbac.authorization.k8s.io "x" is forbidden: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EscalationError {
    /// The broken-down rules the user lacks.
    pub missing: Vec<PolicyRule>,
    pub message: String,
}

impl EscalationError {
    fn new(user: &UserInfo, missing: Vec<PolicyRule>, resolution_errors: &[String]) -> Self {
        let lines: BTreeSet<String> = compact_rules(&missing)
            .iter()
            .map(PolicyRule::compact_string)
            .collect();
        let mut message = format!(
            "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            go_quote(&user.name),
            go_quote_list(&user.groups),
            lines.into_iter().collect::<Vec<_>>().join("\n")
        );
        if !resolution_errors.is_empty() {
            message.push_str(&format!(
                "; resolution errors: [{}]",
                resolution_errors.join(" ")
            ));
        }
        Self { missing, message }
    }
}

impl Policy {
    /// Refuses `requested` rules that `user` does not hold in `namespace`
    /// ("" for ClusterRoles / ClusterRoleBindings). Callers skip this for
    /// [`escalation_allowed`] users and for holders of `escalate` (roles)
    /// or `bind` (bindings) on the role, as upstream.
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        requested: &[PolicyRule],
    ) -> Result<(), EscalationError> {
        let (owner, errors) = self.policy_rules_for(user, namespace);
        covers(&owner, requested).map_err(|missing| EscalationError::new(user, missing, &errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule::new(verbs).groups(groups).resources(resources)
    }

    #[test]
    fn exact_and_wildcard_owners_cover() {
        let owner = [rule(&["get", "list"], &[""], &["pods"])];
        assert_eq!(covers(&owner, &[rule(&["get"], &[""], &["pods"])]), Ok(()));
        let missing = covers(
            &owner,
            &[rule(&["get", "delete"], &[""], &["pods", "secrets"])],
        )
        .unwrap_err();
        assert_eq!(missing.len(), 3);

        let admin = [rule(&["*"], &["*"], &["*"])];
        assert_eq!(
            covers(
                &admin,
                &[rule(&["escalate"], &["x.io"], &["things/status"])]
            ),
            Ok(())
        );
        let verbs_star = [rule(&["*"], &["apps"], &["deployments"])];
        assert!(covers(&verbs_star, &[rule(&["get"], &[""], &["deployments"])]).is_err());
    }

    #[test]
    fn subresources_and_names() {
        let owner = [rule(&["get"], &[""], &["*/status", "pods"])];
        assert_eq!(
            covers(&owner, &[rule(&["get"], &[""], &["nodes/status"])]),
            Ok(())
        );
        assert!(covers(&owner, &[rule(&["get"], &[""], &["pods/log"])]).is_err());
        assert!(covers(&owner, &[rule(&["get"], &[""], &["nodes"])]).is_err());

        let named = [rule(&["get"], &[""], &["configmaps"]).names(&["a", "b"])];
        assert_eq!(
            covers(
                &named,
                &[rule(&["get"], &[""], &["configmaps"]).names(&["a"])]
            ),
            Ok(())
        );
        assert!(covers(&named, &[rule(&["get"], &[""], &["configmaps"])]).is_err());
        let unnamed = [rule(&["get"], &[""], &["configmaps"])];
        assert_eq!(
            covers(
                &unnamed,
                &[rule(&["get"], &[""], &["configmaps"]).names(&["z"])]
            ),
            Ok(())
        );
    }

    #[test]
    fn non_resource_urls() {
        let owner = [PolicyRule::new(&["get"]).urls(&["/apis/*"])];
        assert_eq!(
            covers(&owner, &[PolicyRule::new(&["get"]).urls(&["/apis/apps"])]),
            Ok(())
        );
        assert!(covers(&owner, &[PolicyRule::new(&["get"]).urls(&["/healthz"])]).is_err());
        assert!(covers(&owner, &[PolicyRule::new(&["post"]).urls(&["/apis/x"])]).is_err());
    }

    #[test]
    fn refusal_message_matches_upstream() {
        let mut policy = Policy::new();
        policy
            .upsert_object(&json!({
                "kind": "Role", "metadata": {"name": "reader", "namespace": "ns"},
                "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
            }))
            .unwrap();
        policy
            .upsert_object(&json!({
                "kind": "RoleBinding", "metadata": {"name": "bob-reader", "namespace": "ns"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "User", "name": "bob"}]
            }))
            .unwrap();
        let bob = UserInfo::new("bob", &["system:authenticated"]);
        assert_eq!(
            policy.confirm_no_escalation(&bob, "ns", &[rule(&["get"], &[""], &["pods"])]),
            Ok(())
        );
        let err = policy
            .confirm_no_escalation(
                &bob,
                "ns",
                &[rule(
                    &["get", "delete", "update"],
                    &[""],
                    &["pods", "secrets"],
                )],
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n\
             {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\" \"update\"]}\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\" \"update\"]}"
        );
        // other namespaces: bob holds nothing there
        assert!(
            policy
                .confirm_no_escalation(&bob, "other", &[rule(&["get"], &[""], &["pods"])])
                .is_err()
        );
        assert!(escalation_allowed(&UserInfo::new(
            "root",
            &["system:masters"]
        )));
        assert!(!escalation_allowed(&bob));
    }
}
