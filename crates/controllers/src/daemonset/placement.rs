//! Which nodes run a daemon pod (upstream's nodeShouldRunDaemonPod) and
//! the pod placed on one: nodeSelector, required node affinity and
//! taints against the template's tolerations plus the ones the DaemonSet
//! controller always adds; the pod is pinned by required node affinity
//! `matchFields metadata.name In [node]` for the scheduler to bind.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};

/// Taints every daemon pod tolerates (upstream's
/// AddOrUpdateDaemonPodTolerations), with their effect.
const DEFAULT_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// Tolerated by host-network daemon pods too.
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Adds the default daemon tolerations `spec` lacks.
pub fn add_default_tolerations(spec: &mut PodSpec) {
    let mut wanted: Vec<(&str, &str)> = DEFAULT_TOLERATIONS.to_vec();
    if spec.host_network == Some(true) {
        wanted.push((NETWORK_UNAVAILABLE, "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let present = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some(effect.to_owned()),
                ..Toleration::default()
            });
        }
    }
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    match t.operator.as_deref() {
        Some("Exists") => key.is_empty() || key == taint.key,
        Some("Equal") | None | Some("") => {
            key == taint.key
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

fn label_requirement(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let got = labels.get(&r.key);
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => got.is_some_and(|v| values.contains(v)),
        "NotIn" => got.is_none_or(|v| !values.contains(v)),
        "Exists" => got.is_some(),
        "DoesNotExist" => got.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                got.and_then(|v| number(v)),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

fn field_requirement(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match (r.key.as_str(), r.operator.as_str()) {
        ("metadata.name", "In") => values.iter().any(|v| v == node_name),
        ("metadata.name", "NotIn") => values.iter().all(|v| v != node_name),
        _ => false,
    }
}

/// Whether `node` matches the required node affinity (ORed terms, each an
/// AND of its requirements; an empty term matches nothing, as upstream).
fn affinity_matches(selector: &NodeSelector, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    selector.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        (!exprs.is_empty() || !fields.is_empty())
            && exprs.iter().all(|r| label_requirement(r, labels))
            && fields.iter().all(|r| field_requirement(r, name))
    })
}

/// Whether a daemon pod with `spec` should be placed on `node`
/// (`should_run`) and whether one already there may stay
/// (`should_continue`: only NoExecute taints evict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    pub should_continue: bool,
}

/// Upstream's nodeShouldRunDaemonPod for a pod spec that already carries
/// the default tolerations.
pub fn fit(spec: &PodSpec, node: &Node) -> Fit {
    let none = Fit {
        should_run: false,
        should_continue: false,
    };
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty())
        && n != node_name
    {
        return none;
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = &spec.node_selector
        && sel.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return none;
    }
    if let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        && !affinity_matches(required, node)
    {
        return none;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        taints
            .iter()
            .filter(|t| effects.contains(&t.effect.as_str()))
            .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
    };
    Fit {
        should_run: !untolerated(&["NoSchedule", "NoExecute"]),
        should_continue: !untolerated(&["NoExecute"]),
    }
}

/// Pins `spec` to `node` by replacing its required node affinity with
/// `matchFields metadata.name In [node]` (upstream's
/// ReplaceDaemonSetPodNodeNameNodeAffinity; the node was checked against
/// the original terms already).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".to_owned(),
            operator: "In".to_owned(),
            values: Some(vec![node.to_owned()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: its `nodeName`, or before binding the
/// single node its required affinity pins it to (upstream's
/// GetTargetNodeName).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_owned());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let [term] = terms.as_slice() else {
        return None;
    };
    let [field] = term.match_fields.as_deref()? else {
        return None;
    };
    match (
        field.key.as_str(),
        field.operator.as_str(),
        field.values.as_deref(),
    ) {
        ("metadata.name", "In", Some([node])) => Some(node.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut s: PodSpec = serde_json::from_value(v).unwrap_or_default();
        add_default_tolerations(&mut s);
        s
    }

    #[test]
    fn selectors_affinity_and_taints() {
        let plain = spec(json!({"containers": []}));
        let n = node(json!({"metadata": {"name": "a", "labels": {"disk": "ssd"}}}));
        assert!(fit(&plain, &n).should_run);
        let selecting = spec(json!({"containers": [], "nodeSelector": {"disk": "hdd"}}));
        assert!(!fit(&selecting, &n).should_run);
        let affine = spec(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
            ]},
        }}}));
        assert!(fit(&affine, &n).should_run);
        let tainted = node(json!({"metadata": {"name": "b"}, "spec": {"taints": [
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        ]}}));
        assert_eq!(
            fit(&plain, &tainted),
            Fit {
                should_run: false,
                should_continue: true
            }
        );
        let tolerant = spec(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
        ]}));
        assert!(fit(&tolerant, &tainted).should_run);
        // The default tolerations cover a not-ready or cordoned node.
        let not_ready = node(
            json!({"metadata": {"name": "c"}, "spec": {"unschedulable": true, "taints": [
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            ]}}),
        );
        assert!(fit(&plain, &not_ready).should_run);
        let evicting = node(json!({"metadata": {"name": "d"}, "spec": {"taints": [
            {"key": "gone", "effect": "NoExecute"},
        ]}}));
        assert_eq!(
            fit(&plain, &evicting),
            Fit {
                should_run: false,
                should_continue: false
            }
        );
    }

    #[test]
    fn pinned_pods_name_their_node() {
        let mut s = spec(json!({"containers": [], "hostNetwork": true}));
        assert!(
            s.tolerations
                .iter()
                .flatten()
                .any(|t| t.key.as_deref() == Some(NETWORK_UNAVAILABLE))
        );
        pin_to_node(&mut s, "n1");
        let pod = Pod {
            spec: Some(s),
            ..Pod::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
    }
}
