//! TaintToleration: `NoSchedule`/`NoExecute` taints must be tolerated
//! (Filter); untolerated `PreferNoSchedule` taints count against a node
//! (Score, reversed when normalized).

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, NodeInfo, NodeScore, Plugin, Status,
    default_normalize,
};

pub const NAME: &str = "TaintToleration";

pub struct TaintToleration;

pub fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

pub fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

pub fn tolerated(pod: &Pod, taint: &Taint) -> bool {
    tolerations(pod).iter().any(|t| tolerates(t, taint))
}

/// Untolerated `PreferNoSchedule` taints on the node.
pub fn prefer_no_schedule_count(pod: &Pod, node: &Node) -> i64 {
    let tols: Vec<&Toleration> = tolerations(pod)
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    let n = taints(node)
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tols.iter().any(|tol| tolerates(tol, t)))
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[
            ExtensionPoint::Filter,
            ExtensionPoint::PreScore,
            ExtensionPoint::Score,
        ]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::NodeUpdate]
    }

    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if let Some(t) = taints(&node.node)
            .iter()
            .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(pod, t))
        {
            return Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            ));
        }
        Status::success()
    }

    fn score(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        Ok(prefer_no_schedule_count(pod, &node.node))
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        default_normalize(scores, true);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::{filter, node, pod, scores};
    use serde_json::json;

    #[test]
    fn filter_verdicts() {
        let tainted = node(
            "a",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        );
        let cases = [
            (
                json!({}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}]}),
                None,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "cpu"}]}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}),
                None,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (json!({"tolerations": [{"operator": "Exists"}]}), None),
        ];
        for (spec, want) in cases {
            let s = filter(&TaintToleration, &pod("p", spec.clone()), &tainted);
            match want {
                None => assert!(s.is_success(), "{spec}: {s:?}"),
                Some(reason) => {
                    assert_eq!(s.code, Code::UnschedulableAndUnresolvable, "{spec}");
                    assert_eq!(s.reasons, vec![reason.to_owned()], "{spec}");
                }
            }
        }
        let soft = node(
            "b",
            json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
        );
        assert!(filter(&TaintToleration, &pod("p", json!({})), &soft).is_success());
    }

    #[test]
    fn prefer_no_schedule_scores_reversed() {
        let nodes = vec![
            node("a", json!({})),
            node(
                "b",
                json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
            ),
            node(
                "c",
                json!({"spec": {"taints": [
                    {"key": "k", "effect": "PreferNoSchedule"},
                    {"key": "l", "effect": "PreferNoSchedule"}]}}),
            ),
        ];
        assert_eq!(
            scores(&TaintToleration, &pod("p", json!({})), nodes.clone()),
            vec![100, 50, 0]
        );
        let tolerant = pod(
            "p",
            json!({"tolerations": [{"key": "k", "operator": "Exists"}]}),
        );
        assert_eq!(
            scores(&TaintToleration, &tolerant, nodes),
            vec![100, 100, 0]
        );
    }
}
