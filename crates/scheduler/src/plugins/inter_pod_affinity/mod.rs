//! InterPodAffinity (upstream v1.33): `podAffinity` / `podAntiAffinity`.
//! Required terms are hard (PreFilter counts, per topology pair, the
//! existing pods the incoming pod's terms match and the existing pods
//! whose anti-affinity the incoming pod would violate; Filter looks the
//! node's pairs up); preferred terms, both the incoming pod's and the
//! existing pods' (symmetry), plus existing pods' required affinity
//! (`hardPodAffinityWeight`), are soft (PreScore sums weights per pair,
//! Score reads the node's pairs).
//!
//! Cost stays low when few pods use affinity: PreFilter only visits the
//! snapshot's nodes holding pods with required anti-affinity unless the
//! incoming pod has required terms, and PreScore only the nodes holding
//! pods with affinity unless the incoming pod has preferred terms.

mod filtering;
mod scoring;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Affinity, Node, Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use super::selector::{self, NO_LABELS, pod_labels};
use crate::framework::{
    ClusterEvent, CycleState, ExtensionPoint, NodeInfo, NodeScore, Plugin, PodInfo,
    PreFilterResult, Snapshot, Status,
};

pub const NAME: &str = "InterPodAffinity";
/// Upstream's `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// Upstream's `ErrReasonAffinityRulesNotMatch`.
pub const ERR_REASON_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
/// Upstream's `ErrReasonAntiAffinityRulesNotMatch`.
pub const ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't match pod anti-affinity rules";

/// `InterPodAffinityArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    /// Weight of an existing pod's required affinity term the incoming
    /// pod matches, in Score (0..=100, default 1).
    #[serde(default = "one")]
    pub hard_pod_affinity_weight: i32,
    /// Skip existing pods' preferred terms when the incoming pod has no
    /// preferred terms of its own.
    #[serde(default)]
    pub ignore_preferred_terms_of_existing_pods: bool,
}

fn one() -> i32 {
    1
}

impl Default for Args {
    fn default() -> Self {
        Args {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

pub struct InterPodAffinity {
    args: Args,
}

impl InterPodAffinity {
    /// Validates the args as upstream's `ValidateInterPodAffinityArgs`.
    pub fn new(args: Args) -> Result<Self, String> {
        if !(0..=100).contains(&args.hard_pod_affinity_weight) {
            return Err(format!(
                "hardPodAffinityWeight: Invalid value: {}: not in valid range [0-100]",
                args.hard_pod_affinity_weight
            ));
        }
        Ok(InterPodAffinity { args })
    }
}

/// Upstream's `framework.AffinityTerm`: a `PodAffinityTerm` with its
/// namespaces resolved. Borrowed from the pod while scanning existing
/// pods (no copy per pod), owned (`'static`) when kept in CycleState.
#[derive(Clone, Debug)]
pub(crate) struct AffinityTerm<'a> {
    pub namespaces: Vec<Cow<'a, str>>,
    /// `None`: null (matches no namespace by labels).
    pub namespace_selector: Option<Cow<'a, LabelSelector>>,
    /// `None`: null (matches no pod).
    pub selector: Option<Cow<'a, LabelSelector>>,
    pub topology_key: Cow<'a, str>,
}

impl<'a> AffinityTerm<'a> {
    /// Upstream's `newAffinityTerm`: without `namespaces` and
    /// `namespaceSelector` a term is about the pod's own namespace.
    fn new(pod: &'a Pod, term: &'a PodAffinityTerm) -> Self {
        let listed = term.namespaces.as_deref().unwrap_or(&[]);
        let namespaces = if listed.is_empty() && term.namespace_selector.is_none() {
            vec![Cow::Borrowed(
                pod.metadata.namespace.as_deref().unwrap_or(""),
            )]
        } else {
            listed.iter().map(|n| Cow::Borrowed(n.as_str())).collect()
        };
        AffinityTerm {
            namespaces,
            namespace_selector: term.namespace_selector.as_ref().map(Cow::Borrowed),
            selector: term.label_selector.as_ref().map(Cow::Borrowed),
            topology_key: Cow::Borrowed(term.topology_key.as_str()),
        }
    }

    fn into_owned(self) -> AffinityTerm<'static> {
        AffinityTerm {
            namespaces: self
                .namespaces
                .into_iter()
                .map(|n| Cow::Owned(n.into_owned()))
                .collect(),
            namespace_selector: self.namespace_selector.map(|s| Cow::Owned(s.into_owned())),
            selector: self.selector.map(|s| Cow::Owned(s.into_owned())),
            topology_key: Cow::Owned(self.topology_key.into_owned()),
        }
    }

    /// Upstream's `AffinityTerm.Matches`: `pod` is in one of the term's
    /// namespaces (listed, or selected by `ns_labels`, the labels of the
    /// pod's namespace) and its labels match the selector.
    pub fn matches(&self, pod: &Pod, ns_labels: &BTreeMap<String, String>) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        (self.namespaces.iter().any(|n| n == ns)
            || selector::matches_opt(self.namespace_selector.as_deref(), ns_labels))
            && selector::matches_opt(self.selector.as_deref(), pod_labels(pod))
    }

