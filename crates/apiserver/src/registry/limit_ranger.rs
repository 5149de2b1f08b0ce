//! Upstream's LimitRanger admission on create: the LimitRanges of a
//! namespace give containers their default requests and limits, then
//! bound what containers, whole pods and PersistentVolumeClaims ask for
//! (`min`, `max`, `maxLimitRequestRatio`). A violation is a 403 listing
//! every broken bound in upstream's words.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use skiff_apimachinery::quantity::parse_milli;

use super::forbidden::forbidden;
use super::{Query, Registry, Target};
use crate::status::ApiError;

/// The annotation recording what the plugin filled in.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

type Resources = BTreeMap<String, String>;

fn resources(v: Option<&Value>) -> Resources {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn milli(q: &str) -> i128 {
    parse_milli(q).unwrap_or(0)
}

/// One `spec.limits` item with upstream's LimitRange defaulting applied
/// (`default` from `max`, `defaultRequest` from `default`, then `min`).
#[derive(Debug, Default)]
pub struct Item {
    kind: String,
    min: Resources,
    max: Resources,
    ratio: Resources,
    default: Resources,
    default_request: Resources,
}

impl Item {
    fn from_json(v: &Value) -> Item {
        let mut item = Item {
            kind: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            min: resources(v.get("min")),
            max: resources(v.get("max")),
            ratio: resources(v.get("maxLimitRequestRatio")),
            default: resources(v.get("default")),
            default_request: resources(v.get("defaultRequest")),
        };
        if item.kind == "Container" {
            for (k, q) in &item.max {
                item.default.entry(k.clone()).or_insert_with(|| q.clone());
            }
            for (k, q) in item.default.iter().chain(&item.min) {
                item.default_request
                    .entry(k.clone())
                    .or_insert_with(|| q.clone());
            }
        }
        item
    }
}

/// The items of every LimitRange given.
pub fn items(limit_ranges: &[Value]) -> Vec<Item> {
    limit_ranges
        .iter()
        .flat_map(|lr| {
            lr.pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| Item::from_json(&v))
        .collect()
}

/// Fills in the containers' missing requests and limits from the
/// `Container` items; records what was set in the pod's annotation.
pub fn apply_defaults(pod: &mut Value, items: &[Item]) {
    let mut notes = Vec::new();
    for (list, label) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let res = c.entry("resources").or_insert_with(|| json!({}));
            let Some(res) = res.as_object_mut() else {
                continue;
            };
            let mut set_requests = BTreeSet::new();
            let mut set_limits = BTreeSet::new();
            for item in items.iter().filter(|i| i.kind == "Container") {
                fill(res, "limits", &item.default, &mut set_limits);
                fill(res, "requests", &item.default_request, &mut set_requests);
            }
            for (set, what) in [(set_requests, "request"), (set_limits, "limit")] {
                if !set.is_empty() {
                    let names: Vec<&str> = set.iter().map(String::as_str).collect();
                    notes.push(format!("{} {what} for {label} {name}", names.join(", ")));
                }
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(
            ANNOTATION.into(),
            json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
        );
    }
}

fn fill(
    res: &mut Map<String, Value>,
    kind: &str,
    defaults: &Resources,
    set: &mut BTreeSet<String>,
) {
    if defaults.is_empty() {
        return;
    }
    let map = res.entry(kind).or_insert_with(|| json!({}));
    let Some(map) = map.as_object_mut() else {
        return;
    };
    for (k, q) in defaults {
        if !map.contains_key(k) {
            map.insert(k.clone(), json!(q));
            set.insert(k.clone());
        }
    }
}

fn min_constraint(
    kind: &str,
    res: &str,
    enforced: &str,
    req: &Resources,
    lim: &Resources,
) -> Option<String> {
    let Some(r) = req.get(res) else {
        return Some(format!(
            "minimum {res} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if milli(r) < milli(enforced) {
        return Some(format!(
            "minimum {res} usage per {kind} is {enforced}, but request is {r}"
        ));
    }
    match lim.get(res) {
        Some(l) if milli(l) < milli(enforced) => Some(format!(
            "minimum {res} usage per {kind} is {enforced}, but limit is {l}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    res: &str,
    enforced: &str,
    req: &Resources,
    lim: &Resources,
) -> Option<String> {
    let Some(l) = lim.get(res) else {
        return Some(format!(
            "maximum {res} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if milli(l) > milli(enforced) {
        return Some(format!(
            "maximum {res} usage per {kind} is {enforced}, but limit is {l}"
        ));
    }
    match req.get(res) {
        Some(r) if milli(r) > milli(enforced) => Some(format!(
            "maximum {res} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    res: &str,
    enforced: &str,
    req: &Resources,
    lim: &Resources,
) -> Option<String> {
    let r = req.get(res).map_or(0, |q| milli(q));
    if r == 0 {
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    }
    let l = lim.get(res).map_or(0, |q| milli(q));
    if l == 0 {
        return Some(format!(
            "{res} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let observed = l as f64 / r as f64;
    (observed * 1000.0 > milli(enforced) as f64).then(|| {
        format!(
            "{res} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"
        )
    })
}

fn check(item: &Item, kind: &str, req: &Resources, lim: &Resources, errors: &mut Vec<String>) {
    for (res, q) in &item.min {
        errors.extend(min_constraint(kind, res, q, req, lim));
    }
    for (res, q) in &item.max {
        errors.extend(max_constraint(kind, res, q, req, lim));
    }
    for (res, q) in &item.ratio {
        errors.extend(ratio_constraint(kind, res, q, req, lim));
    }
}

fn container_resources(c: &Value, kind: &str) -> Resources {
    resources(c.pointer(&format!("/resources/{kind}")))
}

/// A pod's total of each resource some container states: containers
/// summed, at least the largest init container.
fn pod_total(pod: &Value, kind: &str) -> Resources {
    let mut sum: BTreeMap<String, i128> = BTreeMap::new();
    let list = |name: &str| {
        pod.pointer(&format!("/spec/{name}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for c in list("containers") {
        for (k, q) in container_resources(&c, kind) {
            *sum.entry(k).or_insert(0) += milli(&q);
        }
    }
    for c in list("initContainers") {
        for (k, q) in container_resources(&c, kind) {
            let v = sum.entry(k).or_insert(0);
            *v = (*v).max(milli(&q));
        }
    }
    sum.into_iter()
        .map(|(k, v)| {
            let shown = super::quota_admission::format(v, &k);
            (k, shown)
        })
        .collect()
}

/// Every bound a pod breaks.
pub fn pod_violations(pod: &Value, items: &[Item]) -> Vec<String> {
    let mut errors = Vec::new();
    for item in items {
        match item.kind.as_str() {
            "Container" => {
                for list in ["containers", "initContainers"] {
                    for c in pod
                        .pointer(&format!("/spec/{list}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let req = container_resources(c, "requests");
                        let lim = container_resources(c, "limits");
                        check(item, "Container", &req, &lim, &mut errors);
                    }
                }
            }
            "Pod" => {
                let req = pod_total(pod, "requests");
                let lim = pod_total(pod, "limits");
                check(item, "Pod", &req, &lim, &mut errors);
            }
            _ => {}
        }
    }
    errors
}

/// Every bound a PersistentVolumeClaim's storage request breaks.
pub fn claim_violations(pvc: &Value, items: &[Item]) -> Vec<String> {
    let req = resources(pvc.pointer("/spec/resources/requests"));
    let mut errors = Vec::new();
    for item in items.iter().filter(|i| i.kind == "PersistentVolumeClaim") {
        for (res, q) in &item.min {
            errors.extend(min_constraint(
                "PersistentVolumeClaim",
                res,
                q,
                &req,
                &Resources::new(),
            ));
        }
        for (res, q) in &item.max {
            match req.get(res) {
                None => errors.push(format!(
                    "maximum {res} usage per PersistentVolumeClaim is {q}.  No request is specified"
                )),
                Some(r) if milli(r) > milli(q) => errors.push(format!(
                    "maximum {res} usage per PersistentVolumeClaim is {q}, but request is {r}"
                )),
                _ => {}
            }
        }
    }
    errors
}

/// Upstream's aggregate error text: one message as is, several in
/// brackets (duplicates dropped).
fn aggregate(errors: Vec<String>) -> String {
    let mut seen = BTreeSet::new();
    let unique: Vec<String> = errors
        .into_iter()
        .filter(|e| seen.insert(e.clone()))
        .collect();
    if unique.len() == 1 {
        unique.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", unique.join(", "))
    }
}

impl Registry {
    /// LimitRanger on a new pod or PersistentVolumeClaim.
    pub(super) async fn admit_limit_ranges(
        &self,
        t: &Target<'_>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        let is_pod = t.r.group.is_empty() && t.r.kind == "Pod";
        let is_claim = t.r.group.is_empty() && t.r.kind == "PersistentVolumeClaim";
        if !is_pod && !is_claim {
            return Ok(());
        }
        let Some(r) = self.resources.find("", "v1", "limitranges") else {
            return Ok(());
        };
        let all = Target {
            r: &r,
            namespace: t.namespace.clone(),
            name: None,
        };
        let ranges = self.list_page(&all, &Query::new()).await?.items;
        if ranges.is_empty() {
            return Ok(());
        }
        let items = items(&ranges);
        let errors = if is_pod {
            apply_defaults(obj, &items);
            pod_violations(obj, &items)
        } else {
            claim_violations(obj, &items)
        };
        if errors.is_empty() {
            return Ok(());
        }
        Err(forbidden(
            &t.r.plural,
            "",
            t.name.as_deref().unwrap_or_default(),
            &aggregate(errors),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Vec<Item> {
        items(&[json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"}, "defaultRequest": {"memory": "64Mi"}},
            {"type": "Pod", "max": {"memory": "1Gi"}},
        ]}})])
    }

    #[test]
    fn defaults_then_bounds() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        apply_defaults(&mut pod, &range());
        // `max` becomes the default limit and (through it) the default request.
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1"
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container c; cpu limit for container c"
        );
        // The pod item has no memory limit to check against.
        assert_eq!(
            pod_violations(&pod, &range()),
            vec!["maximum memory usage per Pod is 1Gi.  No limit is specified".to_owned()]
        );
        let big = json!({"spec": {"containers": [{"name": "c", "resources": {
            "limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "50m", "memory": "1Gi"}}}]}});
        assert_eq!(
            aggregate(pod_violations(&big, &range())),
            "[minimum cpu usage per Container is 100m, but request is 50m, maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Pod is 1Gi, but limit is 2Gi]"
        );
    }

    #[test]
    fn ratio_and_claims() {
        let ratio = items(&[json!({"spec": {"limits": [
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}},
        ]}})]);
        let pod = json!({"spec": {"containers": [{"name": "c", "resources": {
            "limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}}]}});
        assert_eq!(
            pod_violations(&pod, &ratio),
            vec![
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
                    .to_owned()
            ]
        );
        let pvc = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}});
        assert_eq!(
            claim_violations(&pvc, &ratio),
            vec![
                "maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi"
                    .to_owned()
            ]
        );
    }
}
