//! The owner → dependents graph, keyed by uid, and the pure decisions the
//! garbage collector takes on it (upstream's GraphBuilder and the
//! classification in attemptToDeleteItem). Nothing here does I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kube::core::ApiResource;
use serde_json::Value;

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// One `metadata.ownerReferences` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub uid: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub block_owner_deletion: bool,
}

impl OwnerRef {
    /// The group of `apiVersion` (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
    }
}

/// What the graph knows of one object.
#[derive(Clone, Debug)]
pub struct Node {
    pub uid: String,
    pub resource: Arc<ApiResource>,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerRef>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    /// Reads a node from an object's metadata; `None` without a uid or name.
    pub fn from_object(resource: Arc<ApiResource>, obj: &Value) -> Option<Node> {
        let meta = obj.get("metadata")?;
        let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Node {
            uid: text("uid")?,
            name: text("name")?,
            namespace: text("namespace"),
            resource,
            owners: owner_refs(obj),
            deleting: meta.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            finalizers: finalizers(obj),
        })
    }

    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waits for its dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_FOREGROUND)
    }

    /// Being deleted with its dependents orphaned.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_ORPHAN)
    }

    /// `kind namespace/name` for logs.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.name),
            None => format!("{} {}", self.resource.kind, self.name),
        }
    }
}

/// The `ownerReferences` of an object (entries without uid are skipped).
pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    let Some(refs) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    refs.iter()
        .filter_map(|r| {
            let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
            Some(OwnerRef {
                uid: text("uid")?,
                api_version: text("apiVersion").unwrap_or_default(),
                kind: text("kind").unwrap_or_default(),
                name: text("name").unwrap_or_default(),
                block_owner_deletion: r
                    .get("blockOwnerDeletion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect()
}

/// The `metadata.finalizers` of an object.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Objects by uid, and who references whom.
#[derive(Default, Debug)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid → uids of the objects that name it as owner (the owner
    /// need not be in `nodes`).
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every uid in the graph.
    pub fn uids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// Uids of the nodes of one resource (`group/plural`).
    pub fn uids_of(&self, resource: &ApiResource) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.resource.group == resource.group && n.resource.plural == resource.plural)
            .map(|n| n.uid.clone())
            .collect()
    }

    /// The nodes that name `owner` in their ownerReferences.
    pub fn dependents(&self, owner: &str) -> Vec<&Node> {
        self.dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.nodes.get(uid))
            .collect()
    }

    /// Dependents whose reference to `owner` has `blockOwnerDeletion`.
    pub fn blocking_dependents(&self, owner: &str) -> Vec<&Node> {
        self.dependents(owner)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == owner && r.block_owner_deletion)
            })
            .collect()
    }

    /// Adds or replaces a node; returns the uids to look at again.
    pub fn upsert(&mut self, node: Node) -> Vec<String> {
        let uid = node.uid.clone();
        let old = self.nodes.remove(&uid);
        let mut wake = BTreeSet::new();
        if let Some(old) = &old {
            for r in &old.owners {
                if !node.owners.contains(r) {
                    self.unlink(&r.uid, &uid);
                    // A reference went away or stopped blocking: an owner
                    // waiting for its dependents may be free now.
                    wake.insert(r.uid.clone());
                }
            }
        }
        for r in &node.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        let started_foreground =
            node.deleting_dependents() && !old.as_ref().is_some_and(Node::deleting_dependents);
        if started_foreground {
            wake.extend(self.dependents.get(&uid).into_iter().flatten().cloned());
        }
        // A new node may be the owner some dependents were waiting to see
        // (or a replacement with the same name): nothing to do for them.
        self.nodes.insert(uid.clone(), node);
        if self.needs_attention(&uid) {
            wake.insert(uid);
        }
        wake.retain(|u| self.nodes.contains_key(u));
        wake.into_iter().collect()
    }

    /// Removes a node; returns the uids to look at again: its dependents
    /// (their owner is gone) and its owners (one may wait for it).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(old) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut wake: BTreeSet<String> = BTreeSet::new();
        for r in &old.owners {
            self.unlink(&r.uid, uid);
            wake.insert(r.uid.clone());
        }
        wake.extend(self.dependents.get(uid).into_iter().flatten().cloned());
        wake.retain(|u| self.nodes.contains_key(u));
        wake.into_iter().collect()
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    /// Whether the collector has something to check for this node, judged
    /// from the graph alone (the checks themselves use live reads): an
    /// owner it has not seen, an owner being deleted in the foreground, or
    /// its own orphan/foreground finalizer.
    pub fn needs_attention(&self, uid: &str) -> bool {
        let Some(node) = self.nodes.get(uid) else {
            return false;
        };
        if node.deleting {
            return node.orphaning() || node.deleting_dependents();
        }
        node.owners.iter().any(|r| match self.nodes.get(&r.uid) {
            None => true,
            Some(owner) => owner.deleting_dependents(),
        })
    }
}