    /// Upstream's `mergeAffinityTermNamespacesIfNotEmpty`: for the
    /// incoming pod's terms, resolve a non-empty namespaceSelector into
    /// namespace names once, so matching an existing pod needs no lookup
    /// of its namespace's labels. `{}` stays (it matches every namespace).
    fn merge_namespaces(&mut self, snapshot: &Snapshot) {
        match self.namespace_selector.as_deref() {
            Some(s) if selector::is_empty(s) => return,
            Some(s) => {
                let mut names: Vec<&String> = snapshot
                    .namespaces
                    .iter()
                    .filter(|(_, labels)| selector::matches(s, labels))
                    .map(|(name, _)| name)
                    .collect();
                names.sort();
                self.namespaces
                    .extend(names.into_iter().map(|n| Cow::Owned(n.clone())));
            }
            None => {}
        }
        self.namespace_selector = None;
    }

    fn topology_value<'n>(&self, node: &'n Node) -> Option<&'n String> {
        node.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(self.topology_key.as_ref()))
    }
}

fn affinity(pod: &Pod) -> Option<&Affinity> {
    pod.spec.as_ref()?.affinity.as_ref()
}

fn terms<'a>(pod: &'a Pod, list: Option<&'a Vec<PodAffinityTerm>>) -> Vec<AffinityTerm<'a>> {
    list.into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(pod, t))
        .collect()
}

fn weighted<'a>(
    pod: &'a Pod,
    list: Option<&'a Vec<WeightedPodAffinityTerm>>,
) -> Vec<(AffinityTerm<'a>, i64)> {
    list.into_iter()
        .flatten()
        .map(|t| {
            (
                AffinityTerm::new(pod, &t.pod_affinity_term),
                i64::from(t.weight),
            )
        })
        .collect()
}

pub(crate) fn required_affinity_terms(pod: &Pod) -> Vec<AffinityTerm<'_>> {
    let list = affinity(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    terms(pod, list)
}

pub(crate) fn required_anti_affinity_terms(pod: &Pod) -> Vec<AffinityTerm<'_>> {
    let list = affinity(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    terms(pod, list)
}

