//! The cluster frozen for one scheduling attempt: every node (sorted by
//! name, shared with the cache — taking a snapshot copies pointers, not
//! nodes), namespace labels (for namespaceSelector), and
//! PodDisruptionBudgets (for preemption).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::node_info::{NodeInfo, PodInfo};

#[derive(Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    /// Node name → position in `nodes` (which is sorted by name).
    pub(crate) index: Arc<HashMap<String, usize>>,
    /// Namespace name → its labels.
    pub namespaces: Arc<HashMap<String, BTreeMap<String, String>>>,
    pub pdbs: Arc<Vec<Arc<PodDisruptionBudget>>>,
    /// Image name → how many nodes have it (ImageLocality's spread).
    pub image_nodes: Arc<HashMap<String, usize>>,
    /// Node name → pods nominated to it by preemption, not yet bound.
    pub nominated: Arc<HashMap<String, Vec<Arc<PodInfo>>>>,
}

impl Snapshot {
    /// A snapshot of just these nodes (tests, tools).
    pub fn from_nodes(mut nodes: Vec<NodeInfo>) -> Self {
        nodes.sort_by(|a, b| a.name().cmp(b.name()));
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_owned(), i))
            .collect();
        let mut image_nodes: HashMap<String, usize> = HashMap::new();
        for n in &nodes {
            for image in n.images.keys() {
                *image_nodes.entry(image.clone()).or_default() += 1;
            }
        }
        Snapshot {
            nodes: nodes.into_iter().map(Arc::new).collect(),
            index: Arc::new(index),
            namespaces: Arc::default(),
            pdbs: Arc::default(),
            image_nodes: Arc::new(image_nodes),
            nominated: Arc::default(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).and_then(|&i| self.nodes.get(i))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes that hold a pod with (anti-)affinity terms.
    pub fn with_affinity_pods(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.nodes
            .iter()
            .filter(|n| !n.pods_with_affinity.is_empty())
    }

    /// Nodes that hold a pod with required anti-affinity terms.
    pub fn with_required_anti_affinity_pods(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.nodes
            .iter()
            .filter(|n| !n.pods_with_required_anti_affinity.is_empty())
    }

    /// Labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(namespace)
    }
}
