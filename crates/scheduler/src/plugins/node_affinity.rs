//! NodeAffinity: `spec.nodeSelector` and required node-affinity terms
//! (Filter; PreFilter narrows to the nodes named by `metadata.name`
//! fields, as DaemonSet pods use), preferred terms' weights (Score).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod};

use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, NodeInfo, NodeScore, Plugin, PreFilterResult,
    Snapshot, Status, default_normalize,
};

pub const NAME: &str = "NodeAffinity";
pub const ERR_REASON: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_CONFLICT: &str = "pod affinity terms conflict";

pub struct NodeAffinity;

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// One `nodeSelectorTerm`: all its expressions (labels) and fields
/// (`metadata.name`) hold; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref())
        })
}

fn required_terms(pod: &Pod) -> Option<&[NodeSelectorTerm]> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|r| r.node_selector_terms.as_slice())
}

/// Whether the node satisfies the pod's nodeSelector and required terms.
pub fn matches_required(pod: &Pod, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let selector_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    selector_ok && required_terms(pod).is_none_or(|t| t.iter().any(|t| term_matches(t, node)))
}

/// Sum of the weights of the preferred terms the node matches.
pub fn preferred_weight(pod: &Pod, node: &Node) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map_or(0, |terms| {
            terms
                .iter()
                .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
                .map(|t| i64::from(t.weight))
                .sum()
        })
}

fn has_preferred(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|t| !t.is_empty())
}

/// The node names a term allows by `metadata.name In [...]`, if it
/// names them.
fn term_node_names(term: &NodeSelectorTerm) -> Option<HashSet<String>> {
    let mut names: Option<HashSet<String>> = None;
    for r in term.match_fields.iter().flatten() {
        if r.key == "metadata.name" && r.operator == "In" {
            let these: HashSet<String> = r.values.iter().flatten().cloned().collect();
            names = Some(match names {
                None => these,
                Some(n) => n.intersection(&these).cloned().collect(),
            });
        }
    }
    names
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[
            ExtensionPoint::PreFilter,
            ExtensionPoint::Filter,
            ExtensionPoint::PreScore,
            ExtensionPoint::Score,
        ]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::NodeUpdate]
    }

    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
    ) -> Result<PreFilterResult, Status> {
        let has_selector = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        let Some(terms) = required_terms(pod) else {
            return if has_selector {
                Ok(None)
            } else {
                Err(Status::skip())
            };
        };
        // Narrow only when every term names its nodes.
        let mut union: HashSet<String> = HashSet::new();
        for t in terms {
            match term_node_names(t) {
                Some(names) => union.extend(names),
                None => return Ok(None),
            }
        }
        if union.is_empty() {
            return Err(Status::unresolvable(ERR_CONFLICT));
        }
        Ok(Some(union))
    }

    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if matches_required(pod, &node.node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }

    fn pre_score(
        &self,
        _state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
        _nodes: &[std::sync::Arc<NodeInfo>],
    ) -> Status {
        if has_preferred(pod) {
            Status::success()
        } else {
            Status::skip()
        }
    }

    fn score(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        Ok(preferred_weight(pod, &node.node))
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        default_normalize(scores, false);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{filter, node, pod, scores};
    use serde_json::json;

    fn required(exprs: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    }

    #[test]
    fn operators() {
        let n = node(
            "a",
            json!({"metadata": {"labels": {"zone": "z1", "cores": "8"}}}),
        );
        let cases = [
            (json!({"nodeSelector": {"zone": "z1"}}), true),
            (json!({"nodeSelector": {"zone": "z2"}}), false),
            (
                required(json!([{"key": "zone", "operator": "In", "values": ["z1", "z2"]}])),
                true,
            ),
            (
                required(json!([{"key": "zone", "operator": "NotIn", "values": ["z1"]}])),
                false,
            ),
            (
                required(json!([{"key": "gpu", "operator": "NotIn", "values": ["x"]}])),
                true,
            ),
            (
                required(json!([{"key": "zone", "operator": "Exists"}])),
                true,
            ),
            (
                required(json!([{"key": "zone", "operator": "DoesNotExist"}])),
                false,
            ),
            (
                required(json!([{"key": "cores", "operator": "Gt", "values": ["4"]}])),
                true,
            ),
            (
                required(json!([{"key": "cores", "operator": "Lt", "values": ["4"]}])),
                false,
            ),
            (
                required(json!([{"key": "cores", "operator": "Gt", "values": ["x"]}])),
                false,
            ),
            (required(json!([])), false),
        ];
        for (spec, fits) in cases {
            let s = filter(&NodeAffinity, &pod("p", spec.clone()), &n);
            assert_eq!(s.is_success(), fits, "{spec}: {s:?}");
            if !fits && s.reasons != [ERR_CONFLICT] {
                assert_eq!(s.reasons, vec![ERR_REASON.to_owned()]);
            }
        }
    }

    #[test]
    fn match_fields_narrow_the_nodes_in_pre_filter() {
        let p = pod(
            "ds",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}),
        );
        let snapshot = Snapshot::from_nodes(vec![node("a", json!({})), node("b", json!({}))]);
        let mut state = CycleState::default();
        let names = NodeAffinity
            .pre_filter(&mut state, &p, &snapshot)
            .expect("a result");
        assert_eq!(names, Some(HashSet::from(["b".to_owned()])));
        let plain = pod("p", json!({}));
        assert!(
            NodeAffinity
                .pre_filter(&mut state, &plain, &snapshot)
                .is_err_and(|s| s.is_skip())
        );
    }

    #[test]
    fn preferred_weights_normalized() {
        let p = pod(
            "p",
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 2, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
                {"weight": 6, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}
            ]}}}),
        );
        let nodes = vec![
            node("a", json!({"metadata": {"labels": {"zone": "z1"}}})),
            node(
                "b",
                json!({"metadata": {"labels": {"zone": "z1", "ssd": "y"}}}),
            ),
            node("c", json!({})),
        ];
        // raw 2, 8, 0 → ×100/8
        assert_eq!(scores(&NodeAffinity, &p, nodes), vec![25, 100, 0]);
    }
}