/// An owner as the collector found it (live read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists and is not waiting for its dependents.
    Solid,
    /// Gone (not found, or found with another uid).
    Dangling,
    /// Being deleted in the foreground.
    Waiting,
}

/// The propagation policy of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

/// What to do with a dependent once its owners are classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// At least one solid owner and nothing to clean up.
    Keep,
    /// Solid owners remain: drop the references to these (dangling or
    /// waiting) owners so none of them stays stuck.
    RemoveRefs(Vec<String>),
    /// No solid owner: delete it. `unblock` first sets
    /// `blockOwnerDeletion: false` on its references (a dependent of it is
    /// itself waiting on dependents: a possible cycle).
    Delete { policy: Policy, unblock: bool },
}

/// Upstream's attemptToDeleteItem decision for a dependent with
/// `finalizers`, whose owners are in `owners`; `has_dependents` and
/// `dependent_deleting_dependents` describe its own dependents.
pub fn decide(
    owners: &[(OwnerRef, OwnerState)],
    finalizers: &[String],
    has_dependents: bool,
    dependent_deleting_dependents: bool,
) -> Decision {
    if owners.is_empty() {
        return Decision::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let waiting = owners.iter().any(|(_, s)| *s == OwnerState::Waiting);
    if solid {
        let drop: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if drop.is_empty() {
            Decision::Keep
        } else {
            Decision::RemoveRefs(drop)
        };
    }
    if waiting && has_dependents {
        return Decision::Delete {
            policy: Policy::Foreground,
            unblock: dependent_deleting_dependents,
        };
    }
    let policy = if finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
        Policy::Orphan
    } else if finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    };
    Decision::Delete {
        policy,
        unblock: false,
    }
}

/// What an owner being deleted in the foreground still waits for.
#[derive(Debug, PartialEq, Eq)]
pub struct ForegroundStep {
    /// Dependents not yet being deleted (to delete).
    pub to_delete: Vec<String>,
    /// Dependents with `blockOwnerDeletion` still present.
    pub blocking: Vec<String>,
}

impl ForegroundStep {
    /// The owner's `foregroundDeletion` finalizer can go.
    pub fn done(&self) -> bool {
        self.blocking.is_empty()
    }
}

/// Upstream's processDeletingDependentsItem on the graph.
pub fn foreground_step(graph: &Graph, owner: &str) -> ForegroundStep {
    let to_delete = graph
        .dependents(owner)
        .into_iter()
        .filter(|d| !d.deleting)
        .map(|d| d.uid.clone())
        .collect();
    let blocking = graph
        .blocking_dependents(owner)
        .into_iter()
        .map(|d| d.uid.clone())
        .collect();
    ForegroundStep {
        to_delete,
        blocking,
    }
}

/// The dependents whose reference to `owner` must go before its `orphan`
/// finalizer may be removed.
pub fn orphan_targets(graph: &Graph, owner: &str) -> Vec<String> {
    graph
        .dependents(owner)
        .into_iter()
        .map(|d| d.uid.clone())
        .collect()
}

/// `refs` (a JSON ownerReferences array) without the entries whose uid is
/// in `uids`.
pub fn without_refs(refs: &[Value], uids: &[String]) -> Vec<Value> {
    refs.iter()
        .filter(|r| {
            r.get("uid")
                .and_then(Value::as_str)
                .is_none_or(|u| !uids.iter().any(|x| x == u))
        })
        .cloned()
        .collect()
}

