//! Filter plugins, named as upstream's: each says whether a pod may run on
//! a node and, when not, gives upstream's reasons (the words of the
//! `0/3 nodes are available: ...` message).

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

use crate::resources::{NodeInfo, pod_requests};

pub type Reasons = Vec<String>;

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NOT_READY: &str = "node(s) were not ready";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Runs the filters in upstream's order; the first that fails gives the
/// node's reasons.
pub fn run_filters(pod: &Pod, node: &NodeInfo) -> Result<(), Reasons> {
    node_unschedulable(pod, &node.node)?;
    node_name(pod, &node.node)?;
    node_ready(pod, &node.node)?;
    taint_toleration(pod, &node.node)?;
    node_affinity(pod, &node.node)?;
    node_resources_fit(pod, node)
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerated(pod: &Pod, taint: &Taint) -> bool {
    tolerations(pod).iter().any(|t| tolerates(t, taint))
}

/// NodeUnschedulable: `spec.unschedulable` unless the pod tolerates
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &Pod, node: &Node) -> Result<(), Reasons> {
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.to_owned(),
        effect: "NoSchedule".to_owned(),
        ..Taint::default()
    };
    if unschedulable && !tolerated(pod, &taint) {
        return Err(vec![ERR_UNSCHEDULABLE.to_owned()]);
    }
    Ok(())
}

/// NodeName: a pod that names a node fits only there.
pub fn node_name(pod: &Pod, node: &Node) -> Result<(), Reasons> {
    let wanted = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    if !wanted.is_empty() && Some(wanted) != node.metadata.name.as_deref() {
        return Err(vec![ERR_NODE_NAME.to_owned()]);
    }
    Ok(())
}

/// NodeReady: the node's `Ready` condition is `True` (upstream gets this
/// from the `not-ready` taint the node lifecycle controller adds; skiff
/// has no such controller yet, so the condition is read directly and the
/// same toleration lets a pod through).
pub fn node_ready(pod: &Pod, node: &Node) -> Result<(), Reasons> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let taint = Taint {
        key: TAINT_NOT_READY.to_owned(),
        effect: "NoSchedule".to_owned(),
        ..Taint::default()
    };
    if !ready && !tolerated(pod, &taint) {
        return Err(vec![ERR_NOT_READY.to_owned()]);
    }
    Ok(())
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// TaintToleration: every `NoSchedule`/`NoExecute` taint is tolerated.
pub fn taint_toleration(pod: &Pod, node: &Node) -> Result<(), Reasons> {
    if let Some(t) = taints(node)
        .iter()
        .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(pod, t))
    {
        return Err(vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        )]);
    }
    Ok(())
}

/// Untolerated `PreferNoSchedule` taints (the TaintToleration score).
pub fn prefer_no_schedule_count(pod: &Pod, node: &Node) -> i64 {
    let tols: Vec<&Toleration> = tolerations(pod)
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    let n = taints(node)
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tols.iter().any(|tol| tolerates(tol, t)))
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// One `nodeSelectorTerm`: all its expressions (labels) and fields
/// (`metadata.name`) hold; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// NodeAffinity (with `spec.nodeSelector`): the selector's labels are all
/// on the node and one required `nodeSelectorTerm` matches.
pub fn node_affinity(pod: &Pod, node: &Node) -> Result<(), Reasons> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let labels = node.metadata.labels.as_ref();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok =
        required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)));
    if selector_ok && affinity_ok {
        Ok(())
    } else {
        Err(vec![ERR_NODE_AFFINITY.to_owned()])
    }
}

/// Sum of the weights of the preferred node-affinity terms that match
/// (the NodeAffinity score before normalizing).
pub fn preferred_affinity_weight(pod: &Pod, node: &Node) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map_or(0, |terms| {
            terms
                .iter()
                .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
                .map(|t| i64::from(t.weight))
                .sum()
        })
}

