//! `metav1.LabelSelector` matching on the typed k8s-openapi struct, for
//! PodTopologySpread and InterPodAffinity. These run against every pod of
//! every node in PreFilter, so matching reads the struct in place (no
//! conversion to a string or JSON selector, no allocation per pod).
//! Semantics are upstream's `LabelSelectorAsSelector`: a missing (null)
//! selector matches nothing, an empty one (`{}`) matches everything.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels of an object without any (so callers never allocate one).
pub static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// A pod's labels (empty when it has none).
pub fn pod_labels(pod: &Pod) -> &BTreeMap<String, String> {
    pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// One `matchExpressions` entry. An unknown operator, or `In`/`NotIn`
/// without values, never matches: the API server rejects such selectors,
/// and upstream fails to compile them rather than guessing.
fn requirement_matches(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => !values.is_empty() && value.is_some_and(|v| values.contains(v)),
        "NotIn" => !values.is_empty() && value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// Whether `labels` satisfy a present selector (all of `matchLabels` and
/// all of `matchExpressions`; `{}` selects everything).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_matches(r, labels))
}

/// Whether `labels` satisfy an optional selector: null selects nothing.
pub fn matches_opt(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_some_and(|s| matches(s, labels))
}

/// `{}`: no requirement at all (selects everything).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

/// A selector with extra `key=value` requirements ANDed in: how
/// PodTopologySpread's `matchLabelKeys` (the pod's values for those keys)
/// and the system-default constraints' selector (the pod's own labels)
/// are expressed. `base: None` is upstream's null selector (nothing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    pub base: Option<LabelSelector>,
    pub extra: Vec<(String, String)>,
}

impl Selector {
    pub fn new(base: Option<LabelSelector>) -> Self {
        Selector {
            base,
            extra: Vec::new(),
        }
    }

    /// A set-based selector (`labels.SelectorFromSet`): exactly these
    /// pairs, everything when empty.
    pub fn from_set(pairs: Vec<(String, String)>) -> Self {
        Selector {
            base: Some(LabelSelector::default()),
            extra: pairs,
        }
    }

    /// Upstream's `mergeLabelSetWithSelector`: the set's requirements
    /// plus the selector's. A null selector has no requirements to add,
    /// so merging into it yields just the set (upstream's quirk, kept).
    pub fn merge_set(&mut self, pairs: Vec<(String, String)>) {
        if pairs.is_empty() {
            return;
        }
        if self.base.is_none() {
            self.base = Some(LabelSelector::default());
        }
        self.extra.extend(pairs);
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        matches_opt(self.base.as_ref(), labels)
            && self
                .extra
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|x| x == v))
    }

    /// Selects everything (no requirement), upstream's `Selector.Empty()`.
    pub fn is_empty(&self) -> bool {
        self.extra.is_empty() && self.base.as_ref().is_some_and(is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn operators_and_null_versus_empty() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            (serde_json::json!({}), true),
            (serde_json::json!({"matchLabels": {"app": "web"}}), true),
            (serde_json::json!({"matchLabels": {"app": "db"}}), false),
            (
                serde_json::json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}),
                true,
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
                false,
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["web"]}]}),
                true,
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                true,
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                false,
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}),
                false,
            ),
        ];
        for (s, want) in cases {
            assert_eq!(matches(&sel(s.clone()), &l), want, "{s}");
        }
        assert!(!matches_opt(None, &l));
        let mut s = Selector::new(None);
        assert!(!s.matches(&l));
        s.merge_set(vec![("app".into(), "web".into())]);
        assert!(s.matches(&l));
        assert!(!s.matches(&labels(&[("app", "db")])));
        assert!(Selector::from_set(Vec::new()).is_empty());
        assert!(!Selector::new(None).is_empty());
    }
}
