//! The scheduler's view of the cluster, kept up to date from watch events
//! and by assumed pods (bound by us, not yet seen bound): upstream's
//! scheduler cache. Nodes are kept sorted behind `Arc`s: an attempt
//! borrows the [`Snapshot`], and a clone of it (tests, "what if" copies)
//! copies pointers; a node is copied only when it changes while such a
//! clone still holds it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::framework::node_info::pod_key;
use crate::framework::{ClusterEvent, NodeInfo, PodInfo, Snapshot};

/// Where a pod counts.
struct Placed {
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    /// The cluster as the next attempt sees it, kept up to date in place
    /// (an attempt borrows it; nothing is copied per attempt).
    snap: Snapshot,
    pods: HashMap<String, Placed>,
    /// Pods on nodes not (yet) known, by node name.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_at: HashMap<String, String>,
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a new version of a node matters to scheduling.
fn node_changed(old: &Node, new: &Node) -> bool {
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || old.status.as_ref().map(|s| (&s.allocatable, &s.images))
            != new.status.as_ref().map(|s| (&s.allocatable, &s.images))
        || ready(old) != ready(new)
}

impl Cache {
    pub fn node_count(&self) -> usize {
        self.snap.nodes.len()
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    fn reindex(&mut self) {
        self.snap.index = Arc::new(
            self.snap
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name().to_owned(), i))
                .collect(),
        );
    }

    fn count_images(&mut self, node: &NodeInfo, delta: isize) {
        let map = Arc::make_mut(&mut self.snap.image_nodes);
        for image in node.images.keys() {
            let e = map.entry(image.clone()).or_default();
            *e = e.saturating_add_signed(delta);
            if *e == 0 {
                map.remove(image);
            }
        }
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let i = *self.snap.index.get(name)?;
        self.snap.nodes.get_mut(i).map(Arc::make_mut)
    }

    /// A node appeared or changed; the event to requeue pods by, if any.
    pub fn set_node(&mut self, node: Arc<Node>) -> Option<ClusterEvent> {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.snap.index.get(&name) {
            let old = self.snap.nodes[i].clone();
            if !node_changed(&old.node, &node) {
                Arc::make_mut(&mut self.snap.nodes[i]).node = node;
                return None;
            }
            self.count_images(&old, -1);
            let info = Arc::make_mut(&mut self.snap.nodes[i]);
            info.set_node(node);
            let info = self.snap.nodes[i].clone();
            self.count_images(&info, 1);
            return Some(ClusterEvent::NodeUpdate);
        }
        let mut info = NodeInfo::new(node);
        for pod in self.orphans.remove(&name).unwrap_or_default() {
            info.add_pod(pod);
        }
        self.count_images(&info, 1);
        let at = self
            .snap
            .nodes
            .partition_point(|n| n.name() < name.as_str());
        self.snap.nodes.insert(at, Arc::new(info));
        self.reindex();
        Some(ClusterEvent::NodeAdd)
    }

    pub fn remove_node(&mut self, name: &str) -> Option<ClusterEvent> {
        let i = *self.snap.index.get(name)?;
        let info = self.snap.nodes.remove(i);
        self.count_images(&info, -1);
        // Its pods wait as orphans in case the node comes back.
        self.orphans.insert(name.to_owned(), info.pods.clone());
        self.reindex();
        Some(ClusterEvent::NodeDelete)
    }

    /// Drops every node not in `keep` (after a relist).
    pub fn retain_nodes(&mut self, keep: &std::collections::HashSet<String>) {
        let gone: Vec<String> = self
            .snap
            .nodes
            .iter()
            .map(|n| n.name().to_owned())
            .filter(|n| !keep.contains(n))
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
    }

    fn place(&mut self, info: Arc<PodInfo>, node: &str) {
        match self.node_mut(node) {
            Some(n) => n.add_pod(info),
            None => self.orphans.entry(node.to_owned()).or_default().push(info),
        }
    }

