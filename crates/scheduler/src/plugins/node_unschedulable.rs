//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only
//! pods that tolerate `node.kubernetes.io/unschedulable:NoSchedule`. Also
//! a node whose Ready condition is not True takes only pods tolerating
//! `node.kubernetes.io/not-ready:NoSchedule` (upstream relies on the node
//! lifecycle controller's taint for that; checking the condition too
//! keeps a scheduler run without controllers from using dead nodes).

use k8s_openapi::api::core::v1::Pod;

use super::taint_toleration::tolerations;
use crate::framework::{ClusterEvent, CycleState, ExtensionPoint, NodeInfo, Plugin, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NOT_READY: &str = "node(s) were not ready";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";

pub struct NodeUnschedulable;

/// Whether the pod tolerates the value-less `key:NoSchedule` taint
/// (`Toleration.ToleratesTaint` for that taint, without building it: this
/// runs for every node of every attempt).
fn tolerates_no_schedule(pod: &Pod, key: &str) -> bool {
    tolerations(pod).iter().any(|t| {
        let effect = t.effect.as_deref().unwrap_or("");
        let t_key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("Equal");
        (effect.is_empty() || effect == "NoSchedule")
            && match (t_key.is_empty(), op) {
                (true, "Exists") => true,
                (true, _) => false,
                (false, "Exists") => t_key == key,
                (false, "Equal" | "") => {
                    t_key == key && t.value.as_deref().unwrap_or("").is_empty()
                }
                _ => false,
            }
    })
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::Filter]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::NodeUpdate]
    }

    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let n = &node.node;
        let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
        if unschedulable && !tolerates_no_schedule(pod, TAINT_UNSCHEDULABLE) {
            return Status::unresolvable(ERR_UNSCHEDULABLE);
        }
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        if !ready && !tolerates_no_schedule(pod, TAINT_NOT_READY) {
            return Status::unresolvable(ERR_NOT_READY);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{filter, node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_and_not_ready_nodes_unless_tolerated() {
        let cordoned = node("a", json!({"spec": {"unschedulable": true}}));
        let not_ready = node(
            "b",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        let cases = [
            (&cordoned, json!({}), Some(ERR_UNSCHEDULABLE)),
            (
                &cordoned,
                json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}),
                None,
            ),
            (
                &cordoned,
                json!({"tolerations": [{"operator": "Exists"}]}),
                None,
            ),
            (
                &cordoned,
                json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoExecute"}]}),
                Some(ERR_UNSCHEDULABLE),
            ),
            (
                &cordoned,
                json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "value": "x"}]}),
                Some(ERR_UNSCHEDULABLE),
            ),
            (&not_ready, json!({}), Some(ERR_NOT_READY)),
            (
                &not_ready,
                json!({"tolerations": [{"key": TAINT_NOT_READY, "operator": "Exists"}]}),
                None,
            ),
        ];
        for (n, spec, want) in cases {
            let s = filter(&NodeUnschedulable, &pod("p", spec.clone()), n);
            match want {
                None => assert!(s.is_success(), "{spec}"),
                Some(r) => assert_eq!(s.reasons, vec![r.to_owned()], "{spec}"),
            }
        }
        assert!(
            filter(
                &NodeUnschedulable,
                &pod("p", json!({})),
                &node("c", json!({}))
            )
            .is_success()
        );
    }
}
