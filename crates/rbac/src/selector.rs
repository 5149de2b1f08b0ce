//! Label selectors, as ClusterRole aggregation rules use them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rule::null_as_empty;

/// `metav1.LabelSelector`: all `match_labels` and all `match_expressions`
/// must hold; an empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry: In, NotIn, Exists or DoesNotExist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector; `None` when it is invalid
    /// (unknown operator, or values that contradict the operator), which
    /// upstream treats as an error selecting nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> Option<bool> {
        let mut ok = self
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        for req in &self.match_expressions {
            ok &= req.matches(labels)?;
        }
        Some(ok)
    }
}

impl LabelSelectorRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> Option<bool> {
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" if !self.values.is_empty() => Some(value.is_some_and(|v| self.values.contains(v))),
            "NotIn" if !self.values.is_empty() => {
                Some(value.is_none_or(|v| !self.values.contains(v)))
            }
            "Exists" if self.values.is_empty() => Some(value.is_some()),
            "DoesNotExist" if self.values.is_empty() => Some(value.is_none()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn operators() {
        let l = labels(&[("a", "1"), ("b", "2")]);
        assert_eq!(sel(json!({})).matches(&l), Some(true));
        assert_eq!(
            sel(json!({"matchLabels": {"a": "1"}})).matches(&l),
            Some(true)
        );
        assert_eq!(
            sel(json!({"matchLabels": {"a": "2"}})).matches(&l),
            Some(false)
        );
        let expr = |op: &str, values: &[&str]| {
            sel(json!({"matchExpressions": [{"key": "a", "operator": op, "values": values}]}))
        };
        assert_eq!(expr("In", &["1", "3"]).matches(&l), Some(true));
        assert_eq!(expr("In", &["3"]).matches(&l), Some(false));
        assert_eq!(expr("NotIn", &["3"]).matches(&l), Some(true));
        assert_eq!(expr("NotIn", &["1"]).matches(&l), Some(false));
        assert_eq!(expr("NotIn", &["1"]).matches(&labels(&[])), Some(true));
        assert_eq!(expr("Exists", &[]).matches(&l), Some(true));
        assert_eq!(expr("DoesNotExist", &[]).matches(&l), Some(false));
        assert_eq!(expr("DoesNotExist", &[]).matches(&labels(&[])), Some(true));
        assert_eq!(expr("Gt", &["1"]).matches(&l), None);
        assert_eq!(expr("In", &[]).matches(&l), None);
    }
}