    fn unplace(&mut self, key: &str, node: &str) {
        match self.node_mut(node) {
            Some(n) => {
                n.remove_pod(key);
            }
            None => {
                if let Some(list) = self.orphans.get_mut(node) {
                    list.retain(|p| p.key != key);
                }
            }
        }
    }

    /// A pod as the watch sees it; the event to requeue pods by, if any.
    pub fn update_pod(&mut self, pod: Arc<Pod>) -> Option<ClusterEvent> {
        let key = pod_key(&pod);
        self.set_nominated(&key, &pod);
        let node = bound_node(&pod).map(str::to_owned);
        let terminal = is_terminal(&pod);
        match (self.pods.get(&key), node) {
            (Some(placed), _) if terminal => {
                let node = placed.node.clone();
                self.unplace(&key, &node);
                self.pods.remove(&key);
                Some(ClusterEvent::AssignedPodDelete)
            }
            (Some(placed), Some(node)) => {
                if placed.node != node {
                    let old = placed.node.clone();
                    self.unplace(&key, &old);
                    self.place(Arc::new(PodInfo::new(pod)), &node);
                    self.pods.insert(
                        key,
                        Placed {
                            node,
                            assumed: false,
                        },
                    );
                    return Some(ClusterEvent::AssignedPodAdd);
                }
                let was_assumed = placed.assumed;
                let info = self
                    .snap
                    .nodes
                    .get(*self.snap.index.get(&node)?)
                    .and_then(|n| n.pods.iter().find(|p| p.key == key).cloned());
                // What plugins read: requests/ports/terms (spec), labels,
                // and whether it is terminating (spread, preemption).
                let same = info.as_ref().is_some_and(|i| {
                    i.pod.spec == pod.spec
                        && i.pod.metadata.labels == pod.metadata.labels
                        && i.pod.metadata.deletion_timestamp == pod.metadata.deletion_timestamp
                });
                if let Some(p) = self.pods.get_mut(&key) {
                    p.assumed = false;
                }
                if same && !was_assumed {
                    return None;
                }
                self.unplace(&key, &node);
                self.place(Arc::new(PodInfo::new(pod)), &node);
                if same {
                    None
                } else {
                    Some(ClusterEvent::AssignedPodUpdate)
                }
            }
            // Assumed by us, the watch not caught up yet: keep.
            (Some(_), None) => None,
            (None, Some(node)) if !terminal => {
                self.place(Arc::new(PodInfo::new(pod)), &node);
                self.pods.insert(
                    key,
                    Placed {
                        node,
                        assumed: false,
                    },
                );
                Some(ClusterEvent::AssignedPodAdd)
            }
            (None, _) => None,
        }
    }

    /// A pod went away.
    pub fn remove_pod(&mut self, key: &str) -> Option<ClusterEvent> {
        self.clear_nominated(key);
        let placed = self.pods.remove(key)?;
        self.unplace(key, &placed.node);
        Some(ClusterEvent::AssignedPodDelete)
    }

