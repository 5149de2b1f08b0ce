//! When a node last showed signs of life, on this controller's own clock
//! (as upstream's nodeHealthData): a heartbeat counts when the Ready
//! condition's `lastHeartbeatTime` or the node's Lease `renewTime` changes,
//! so skew between the node's clock and ours does not matter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The conditions a node that stopped reporting has turned to Unknown.
pub const MONITORED: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Clone, PartialEq, Eq)]
struct Seen {
    ready_heartbeat: Option<Timestamp>,
    lease_renew: Option<Timestamp>,
}

/// The last heartbeat seen of every node.
#[derive(Default)]
pub struct Tracker {
    probes: HashMap<String, (Seen, Instant)>,
}

impl Tracker {
    /// Records what `node` shows now; returns how long ago (on our clock)
    /// it last changed. A node seen for the first time counts as fresh.
    pub fn observe(
        &mut self,
        node: &Node,
        lease_renew: Option<Timestamp>,
        now: Instant,
    ) -> Duration {
        let seen = Seen {
            ready_heartbeat: ready(node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0)),
            lease_renew,
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let entry = self
            .probes
            .entry(name)
            .or_insert_with(|| (seen.clone(), now));
        if entry.0 != seen {
            *entry = (seen, now);
        }
        now.saturating_duration_since(entry.1)
    }

    /// Forgets nodes that are gone.
    pub fn retain(&mut self, exists: impl Fn(&str) -> bool) {
        self.probes.retain(|name, _| exists(name));
    }
}

/// The node's Ready condition.
pub fn ready(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// `True`, `False` or `Unknown` (a node that never reported: `Unknown`).
pub fn ready_status(node: &Node) -> &str {
    ready(node).map_or("Unknown", |c| c.status.as_str())
}

/// The status patch that turns every monitored condition Unknown (upstream's
/// tryUpdateNodeHealth), or `None` when they already are.
pub fn unknown_conditions_patch(node: &Node, now: Timestamp) -> Option<Value> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let mut changed = Vec::new();
    for type_ in MONITORED {
        match conditions.iter().find(|c| c.type_ == *type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => changed.push(json!({
                "type": type_,
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": c.last_heartbeat_time,
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            })),
            None => changed.push(json!({
                "type": type_,
                "status": "Unknown",
                "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.",
                "lastHeartbeatTime": created.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            })),
        }
    }
    if changed.is_empty() {
        None
    } else {
        Some(json!({"status": {"conditions": changed}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(heartbeat: &str, status: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "status": {"conditions": [{
                "type": "Ready", "status": status, "lastHeartbeatTime": heartbeat,
            }]},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn only_a_changed_heartbeat_counts() {
        let mut t = Tracker::default();
        let start = Instant::now();
        let n = node("2020-01-01T00:00:10Z", "True");
        assert_eq!(t.observe(&n, None, start), Duration::ZERO);
        let later = start + Duration::from_secs(30);
        assert_eq!(t.observe(&n, None, later), Duration::from_secs(30));
        let renewed = Timestamp::from_second(1_600_000_000).ok();
        assert_eq!(t.observe(&n, renewed, later), Duration::ZERO);
        let n2 = node("2020-01-01T00:00:20Z", "True");
        let much_later = later + Duration::from_secs(5);
        assert_eq!(t.observe(&n2, renewed, much_later), Duration::ZERO);
    }

    #[test]
    fn stale_nodes_turn_unknown_once() {
        let now = Timestamp::now();
        let patch = unknown_conditions_patch(&node("2020-01-01T00:00:10Z", "True"), now);
        let conds = patch.as_ref().map(|p| p["status"]["conditions"].clone());
        let conds = conds.unwrap_or_default();
        assert_eq!(conds.as_array().map(Vec::len), Some(4));
        assert_eq!(conds[0]["reason"], "NodeStatusUnknown");
        assert_eq!(conds[1]["reason"], "NodeStatusNeverUpdated");
        let mut all_unknown = node("2020-01-01T00:00:10Z", "Unknown");
        if let Some(c) = all_unknown
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
        {
            for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
                c.push(NodeCondition {
                    type_: t.into(),
                    status: "Unknown".into(),
                    ..NodeCondition::default()
                });
            }
        }
        assert!(unknown_conditions_patch(&all_unknown, now).is_none());
    }
}