/// `refs` with `blockOwnerDeletion: false` everywhere it was set.
pub fn unblocked_refs(refs: &[Value]) -> Vec<Value> {
    refs.iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(m) = r.as_object_mut()
                && m.contains_key("blockOwnerDeletion")
            {
                m.insert("blockOwnerDeletion".into(), Value::Bool(false));
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> Arc<ApiResource> {
        Arc::new(ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        })
    }

    fn node(uid: &str, owners: &[(&str, bool)]) -> Node {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(o, block)| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o, "uid": o, "blockOwnerDeletion": block}))
            .collect();
        Node::from_object(
            cm(),
            &json!({"metadata": {"name": uid, "namespace": "default", "uid": uid, "ownerReferences": refs}}),
        )
        .unwrap_or_else(|| panic!("bad node"))
    }

    fn deleting(mut n: Node, finalizer: &str) -> Node {
        n.deleting = true;
        n.finalizers = vec![finalizer.to_owned()];
        n
    }

    fn r(uid: &str) -> OwnerRef {
        OwnerRef {
            uid: uid.into(),
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: uid.into(),
            block_owner_deletion: true,
        }
    }

    #[test]
    fn reads_metadata() {
        let n = Node::from_object(
            cm(),
            &json!({"metadata": {"name": "a", "uid": "u", "deletionTimestamp": "2024-01-01T00:00:00Z",
                "finalizers": ["orphan"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "o", "blockOwnerDeletion": true}, {"name": "no-uid"}]}}),
        )
        .unwrap_or_else(|| panic!("no node"));
        assert!(n.orphaning() && !n.deleting_dependents());
        assert_eq!(
            n.owners,
            vec![OwnerRef {
                name: "rs".into(),
                uid: "o".into(),
                ..r("o")
            }]
        );
        assert_eq!(n.owners[0].group(), "apps");
        assert!(Node::from_object(cm(), &json!({"metadata": {"name": "a"}})).is_none());
    }

    #[test]
    fn dependents_of_a_missing_owner_need_attention() {
        let mut g = Graph::default();
        assert_eq!(g.upsert(node("dep", &[("owner", false)])), vec!["dep"]);
        assert_eq!(g.upsert(node("owner", &[])), Vec::<String>::new());
        assert!(!g.needs_attention("dep"));
        assert_eq!(g.dependents("owner").len(), 1);
        // The owner goes: its dependent is woken.
        assert_eq!(g.remove("owner"), vec!["dep"]);
        assert!(g.needs_attention("dep"));
        assert_eq!(g.remove("dep"), Vec::<String>::new());
        assert!(g.is_empty());
        assert!(g.dependents("owner").is_empty());
    }

    #[test]
    fn foreground_owner_wakes_dependents_and_waits_for_blocking_ones() {
        let mut g = Graph::default();
        g.upsert(node("owner", &[]));
        g.upsert(node("blocker", &[("owner", true)]));
        g.upsert(node("loose", &[("owner", false)]));
        let mut woken = g.upsert(deleting(node("owner", &[]), FINALIZER_FOREGROUND));
        woken.sort();
        assert_eq!(woken, vec!["blocker", "loose", "owner"]);
        assert!(g.needs_attention("blocker"));
        let step = foreground_step(&g, "owner");
        assert_eq!(step.to_delete, vec!["blocker", "loose"]);
        assert_eq!(step.blocking, vec!["blocker"]);
        assert!(!step.done());
        // The blocking dependent is marked, then goes: the owner is woken.
        g.upsert(deleting(node("blocker", &[("owner", true)]), "x"));
        assert_eq!(foreground_step(&g, "owner").to_delete, vec!["loose"]);
        assert_eq!(g.remove("blocker"), vec!["owner"]);
        assert!(foreground_step(&g, "owner").done());
    }

    #[test]
    fn dropping_a_reference_wakes_the_owner() {
        let mut g = Graph::default();
        g.upsert(deleting(node("owner", &[]), FINALIZER_ORPHAN));
        g.upsert(node("dep", &[("owner", false)]));
        assert_eq!(orphan_targets(&g, "owner"), vec!["dep"]);
        assert_eq!(g.upsert(node("dep", &[])), vec!["owner"]);
        assert!(orphan_targets(&g, "owner").is_empty());
        assert!(g.needs_attention("owner"));
    }

    #[test]
    fn decisions_follow_upstream() {
        use OwnerState::*;
        let none: &[String] = &[];
        assert_eq!(decide(&[], none, false, false), Decision::Keep);
        assert_eq!(
            decide(&[(r("a"), Solid)], none, false, false),
            Decision::Keep
        );
        assert_eq!(
            decide(
                &[(r("a"), Solid), (r("b"), Dangling), (r("c"), Waiting)],
                none,
                true,
                false
            ),
            Decision::RemoveRefs(vec!["b".into(), "c".into()])
        );
        let background = Decision::Delete {
            policy: Policy::Background,
            unblock: false,
        };
        assert_eq!(decide(&[(r("a"), Dangling)], none, true, false), background);
        assert_eq!(
            decide(
                &[(r("a"), Dangling), (r("b"), Dangling)],
                none,
                false,
                false
            ),
            background
        );
        // Waiting owner: delete in the foreground when it has dependents.
        assert_eq!(decide(&[(r("a"), Waiting)], none, false, false), background);
        assert_eq!(
            decide(&[(r("a"), Waiting)], none, true, true),
            Decision::Delete {
                policy: Policy::Foreground,
                unblock: true
            }
        );
        // Its own finalizers pick the policy otherwise.
        assert_eq!(
            decide(&[(r("a"), Dangling)], &["orphan".to_owned()], true, false),
            Decision::Delete {
                policy: Policy::Orphan,
                unblock: false
            }
        );
        assert_eq!(
            decide(
                &[(r("a"), Dangling)],
                &["foregroundDeletion".to_owned()],
                false,
                false
            ),
            Decision::Delete {
                policy: Policy::Foreground,
                unblock: false
            }
        );
    }

    #[test]
    fn reference_edits() {
        let refs = vec![
            json!({"uid": "a", "blockOwnerDeletion": true}),
            json!({"uid": "b"}),
        ];
        assert_eq!(
            without_refs(&refs, &["a".into()]),
            vec![json!({"uid": "b"})]
        );
        assert_eq!(
            unblocked_refs(&refs),
            vec![
                json!({"uid": "a", "blockOwnerDeletion": false}),
                json!({"uid": "b"})
            ]
        );
    }
}
