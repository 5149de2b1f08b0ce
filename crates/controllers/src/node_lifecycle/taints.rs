//! The taints a node's conditions call for (upstream's TaintNodesByCondition
//! and NoExecute tainting), and the per-zone limits on how fast nodes get
//! the NoExecute taints that evict their pods.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::health::{self, ready_status};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Condition → NoSchedule taint key, when the condition has that status.
const BY_CONDITION: &[(&str, &str, &str)] = &[
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
];

fn managed(t: &Taint) -> bool {
    [NOT_READY, UNREACHABLE, UNSCHEDULABLE].contains(&t.key.as_str())
        || BY_CONDITION.iter().any(|(_, _, key)| *key == t.key)
}

fn taint(key: &str, effect: &str, added: Option<Timestamp>) -> Taint {
    Taint {
        key: key.to_owned(),
        effect: effect.to_owned(),
        time_added: added.map(Time),
        value: None,
    }
}

/// The NoExecute taint the node's readiness calls for, if any (none for a
/// node that has not reported yet: the startup grace period covers it).
pub fn no_execute_key(node: &Node) -> Option<&'static str> {
    health::ready(node)?;
    match ready_status(node) {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    }
}

fn condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// What may happen to the readiness NoExecute taint in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoExecute {
    /// Add it if the node needs it (the zone's rate allows one more).
    Add,
    /// Keep it if present, but do not add it (rate-limited).
    Hold,
    /// Remove it whatever the node's state (every zone is down).
    Drop,
}

/// The node's taints with the ones this controller manages brought up to
/// date, or `None` if nothing changes. Removing the NoExecute taint of a
/// node that is Ready again is never held back. Other taints are kept as
/// they are.
pub fn desired(node: &Node, no_execute: NoExecute, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut wanted: Vec<Taint> = Vec::new();
    let readiness = no_execute_key(node);
    if let Some(key) = readiness {
        wanted.push(taint(key, "NoSchedule", None));
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push(taint(UNSCHEDULABLE, "NoSchedule", None));
    }
    for (cond, status, key) in BY_CONDITION {
        if condition_status(node, cond) == Some(*status) {
            wanted.push(taint(key, "NoSchedule", None));
        }
    }
    if let Some(key) = readiness.filter(|_| no_execute != NoExecute::Drop) {
        let existing = current
            .iter()
            .find(|t| t.key == key && t.effect == "NoExecute");
        match existing {
            Some(t) => wanted.push(t.clone()),
            None if no_execute == NoExecute::Add => {
                wanted.push(taint(key, "NoExecute", Some(now)));
            }
            None => {}
        }
    }
    let same = |a: &Taint, b: &Taint| a.key == b.key && a.effect == b.effect;
    let kept = current.iter().filter(|t| !managed(t));
    let mut out: Vec<Taint> = kept.cloned().collect();
    // Managed taints keep their position and timeAdded when still wanted.
    let mut result: Vec<Taint> = Vec::new();
    for t in &current {
        if !managed(t) {
            continue;
        }
        if wanted.iter().any(|w| same(w, t)) {
            result.push(t.clone());
        }
    }
    for w in wanted {
        if !result.iter().any(|t| same(t, &w)) {
            result.push(w);
        }
    }
    out.extend(result);
    let unchanged = out.len() == current.len() && out.iter().all(|t| current.contains(t));
    (!unchanged).then_some(out)
}

/// How disrupted a zone is (upstream's ComputeZoneState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// `not_ready` of `total` nodes in a zone are not Ready.
pub fn zone_state(total: usize, not_ready: usize, unhealthy_threshold: f64) -> ZoneState {
    if total > 0 && not_ready == total {
        return ZoneState::FullDisruption;
    }
    #[allow(clippy::cast_precision_loss)]
    let share = not_ready as f64 / total.max(1) as f64;
    if not_ready > 2 && share >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// The zone a node is in (region and zone labels, as upstream's
/// GetZoneKey).
pub fn zone_of(node: &Node) -> String {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let region = labels
        .get("topology.kubernetes.io/region")
        .cloned()
        .unwrap_or_default();
    let zone = labels
        .get("topology.kubernetes.io/zone")
        .cloned()
        .unwrap_or_default();
    format!("{region}:\u{0}:{zone}")
}

/// A token bucket of NoExecute taintings per zone (burst 1).
pub struct RateLimiter {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(now: Instant) -> Self {
        RateLimiter {
            tokens: 1.0,
            last: now,
        }
    }

    /// Takes one token at `qps` if there is one.
    pub fn try_take(&mut self, qps: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * qps).min(1.0);
        if qps > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap_or_default()
    }

    fn keys(t: &[Taint]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn unreachable_nodes_get_both_taints_and_recover() {
        let now = Timestamp::now();
        let n = node(
            "Unknown",
            json!([{"key": "dedicated", "effect": "NoSchedule", "value": "gpu"}]),
        );
        let t = desired(&n, NoExecute::Add, now).unwrap_or_default();
        assert_eq!(
            keys(&t),
            vec![
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert!(t[2].time_added.is_some());
        // Rate-limited: only the NoSchedule taint for now.
        let limited = desired(&n, NoExecute::Hold, now).unwrap_or_default();
        assert_eq!(limited.len(), 2);
        // Ready again: the managed taints go, the user's stays.
        let mut back = n.clone();
        back.spec.get_or_insert_default().taints = Some(t);
        back.status = node("True", json!([])).status;
        assert_eq!(
            keys(&desired(&back, NoExecute::Add, now).unwrap_or_default()),
            vec!["dedicated:NoSchedule"]
        );
        // Nothing to change.
        assert!(desired(&node("True", json!([])), NoExecute::Add, now).is_none());
        // Every zone down: the NoExecute taint goes, the NoSchedule stays.
        let mut down = n.clone();
        down.spec.get_or_insert_default().taints =
            Some(desired(&n, NoExecute::Add, now).unwrap_or_default());
        assert_eq!(
            keys(&desired(&down, NoExecute::Drop, now).unwrap_or_default()),
            vec![
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule"
            ]
        );
    }

    #[test]
    fn zones_as_upstream() {
        assert_eq!(zone_state(3, 3, 0.55), ZoneState::FullDisruption);
        assert_eq!(zone_state(10, 6, 0.55), ZoneState::PartialDisruption);
        assert_eq!(zone_state(4, 2, 0.55), ZoneState::Normal);
        let start = Instant::now();
        let mut r = RateLimiter::new(start);
        assert!(r.try_take(0.1, start));
        assert!(!r.try_take(0.1, start + std::time::Duration::from_secs(5)));
        assert!(r.try_take(0.1, start + std::time::Duration::from_secs(10)));
    }
}