    /// Counts `pod` on `node` before the API says so (upstream's
    /// AssumePod), so the next attempt cannot double-book the node.
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) {
        let key = pod_key(&pod);
        self.clear_nominated(&key);
        if let Some(old) = self.pods.remove(&key) {
            self.unplace(&key, &old.node);
        }
        self.place(Arc::new(PodInfo::new(pod)), node);
        self.pods.insert(
            key,
            Placed {
                node: node.to_owned(),
                assumed: true,
            },
        );
    }

    /// Binding failed: the assumed pod no longer counts.
    pub fn forget(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|p| p.assumed) {
            self.remove_pod(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed)
    }

    /// Every pod the cache knows, for a relist to compare against.
    pub fn pod_keys(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    fn set_nominated(&mut self, key: &str, pod: &Arc<Pod>) {
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        match nominated {
            Some(node) if bound_node(pod).is_none() => self.nominate(pod.clone(), node),
            _ => self.clear_nominated(key),
        }
    }

    /// Records that `pod` waits for room on `node` (preemption).
    pub fn nominate(&mut self, pod: Arc<Pod>, node: &str) {
        let key = pod_key(&pod);
        self.clear_nominated(&key);
        let map = Arc::make_mut(&mut self.snap.nominated);
        map.entry(node.to_owned())
            .or_default()
            .push(Arc::new(PodInfo::new(pod)));
        self.nominated_at.insert(key, node.to_owned());
    }

    fn clear_nominated(&mut self, key: &str) {
        let Some(node) = self.nominated_at.remove(key) else {
            return;
        };
        let map = Arc::make_mut(&mut self.snap.nominated);
        if let Some(list) = map.get_mut(&node) {
            list.retain(|p| p.key != key);
            if list.is_empty() {
                map.remove(&node);
            }
        }
    }

    pub fn set_namespace(&mut self, name: String, labels: BTreeMap<String, String>) -> bool {
        let map = Arc::make_mut(&mut self.snap.namespaces);
        map.insert(name, labels.clone()) != Some(labels)
    }

    pub fn remove_namespace(&mut self, name: &str) {
        Arc::make_mut(&mut self.snap.namespaces).remove(name);
    }

    pub fn set_pdbs(&mut self, pdbs: Vec<Arc<PodDisruptionBudget>>) {
        self.snap.pdbs = Arc::new(pdbs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                           "images": [{"names": ["img:1"], "sizeBytes": 100}]}
            }))
            .expect("node"),
        )
    }

    fn pod(name: &str, node: Option<&str>, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"nodeName": node, "containers": [{"name": "c",
                    "resources": {"requests": {"cpu": cpu}}}]}
            }))
            .expect("pod"),
        )
    }

    #[test]
    fn assumed_then_confirmed_counts_once() {
        let mut c = Cache::default();
        c.set_node(node("b"));
        c.set_node(node("a"));
        let names: Vec<&str> = c.snap.nodes.iter().map(|n| n.name()).collect();
        assert_eq!(names, ["a", "b"]);
        let snap = c.snapshot().clone();
        c.assume(pod("p", None, "1"), "a");
        // The old snapshot is untouched (copy on write).
        assert_eq!(snap.get("a").map(|n| n.pods.len()), Some(0));
        assert_eq!(c.snapshot().get("a").map(|n| n.requested.cpu), Some(1000));
        assert!(c.is_assumed("ns/p"));
        c.update_pod(pod("p", Some("a"), "1"));
        assert!(!c.is_assumed("ns/p"));
        let s = c.snapshot();
        assert_eq!(
            s.get("a").map(|n| (n.pods.len(), n.requested.cpu)),
            Some((1, 1000))
        );
        assert_eq!(s.image_nodes.get("img:1"), Some(&2));
        c.remove_pod("ns/p");
        assert_eq!(c.snapshot().get("a").map(|n| n.requested.cpu), Some(0));
    }

    #[test]
    fn a_pod_turning_terminating_is_seen_as_such() {
        let mut c = Cache::default();
        c.set_node(node("a"));
        c.update_pod(pod("p", Some("a"), "1"));
        let mut terminating = (*pod("p", Some("a"), "1")).clone();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        c.update_pod(Arc::new(terminating));
        let s = c.snapshot();
        let seen = s
            .get("a")
            .map(|n| n.pods[0].pod.metadata.deletion_timestamp.is_some());
        assert_eq!(seen, Some(true));
    }

    #[test]
    fn pods_before_their_node_and_forgotten_assumptions() {
        let mut c = Cache::default();
        c.update_pod(pod("early", Some("late"), "500m"));
        c.set_node(node("late"));
        assert_eq!(c.snapshot().get("late").map(|n| n.requested.cpu), Some(500));
        c.assume(pod("q", None, "1"), "late");
        c.forget("ns/q");
        assert_eq!(c.snapshot().get("late").map(|n| n.requested.cpu), Some(500));
        c.remove_node("late");
        assert!(c.snapshot().is_empty());
    }
}
