//! The RollingUpdate arithmetic of upstream's DaemonSet controller
//! (daemon/update.go): `maxUnavailable` replaces old pods in place, at most
//! that many nodes without an available pod at once; `maxSurge` starts the
//! new pod beside the old one and deletes the old once the new is
//! available. Both are absolute or a percent of the desired nodes,
//! rounded up.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use crate::replicaset::pods::is_available;
use crate::statefulset::history::HASH_LABEL;

/// An int-or-percent of `total`, rounded up (upstream's
/// GetScaledValueFromIntOrPercent with roundUp).
pub fn scaled_up(v: Option<&IntOrString>, default: i32, total: i32) -> i32 {
    match v {
        None => default,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let v = (pct * i64::from(total) + 99) / 100;
            i32::try_from(v).unwrap_or(i32::MAX)
        }
    }
}

/// (maxSurge, maxUnavailable) for `desired` nodes: defaults 0 and 1;
/// both zero means one may be unavailable (upstream's
/// updatedDesiredNodeCounts).
pub fn fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let s = scaled_up(surge, 0, desired).max(0);
    let mut u = scaled_up(unavailable, 1, desired).max(0);
    if desired > 0 && s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

/// Whether `pod` runs the current template.
pub fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .is_some_and(|h| h == hash)
}

/// The node's single new and single old pod (terminating ones ignored);
/// `None` when it has more than one of either (manage cleans that up).
fn new_and_old<'a>(pods: &[&'a Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(p, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

/// What one rolling-update step does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Old pods to delete, by name.
    pub delete: Vec<String>,
    /// Nodes to start a new pod on beside the old one (surge).
    pub create_on: Vec<String>,
}

/// Inputs of a rolling-update step.
pub struct Rollout<'a> {
    /// Every node that should run the daemon, sorted, with its pods.
    pub nodes: &'a [(String, Vec<&'a Pod>)],
    pub hash: &'a str,
    pub max_surge: i32,
    pub max_unavailable: i32,
    pub min_ready_seconds: i64,
    pub now: Timestamp,
}

impl Rollout<'_> {
    fn available(&self, pod: &Pod) -> bool {
        is_available(pod, self.min_ready_seconds, self.now)
    }

    /// The next step (upstream's rollingUpdate).
    pub fn step(&self) -> Step {
        if self.max_surge > 0 {
            self.surge()
        } else {
            self.replace()
        }
    }

    fn replace(&self) -> Step {
        let mut unavailable = 0;
        let mut allowed = Vec::new();
        let mut candidates = Vec::new();
        for (_, pods) in self.nodes {
            match new_and_old(pods, self.hash) {
                None | Some((None, None) | (Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !self.available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !self.available(old) {
                        allowed.push(old.metadata.name.clone().unwrap_or_default());
                        unavailable += 1;
                    } else if unavailable < self.max_unavailable {
                        candidates.push(old.metadata.name.clone().unwrap_or_default());
                    }
                }
            }
        }
        let remaining = usize::try_from(self.max_unavailable - unavailable)
            .unwrap_or(0)
            .min(candidates.len());
        allowed.extend(candidates.into_iter().take(remaining));
        Step {
            delete: allowed,
            create_on: Vec::new(),
        }
    }

    fn surge(&self) -> Step {
        let mut surging = 0;
        let mut step = Step::default();
        let mut candidates = Vec::new();
        for (node, pods) in self.nodes {
            match new_and_old(pods, self.hash) {
                None => surging += 1,
                Some((_, None)) => {}
                Some((None, Some(old))) => {
                    if !self.available(old) {
                        step.create_on.push(node.clone());
                    } else if surging < self.max_surge {
                        candidates.push(node.clone());
                    }
                }
                Some((Some(new), Some(old))) => {
                    if self.available(new) {
                        step.delete
                            .push(old.metadata.name.clone().unwrap_or_default());
                    } else {
                        surging += 1;
                    }
                }
            }
        }
        let remaining = usize::try_from(self.max_surge - surging)
            .unwrap_or(0)
            .min(candidates.len());
        step.create_on
            .extend(candidates.into_iter().take(remaining));
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, hash: &str, ready: bool) -> Pod {
        let status = if ready { "True" } else { "False" };
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {HASH_LABEL: hash}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn percentages_round_up() {
        let pct = IntOrString::String("50%".to_owned());
        assert_eq!(fenceposts(None, Some(&pct), 3), (0, 2));
        assert_eq!(fenceposts(None, None, 3), (0, 1));
        assert_eq!(
            fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(
            fenceposts(Some(&IntOrString::String("10%".to_owned())), None, 3).0,
            1
        );
    }

    #[test]
    fn replace_respects_max_unavailable() {
        let (a, b, c) = (
            pod("a", "old", true),
            pod("b", "old", true),
            pod("c", "old", true),
        );
        let nodes = vec![
            ("n1".to_owned(), vec![&a]),
            ("n2".to_owned(), vec![&b]),
            ("n3".to_owned(), vec![&c]),
        ];
        let r = Rollout {
            nodes: &nodes,
            hash: "new",
            max_surge: 0,
            max_unavailable: 2,
            min_ready_seconds: 0,
            now: Timestamp::now(),
        };
        assert_eq!(r.step().delete, ["a", "b"]);
        // One node is already down (its new pod not ready): one more.
        let fresh = pod("x", "new", false);
        let nodes = vec![
            ("n1".to_owned(), vec![&fresh]),
            ("n2".to_owned(), vec![&b]),
            ("n3".to_owned(), vec![&c]),
        ];
        let r = Rollout { nodes: &nodes, ..r };
        assert_eq!(r.step().delete, ["b"]);
    }

    #[test]
    fn surge_starts_new_pods_then_deletes_old() {
        let (a, b) = (pod("a", "old", true), pod("b", "old", true));
        let nodes = vec![("n1".to_owned(), vec![&a]), ("n2".to_owned(), vec![&b])];
        let r = Rollout {
            nodes: &nodes,
            hash: "new",
            max_surge: 1,
            max_unavailable: 0,
            min_ready_seconds: 0,
            now: Timestamp::now(),
        };
        assert_eq!(
            r.step(),
            Step {
                delete: vec![],
                create_on: vec!["n1".to_owned()]
            }
        );
        let ready_new = pod("a2", "new", true);
        let nodes = vec![
            ("n1".to_owned(), vec![&a, &ready_new]),
            ("n2".to_owned(), vec![&b]),
        ];
        let r = Rollout { nodes: &nodes, ..r };
        assert_eq!(
            r.step(),
            Step {
                delete: vec!["a".to_owned()],
                create_on: vec!["n2".to_owned()]
            }
        );
    }
}
