//! ClusterRole aggregation: roles with an `aggregationRule` get the union
//! of the rules of the ClusterRoles their selectors pick (upstream's
//! ClusterRoleAggregation controller).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::rule::{PolicyRule, null_as_empty};
use crate::selector::LabelSelector;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AggregationRule {
    #[serde(default, deserialize_with = "null_as_empty")]
    cluster_role_selectors: Vec<LabelSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterRole {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    aggregation_rule: Option<AggregationRule>,
    #[serde(default, deserialize_with = "null_as_empty")]
    rules: Vec<PolicyRule>,
}

/// Computes the rules each aggregated ClusterRole should have and returns
/// `(name, rules)` only for the roles whose stored rules differ, i.e. the
/// updates a controller must write. For each aggregated role the rules are
/// those of the selected roles (selector order, then role name order, then
/// rule order; the role itself excluded), exact duplicates dropped.
///
/// Aggregated roles may select other aggregated roles (`admin` selects
/// `edit`, which selects `view`); upstream converges over several controller
/// passes, here the passes run in memory until nothing changes, so one
/// call yields the final state. Malformed objects and roles with an invalid
/// selector are skipped.
pub fn aggregate(cluster_roles: &[Value]) -> Vec<(String, Vec<PolicyRule>)> {
    let mut roles: Vec<ClusterRole> = cluster_roles
        .iter()
        .filter_map(|v| ClusterRole::deserialize(v).ok())
        .filter(|r| !r.metadata.name.is_empty())
        .collect();
    roles.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let original: Vec<Vec<PolicyRule>> = roles.iter().map(|r| r.rules.clone()).collect();

    // Rules only ever grow towards the fixed point, so this terminates;
    // the bound guards against pathological inputs anyway.
    for _ in 0..=roles.len() {
        let mut changed = false;
        for i in 0..roles.len() {
            let Some(rule) = &roles[i].aggregation_rule else {
                continue;
            };
            let Some(new_rules) = union_of_selected(&roles, i, rule) else {
                continue;
            };
            if new_rules != roles[i].rules {
                roles[i].rules = new_rules;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    roles
        .into_iter()
        .zip(original)
        .filter(|(r, old)| r.aggregation_rule.is_some() && r.rules != *old)
        .map(|(r, _)| (r.metadata.name, r.rules))
        .collect()
}

/// The aggregated rules of `roles[target]`, or `None` if a selector is
/// invalid (upstream leaves such a role alone).
fn union_of_selected(
    roles: &[ClusterRole],
    target: usize,
    rule: &AggregationRule,
) -> Option<Vec<PolicyRule>> {
    let empty = BTreeMap::new();
    let mut out: Vec<PolicyRule> = Vec::new();
    for selector in &rule.cluster_role_selectors {
        for (i, role) in roles.iter().enumerate() {
            if i == target {
                continue;
            }
            let labels = role.metadata.labels.as_ref().unwrap_or(&empty);
            if !selector.matches(labels)? {
                continue;
            }
            for r in &role.rules {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(name: &str, labels: Value, rules: Value) -> Value {
        json!({"kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules})
    }

    #[test]
    fn aggregates_with_match_labels_and_expressions() {
        let get_pods = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let list_svc = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["services"]});
        let roles = vec![
            json!({
                "kind": "ClusterRole",
                "metadata": {"name": "agg"},
                "aggregationRule": {"clusterRoleSelectors": [
                    {"matchLabels": {"team": "a"}},
                    {"matchExpressions": [
                        {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
                        {"key": "deprecated", "operator": "DoesNotExist"}
                    ]}
                ]},
                "rules": []
            }),
            role("z-team-a", json!({"team": "a"}), json!([get_pods])),
            role(
                "b-gold",
                json!({"tier": "gold"}),
                json!([list_svc, get_pods]),
            ),
            role(
                "c-gold-old",
                json!({"tier": "gold", "deprecated": "yes"}),
                json!([
                    {"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}
                ]),
            ),
            role(
                "d-bronze",
                json!({"tier": "bronze"}),
                json!([
                    {"verbs": ["delete"], "apiGroups": [""], "resources": ["nodes"]}
                ]),
            ),
        ];
        let out = aggregate(&roles);
        let expected: Vec<PolicyRule> =
            serde_json::from_value(json!([get_pods, list_svc])).unwrap();
        assert_eq!(out, vec![("agg".to_string(), expected.clone())]);

        // Already up to date: nothing to write.
        let mut updated = roles.clone();
        updated[0]["rules"] = serde_json::to_value(&expected).unwrap();
        assert!(aggregate(&updated).is_empty());
    }

    #[test]
    fn chains_converge_in_one_call() {
        let roles = vec![
            json!({"metadata": {"name": "top"},
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-top": "true"}}]}}),
            json!({"metadata": {"name": "mid", "labels": {"to-top": "true"}},
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-mid": "true"}}]}}),
            role(
                "leaf",
                json!({"to-mid": "true"}),
                json!([
                    {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
                ]),
            ),
        ];
        let out = aggregate(&roles);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["mid", "top"]);
        assert!(out.iter().all(|(_, r)| r.len() == 1));
    }

    #[test]
    fn invalid_selector_leaves_role_alone() {
        let roles = vec![
            json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [
                {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}
            ]}}),
            role("x", json!({"a": "1"}), json!([{"verbs": ["get"]}])),
        ];
        assert!(aggregate(&roles).is_empty());
    }
}