/// NodeResourcesFit: cpu, memory and pod count fit in what is left of
/// `status.allocatable`.
pub fn node_resources_fit(pod: &Pod, node: &NodeInfo) -> Result<(), Reasons> {
    let want = pod_requests(pod, false);
    let have = node.allocatable;
    let used = node.requested;
    let mut reasons = Vec::new();
    if used.pods + 1 > have.pods {
        reasons.push("Too many pods".to_owned());
    }
    if want.cpu > 0 && want.cpu > have.cpu - used.cpu {
        reasons.push("Insufficient cpu".to_owned());
    }
    if want.memory > 0 && want.memory > have.memory - used.memory {
        reasons.push("Insufficient memory".to_owned());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": v})).expect("pod")
    }

    fn node(v: serde_json::Value) -> Node {
        let mut n = json!({
            "metadata": {"name": "n1", "labels": {"zone": "a", "cores": "8"}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        });
        merge(&mut n, v);
        serde_json::from_value(n).expect("node")
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn c() -> serde_json::Value {
        json!([{"name": "c"}])
    }

    #[test]
    fn unschedulable_unless_tolerated() {
        let n = node(json!({"spec": {"unschedulable": true}}));
        assert_eq!(
            node_unschedulable(&pod(json!({"containers": c()})), &n),
            Err(vec![ERR_UNSCHEDULABLE.to_owned()])
        );
        let tolerant = pod(json!({"containers": c(), "tolerations": [
            {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}));
        assert!(node_unschedulable(&tolerant, &n).is_ok());
        assert!(node_unschedulable(&pod(json!({"containers": c()})), &node(json!({}))).is_ok());
    }

    #[test]
    fn node_name_filter() {
        let n = node(json!({}));
        assert!(node_name(&pod(json!({"containers": c(), "nodeName": "n1"})), &n).is_ok());
        assert!(node_name(&pod(json!({"containers": c()})), &n).is_ok());
        assert!(node_name(&pod(json!({"containers": c(), "nodeName": "n2"})), &n).is_err());
    }

    #[test]
    fn ready_condition() {
        let p = pod(json!({"containers": c()}));
        assert!(node_ready(&p, &node(json!({}))).is_ok());
        let not_ready =
            node(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(
            node_ready(&p, &not_ready),
            Err(vec![ERR_NOT_READY.to_owned()])
        );
        let none = node(json!({"status": {"conditions": []}}));
        assert!(node_ready(&p, &none).is_err());
    }

    #[test]
    fn taints_and_tolerations() {
        let n = node(json!({"spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"}
        ]}}));
        let p = pod(json!({"containers": c()}));
        assert_eq!(
            taint_toleration(&p, &n),
            Err(vec![
                "node(s) had untolerated taint {dedicated: gpu}".to_owned()
            ])
        );
        let equal = pod(json!({"containers": c(), "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}));
        assert!(taint_toleration(&equal, &n).is_ok());
        let wrong_value = pod(json!({"containers": c(), "tolerations": [
            {"key": "dedicated", "value": "cpu"}]}));
        assert!(taint_toleration(&wrong_value, &n).is_err());
        let all = pod(json!({"containers": c(), "tolerations": [{"operator": "Exists"}]}));
        assert!(taint_toleration(&all, &n).is_ok());
        let no_exec = node(json!({"spec": {"taints": [{"key": "x", "effect": "NoExecute"}]}}));
        assert!(taint_toleration(&p, &no_exec).is_err());
        assert_eq!(prefer_no_schedule_count(&p, &n), 1);
        assert_eq!(prefer_no_schedule_count(&all, &n), 0);
    }

    #[test]
    fn node_selector_and_affinity() {
        let n = node(json!({}));
        let sel = |s: serde_json::Value| pod(json!({"containers": c(), "nodeSelector": s}));
        assert!(node_affinity(&sel(json!({"zone": "a"})), &n).is_ok());
        assert_eq!(
            node_affinity(&sel(json!({"zone": "b"})), &n),
            Err(vec![ERR_NODE_AFFINITY.to_owned()])
        );
        let aff = |exprs: serde_json::Value| {
            pod(json!({"containers": c(), "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}}))
        };
        let ok = |e: serde_json::Value| node_affinity(&aff(e), &n).is_ok();
        assert!(ok(
            json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}])
        ));
        assert!(!ok(
            json!([{"key": "zone", "operator": "In", "values": ["b"]}])
        ));
        assert!(ok(
            json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])
        ));
        assert!(ok(
            json!([{"key": "nope", "operator": "NotIn", "values": ["b"]}])
        ));
        assert!(!ok(
            json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])
        ));
        assert!(ok(json!([{"key": "zone", "operator": "Exists"}])));
        assert!(!ok(json!([{"key": "zone", "operator": "DoesNotExist"}])));
        assert!(ok(json!([{"key": "nope", "operator": "DoesNotExist"}])));
        assert!(ok(
            json!([{"key": "cores", "operator": "Gt", "values": ["4"]}])
        ));
        assert!(!ok(
            json!([{"key": "cores", "operator": "Gt", "values": ["8"]}])
        ));
        assert!(ok(
            json!([{"key": "cores", "operator": "Lt", "values": ["9"]}])
        ));
        assert!(!ok(
            json!([{"key": "zone", "operator": "Lt", "values": ["9"]}])
        ));
        assert!(!ok(json!([
            {"key": "zone", "operator": "Exists"},
            {"key": "cores", "operator": "Lt", "values": ["2"]}])));
        let by_name = pod(json!({"containers": c(), "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
        ]}}}}));
        assert!(node_affinity(&by_name, &n).is_ok());
        let preferred = pod(json!({"containers": c(), "affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 7, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}
        ]}}}));
        assert_eq!(preferred_affinity_weight(&preferred, &n), 5);
    }

    #[test]
    fn resources_fit() {
        let mut info = NodeInfo::new(Arc::new(node(json!({}))));
        let req = |cpu: &str, mem: &str| {
            pod(
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
            )
        };
        assert!(node_resources_fit(&req("2", "4Gi"), &info).is_ok());
        assert_eq!(
            node_resources_fit(&req("2100m", "5Gi"), &info),
            Err(vec![
                "Insufficient cpu".to_owned(),
                "Insufficient memory".to_owned()
            ])
        );
        info.add_pod(&req("1500m", "1Gi"));
        assert!(node_resources_fit(&req("500m", "1Gi"), &info).is_ok());
        assert_eq!(
            node_resources_fit(&req("600m", "1Gi"), &info),
            Err(vec!["Insufficient cpu".to_owned()])
        );
        info.add_pod(&req("0", "0"));
        info.add_pod(&req("0", "0"));
        assert_eq!(
            node_resources_fit(&req("0", "0"), &info),
            Err(vec!["Too many pods".to_owned()])
        );
    }
}
