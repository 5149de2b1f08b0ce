//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only
//! pods that tolerate `node.kubernetes.io/unschedulable:NoSchedule`. Also
//! a node whose Ready condition is not True takes only pods tolerating
//! `node.kubernetes.io/not-ready:NoSchedule` (upstream relies on the node
//! lifecycle controller's taint for that; checking the condition too
//! keeps a scheduler run without controllers from using dead nodes).

use k8s_openapi::api::core::v1::{Pod, Taint};

use super::taint_toleration::tolerated;
use crate::framework::{ClusterEvent, CycleState, ExtensionPoint, NodeInfo, Plugin, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NOT_READY: &str = "node(s) were not ready";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";

pub struct NodeUnschedulable;

fn no_schedule(key: &str) -> Taint {
    Taint {
        key: key.to_owned(),
        effect: "NoSchedule".to_owned(),
        ..Taint::default()
    }
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
        if unschedulable && !tolerated(pod, &no_schedule(TAINT_UNSCHEDULABLE)) {
            return Status::unresolvable(ERR_UNSCHEDULABLE);
        }
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        if !ready && !tolerated(pod, &no_schedule(TAINT_NOT_READY)) {
            return Status::unresolvable(ERR_NOT_READY);
        }
        Status::success()
    }
}
