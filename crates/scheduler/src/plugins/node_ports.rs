//! NodePorts: a pod's `hostPort`s must be free on the node (same port
//! and protocol on the same or the wildcard address conflicts).

use k8s_openapi::api::core::v1::Pod;

use crate::framework::node_info::{HostPort, host_ports};
use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, NodeInfo, Plugin, PreFilterResult, Snapshot, Status,
};

pub const NAME: &str = "NodePorts";
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const STATE_KEY: &str = "PreFilterNodePorts";

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[ExtensionPoint::PreFilter, ExtensionPoint::Filter]
    }

    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::AssignedPodDelete]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
    ) -> Result<PreFilterResult, Status> {
        let ports = host_ports(pod);
        if ports.is_empty() {
            return Err(Status::skip());
        }
        state.write(STATE_KEY, ports);
        Ok(None)
    }

    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(wanted) = state.read::<Vec<HostPort>>(STATE_KEY) else {
            return Status::success();
        };
        let conflict = wanted
            .iter()
            .any(|w| node.used_ports.iter().any(|u| u.conflicts(w)));
        if conflict {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{filter, node, pod, with_pods};
    use serde_json::json;

    fn port(host_ip: Option<&str>, protocol: &str, port: i32) -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "i", "ports": [
            {"containerPort": 80, "hostPort": port, "hostIP": host_ip, "protocol": protocol}]}]})
    }

    #[test]
    fn conflicts_as_upstream() {
        let busy = with_pods(
            node("a", json!({})),
            vec![pod("old", port(Some("10.0.0.1"), "TCP", 8080))],
        );
        let cases = [
            (port(None, "TCP", 8080), false),
            (port(Some("10.0.0.1"), "TCP", 8080), false),
            (port(Some("10.0.0.2"), "TCP", 8080), true),
            (port(None, "UDP", 8080), true),
            (port(None, "TCP", 8081), true),
            (json!({}), true),
        ];
        for (spec, fits) in cases {
            let s = filter(&NodePorts, &pod("p", spec.clone()), &busy);
            assert_eq!(s.is_success(), fits, "{spec}");
            if !fits {
                assert_eq!(s.reasons, vec![ERR_REASON.to_owned()]);
            }
        }
    }
}