pub(crate) fn preferred_affinity_terms(pod: &Pod) -> Vec<(AffinityTerm<'_>, i64)> {
    let list = affinity(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    weighted(pod, list)
}

pub(crate) fn preferred_anti_affinity_terms(pod: &Pod) -> Vec<(AffinityTerm<'_>, i64)> {
    let list = affinity(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    weighted(pod, list)
}

/// An existing pod's terms, parsed once and kept in its `PodInfo`.
#[derive(Default)]
pub(crate) struct ExistingTerms {
    pub required_affinity: Vec<AffinityTerm<'static>>,
    pub required_anti_affinity: Vec<AffinityTerm<'static>>,
    pub preferred_affinity: Vec<(AffinityTerm<'static>, i64)>,
    pub preferred_anti_affinity: Vec<(AffinityTerm<'static>, i64)>,
}

static NO_TERMS: std::sync::LazyLock<ExistingTerms> =
    std::sync::LazyLock::new(ExistingTerms::default);

/// The parsed terms of an existing pod (computed on first use).
pub(crate) fn existing_terms(info: &PodInfo) -> &ExistingTerms {
    let owned =
        |list: Vec<AffinityTerm<'_>>| list.into_iter().map(AffinityTerm::into_owned).collect();
    let owned_w = |list: Vec<(AffinityTerm<'_>, i64)>| {
        list.into_iter().map(|(t, w)| (t.into_owned(), w)).collect()
    };
    info.affinity_terms
        .get_or_init(|| {
            let pod = &info.pod;
            Box::new(ExistingTerms {
                required_affinity: owned(required_affinity_terms(pod)),
                required_anti_affinity: owned(required_anti_affinity_terms(pod)),
                preferred_affinity: owned_w(preferred_affinity_terms(pod)),
                preferred_anti_affinity: owned_w(preferred_anti_affinity_terms(pod)),
            })
        })
        .downcast_ref::<ExistingTerms>()
        .unwrap_or(&NO_TERMS)
}

/// The incoming pod's terms, owned and with namespaces merged.
fn owned_terms(list: Vec<AffinityTerm<'_>>, snapshot: &Snapshot) -> Vec<AffinityTerm<'static>> {
    list.into_iter()
        .map(|t| {
            let mut t = t.into_owned();
            t.merge_namespaces(snapshot);
            t
        })
        .collect()
}

fn owned_weighted(
    list: Vec<(AffinityTerm<'_>, i64)>,
    snapshot: &Snapshot,
) -> Vec<(AffinityTerm<'static>, i64)> {
    list.into_iter()
        .map(|(t, w)| {
            let mut t = t.into_owned();
            t.merge_namespaces(snapshot);
            (t, w)
        })
        .collect()
}

/// Labels of the pod's namespace (empty when unknown), what existing
/// pods' namespaceSelectors are matched against.
fn namespace_labels(pod: &Pod, snapshot: &Snapshot) -> BTreeMap<String, String> {
    pod.metadata
        .namespace
        .as_deref()
        .and_then(|ns| snapshot.namespace_labels(ns))
        .cloned()
        .unwrap_or_default()
}

/// Upstream's `topologyToMatchedTermCount` (and `scoreMap`): a number
/// per topology pair, keyed key → value so that a node's pairs are
/// looked up with borrowed strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopologyCounts(pub HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    pub fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `delta` to the pair; with `drop_zero`, a pair back at 0 is
    /// removed (the counts: "no pod matches" must read as empty).
    fn add(&mut self, key: &str, value: &str, delta: i64, drop_zero: bool) {
        let values = match self.0.get_mut(key) {
            Some(v) => v,
            None => self.0.entry(key.to_owned()).or_default(),
        };
        let n = match values.get_mut(value) {
            Some(n) => n,
            None => values.entry(value.to_owned()).or_insert(0),
        };
        *n += delta;
        if drop_zero && *n == 0 {
            values.remove(value);
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }

    /// Upstream's `update`: the node's pair for `key`, if it has the key.
    fn update(&mut self, node: &Node, key: &str, delta: i64) {
        if let Some(value) = node.metadata.labels.as_ref().and_then(|l| l.get(key)) {
            self.add(key, value, delta, true);
        }
    }

    fn merge(&mut self, other: TopologyCounts) {
        for (key, values) in other.0 {
            match self.0.get_mut(&key) {
                None => {
                    self.0.insert(key, values);
                }
                Some(mine) => {
                    for (value, n) in values {
                        *mine.entry(value).or_insert(0) += n;
                    }
                }
            }
        }
    }
}

/// Upstream's `podMatchesAllAffinityTerms` (false without terms). The
/// incoming pod's terms have their namespaceSelector merged already.
pub(crate) fn matches_all(terms: &[AffinityTerm<'_>], pod: &Pod) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, &NO_LABELS))
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [ExtensionPoint] {
        &[
            ExtensionPoint::PreFilter,
            ExtensionPoint::Filter,
            ExtensionPoint::PreScore,
            ExtensionPoint::Score,
        ]
    }

    /// Pods coming, relabelled or going change what matches; node labels
    /// change topology pairs; namespace labels change namespaceSelectors.
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::AssignedPodAdd,
            ClusterEvent::AssignedPodUpdate,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUpdate,
            ClusterEvent::NamespaceChange,
        ]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<PreFilterResult, Status> {
        filtering::pre_filter(state, pod, snapshot)
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        filtering::update_with_pod(state, pod, added, node, 1)
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        filtering::update_with_pod(state, pod, removed, node, -1)
    }

    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        filtering::filter(state, pod, node)
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        nodes: &[std::sync::Arc<NodeInfo>],
    ) -> Status {
        scoring::pre_score(&self.args, state, pod, snapshot, nodes)
    }

    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        scoring::score(state, node)
    }

    fn normalize_score(&self, state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        scoring::normalize_score(state, scores)
    }
}
