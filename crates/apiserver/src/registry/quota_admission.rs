//! Upstream's ResourceQuota admission on create: every quota of the
//! namespace that tracks something the new object uses is charged before
//! the object is stored, each with a compare-and-swap of the quota's
//! `status.used` — so concurrent creates can never overshoot a limit (a
//! quota of 2 pods admits exactly 2 of any number of racing creates).
//!
//! Deviations, all on the safe side: limits come from `spec.hard`
//! (upstream waits for the controller to copy them into `status.hard`);
//! usage is the larger of `status.used` and a fresh count of the
//! namespace's objects (so neither a quota the controller has not counted
//! yet nor a controller recount racing a create lets a create through);
//! a charge whose create then fails is given back. Updates are not
//! charged (the resourcequota controller recounts them).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use skiff_apimachinery::quantity::parse_milli;

use super::forbidden::forbidden;
use super::write::Part;
use super::{Query, Registry, Target};
use crate::object;
use crate::resources::ResourceInfo;
use crate::status::ApiError;

/// Amounts in milli-units by quota resource name.
pub type Usage = BTreeMap<String, i128>;

/// The compute resources a pod must state for every container once a
/// quota limits them (upstream's backward-compatibility requirement).
const MUST_SPECIFY: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

fn is_pod(r: &ResourceInfo) -> bool {
    r.group.is_empty() && r.kind == "Pod"
}

/// `count/<plural>` or `count/<plural>.<group>`.
fn count_name(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        format!("count/{}", r.plural)
    } else {
        format!("count/{}.{}", r.plural, r.group)
    }
}

/// The core kinds upstream also counts under their bare plural.
fn legacy_count(r: &ResourceInfo) -> bool {
    r.group.is_empty()
        && matches!(
            &*r.plural,
            "pods"
                | "services"
                | "configmaps"
                | "secrets"
                | "persistentvolumeclaims"
                | "replicationcontrollers"
                | "resourcequotas"
        )
}

fn quantity(v: Option<&Value>) -> Option<i128> {
    v.and_then(Value::as_str).and_then(parse_milli)
}

fn containers(pod: &Value, list: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A container's `requests`/`limits` of `resource` (requests fall back to
/// limits, as defaulting does).
fn container_amount(c: &Value, kind: &str, resource: &str) -> Option<i128> {
    let r = c.get("resources")?;
    let own = quantity(r.get(kind).and_then(|m| m.get(resource)));
    if kind == "requests" {
        own.or_else(|| quantity(r.get("limits").and_then(|m| m.get(resource))))
    } else {
        own
    }
}

/// A pod's amount of `resource`: the sum over containers, at least the
/// largest init container, plus overhead.
fn pod_amount(pod: &Value, kind: &str, resource: &str) -> i128 {
    let sum: i128 = containers(pod, "containers")
        .iter()
        .filter_map(|c| container_amount(c, kind, resource))
        .sum();
    let init = containers(pod, "initContainers")
        .iter()
        .filter_map(|c| container_amount(c, kind, resource))
        .max()
        .unwrap_or(0);
    let overhead =
        quantity(pod.pointer("/spec/overhead").and_then(|o| o.get(resource))).unwrap_or(0);
    sum.max(init) + overhead
}

/// `requests.cpu` and plain `cpu` → ("requests", "cpu").
fn compute(name: &str) -> Option<(&'static str, &str)> {
    if let Some(r) = name.strip_prefix("requests.") {
        return Some(("requests", r));
    }
    if let Some(r) = name.strip_prefix("limits.") {
        return Some(("limits", r));
    }
    matches!(name, "cpu" | "memory" | "ephemeral-storage").then_some(("requests", name))
}

/// Pods that no longer hold resources.
fn finished(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// What `obj` uses of the quota resource `name`, if the object is charged
/// for it at all.
pub fn usage_of(r: &ResourceInfo, obj: &Value, name: &str) -> Option<i128> {
    if name == count_name(r) || (legacy_count(r) && name == r.plural) {
        return Some(if is_pod(r) && finished(obj) { 0 } else { 1000 });
    }
    if is_pod(r) {
        let (kind, resource) = compute(name)?;
        return Some(if finished(obj) {
            0
        } else {
            pod_amount(obj, kind, resource)
        });
    }
    if r.group.is_empty() && r.kind == "Service" {
        let kind = obj.pointer("/spec/type").and_then(Value::as_str);
        let ports = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as i128;
        return match name {
            "services.loadbalancers" => Some(i128::from(kind == Some("LoadBalancer")) * 1000),
            "services.nodeports" => Some(match kind {
                Some("NodePort") => ports * 1000,
                Some("LoadBalancer")
                    if obj.pointer("/spec/allocateLoadBalancerNodePorts")
                        != Some(&Value::Bool(false)) =>
                {
                    ports * 1000
                }
                _ => 0,
            }),
            _ => None,
        };
    }
    if r.group.is_empty() && r.kind == "PersistentVolumeClaim" {
        let storage = || quantity(obj.pointer("/spec/resources/requests/storage")).unwrap_or(0);
        if name == "requests.storage" {
            return Some(storage());
        }
        let class = obj
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (prefix, what) = name.split_once(".storageclass.storage.k8s.io/")?;
        if prefix != class {
            return Some(0);
        }
        return match what {
            "requests.storage" => Some(storage()),
            "persistentvolumeclaims" => Some(1000),
            _ => None,
        };
    }
    None
}

/// Whether a quota's scopes (and scope selector) select `pod`; objects
/// other than pods are only limited by quotas without scopes.
fn scopes_match(quota: &Value, r: &ResourceInfo, obj: &Value) -> bool {
    let mut scopes: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_owned(), "Exists".to_owned(), Vec::new()))
        .collect();
    for expr in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |k: &str| expr.get(k).and_then(Value::as_str).unwrap_or_default();
        let values = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        scopes.push((
            text("scopeName").to_owned(),
            text("operator").to_owned(),
            values,
        ));
    }
    if scopes.is_empty() {
        return true;
    }
    if !is_pod(r) {
        return false;
    }
    scopes.iter().all(|(scope, op, values)| {
        let terminating = obj.pointer("/spec/activeDeadlineSeconds").is_some();
        let best_effort = ["containers", "initContainers"].iter().all(|list| {
            containers(obj, list).iter().all(|c| {
                ["requests", "limits"].iter().all(|k| {
                    c.pointer(&format!("/resources/{k}"))
                        .and_then(Value::as_object)
                        .is_none_or(|m| m.is_empty())
                })
            })
        });
        match scope.as_str() {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort,
            "NotBestEffort" => !best_effort,
            "PriorityClass" => {
                let class = obj
                    .pointer("/spec/priorityClassName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match op.as_str() {
                    "In" => values.iter().any(|v| v == class),
                    "NotIn" => !values.iter().any(|v| v == class),
                    "Exists" => !class.is_empty(),
                    "DoesNotExist" => class.is_empty(),
                    _ => false,
                }
            }
            _ => false,
        }
    })
}

fn hard_of(quota: &Value) -> BTreeMap<String, String> {
    quota
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The names of `required` compute resources some container of `pod` does
/// not state, as upstream's "must specify" message lists them.
fn missing_compute(pod: &Value, required: &[&str]) -> Option<String> {
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for c in containers(pod, list) {
            let has =
                |kind: &str, res: &str| c.pointer(&format!("/resources/{kind}/{res}")).is_some();
            for &name in required {
                let stated = match compute(name) {
                    Some(("requests", res)) => has("requests", res),
                    Some((kind, res)) => has(kind, res),
                    None => true,
                };
                if !stated {
                    let cname = c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let names = missing.entry(name).or_default();
                    if !names.contains(&cname) {
                        names.push(cname);
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter_mut()
        .map(|(res, names)| {
            names.sort();
            format!("{res} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// A milli-unit amount as upstream would show it: whole numbers plainly,
/// fractions in `m`, byte amounts in the largest exact binary unit (the
/// resourcequota controller writes the same).
pub fn format(milli: i128, resource: &str) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let value = milli / 1000;
    if (resource.contains("memory") || resource.contains("storage")) && value != 0 {
        for (suffix, shift) in [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ] {
            let unit = 1i128 << shift;
            if value % unit == 0 {
                return format!("{}{suffix}", value / unit);
            }
        }
    }
    value.to_string()
}

fn pretty(pairs: &BTreeMap<String, String>) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a charge was refused (the text after `is forbidden: `).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The quota after charging `delta` (negative to give it back), or the
/// refusal when a limit would be exceeded. What is in use is the larger of
/// `status.used` and `counted` (the objects there are now): a recount the
/// controller started before a concurrent create was stored must not
/// open room the create already took.
pub fn charge(quota: &Value, delta: &Usage, counted: &Usage) -> Result<Value, Refusal> {
    let hard = hard_of(quota);
    let used_now = |name: &str| {
        let recorded = quantity(quota.pointer("/status/used").and_then(|u| u.get(name)));
        recorded
            .unwrap_or(0)
            .max(counted.get(name).copied().unwrap_or(0))
    };
    let mut exceeded = Vec::new();
    let mut next = quota.clone();
    for (name, amount) in delta {
        let Some(limit) = hard.get(name) else {
            continue;
        };
        let used = used_now(name);
        let total = (used + amount).max(0);
        if *amount > 0 && parse_milli(limit).is_some_and(|l| total > l) {
            exceeded.push((name.clone(), used, limit.clone(), *amount));
        }
        let status = next
            .as_object_mut()
            .map(|o| o.entry("status").or_insert_with(|| json!({})));
        if let Some(status) = status.and_then(Value::as_object_mut) {
            let used_map = status.entry("used").or_insert_with(|| json!({}));
            used_map[name.as_str()] = json!(format(total, name));
            let hard_map = status.entry("hard").or_insert_with(|| json!({}));
            hard_map[name.as_str()] = json!(limit);
        }
    }
    if exceeded.is_empty() {
        return Ok(next);
    }
    let requested = exceeded
        .iter()
        .map(|(n, _, _, a)| (n.clone(), format(*a, n)))
        .collect();
    let used = exceeded
        .iter()
        .map(|(n, u, _, _)| (n.clone(), format(*u, n)))
        .collect();
    let limited = exceeded
        .iter()
        .map(|(n, _, l, _)| (n.clone(), l.clone()))
        .collect();
    Err(Refusal(format!(
        "exceeded quota: {}, requested: {}, used: {}, limited: {}",
        object::name(quota).unwrap_or_default(),
        pretty(&requested),
        pretty(&used),
        pretty(&limited),
    )))
}

/// A quota charged for a create, to give back if the create fails.
pub struct Charged {
    quota: String,
    delta: Usage,
}

impl Registry {
    /// Charges every quota of the namespace that limits what `obj` uses;
    /// refuses (403) when one would be exceeded. Nothing is charged on a
    /// dry run.
    pub(super) async fn admit_quota(
        &self,
        t: &Target<'_>,
        obj: &Value,
        dry: bool,
    ) -> Result<Vec<Charged>, ApiError> {
        let Some(ns) = t.namespace.clone().filter(|_| t.r.namespaced) else {
            return Ok(Vec::new());
        };
        let Some(quotas_r) = self.resources.find("", "v1", "resourcequotas") else {
            return Ok(Vec::new());
        };
        let all = Target {
            r: &quotas_r,
            namespace: Some(ns.clone()),
            name: None,
        };
        let quotas = self.list_page(&all, &Query::new()).await?.items;
        let name = t.name.clone().unwrap_or_default();
        let refuse = |reason: &str| forbidden(&t.r.plural, &t.r.group, &name, reason);
        let mut charged: Vec<Charged> = Vec::new();
        for quota in quotas {
            let quota_name = object::name(&quota).unwrap_or_default().to_owned();
            if object::is_deleting(&quota) || !scopes_match(&quota, t.r, obj) {
                continue;
            }
            let hard = hard_of(&quota);
            let delta: Usage = hard
                .keys()
                .filter_map(|n| usage_of(t.r, obj, n).map(|a| (n.clone(), a)))
                .collect();
            if delta.is_empty() {
                continue;
            }
            if is_pod(t.r) {
                let required: Vec<&str> = MUST_SPECIFY
                    .into_iter()
                    .filter(|n| hard.contains_key(*n))
                    .collect();
                if let Some(missing) = missing_compute(obj, &required) {
                    self.refund(&ns, &charged).await;
                    return Err(refuse(&format!("failed quota: {quota_name}: {missing}")));
                }
            }
            let counted = self.count_current(&ns, &delta).await;
            let target = Target {
                r: &quotas_r,
                namespace: Some(ns.clone()),
                name: Some(quota_name.clone()),
            };
            let result = self
                .update_object(&target, None, dry, Part::Status, |current| {
                    charge(current, &delta, &counted).map_err(|Refusal(reason)| refuse(&reason))
                })
                .await;
            match result {
                Ok(_) if !dry => charged.push(Charged {
                    quota: quota_name,
                    delta,
                }),
                Ok(_) => {}
                // The quota went away meanwhile: it limits nothing.
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    self.refund(&ns, &charged).await;
                    return Err(e);
                }
            }
        }
        Ok(charged)
    }

    /// Gives back what a failed create was charged (best effort: the
    /// resourcequota controller recounts anyway).
    pub(super) async fn refund(&self, ns: &str, charged: &[Charged]) {
        let Some(quotas_r) = self.resources.find("", "v1", "resourcequotas") else {
            return;
        };
        for c in charged {
            let target = Target {
                r: &quotas_r,
                namespace: Some(ns.to_owned()),
                name: Some(c.quota.clone()),
            };
            let back: Usage = c.delta.iter().map(|(k, v)| (k.clone(), -v)).collect();
            let none = Usage::new();
            let _ = self
                .update_object(&target, None, false, Part::Status, |current| {
                    Ok(charge(current, &back, &none).unwrap_or_else(|_| current.clone()))
                })
                .await;
        }
    }

    /// What the namespace uses now of the resources in `delta`, counted
    /// from a consistent read of the watch cache.
    async fn count_current(&self, ns: &str, delta: &Usage) -> Usage {
        let mut out = Usage::new();
        for name in delta.keys() {
            let Some(r) = self.counted_resource(name) else {
                continue;
            };
            let all = Target {
                r: &r,
                namespace: Some(ns.to_owned()),
                name: None,
            };
            let Ok(page) = self.list_page(&all, &Query::new()).await else {
                continue;
            };
            let total = page
                .items
                .iter()
                .filter_map(|o| usage_of(&r, o, name))
                .sum();
            out.insert(name.clone(), total);
        }
        out
    }

    /// The resource whose objects a quota resource name counts.
    fn counted_resource(&self, name: &str) -> Option<std::sync::Arc<ResourceInfo>> {
        if let Some(rest) = name.strip_prefix("count/") {
            let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
            let snapshot = self.resources.snapshot();
            let version = snapshot
                .iter()
                .find(|r| r.group == group && r.plural == plural)
                .map(|r| r.version.clone())?;
            return self.resources.find(group, &version, plural);
        }
        let plural = if compute(name).is_some() {
            "pods"
        } else if name.starts_with("services.") {
            "services"
        } else if name == "requests.storage" || name.contains(".storageclass.storage.k8s.io/") {
            "persistentvolumeclaims"
        } else {
            name
        };
        self.resources.find("", "v1", plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(hard: Value, used: Option<Value>) -> Value {
        let mut q = json!({"metadata": {"name": "q"}, "spec": {"hard": hard}});
        if let Some(used) = used {
            q["status"] = json!({"used": used});
        }
        q
    }

    #[test]
    fn charges_until_the_limit_then_refuses_in_upstreams_words() {
        let delta: Usage = [("pods".to_owned(), 1000)].into();
        let q = quota(json!({"pods": "2"}), Some(json!({"pods": "1"})));
        let next = charge(&q, &delta, &Usage::new()).unwrap_or_default();
        assert_eq!(next["status"]["used"]["pods"], "2");
        assert_eq!(
            charge(&next, &delta, &Usage::new()),
            Err(Refusal(
                "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into()
            ))
        );
        // Unknown usage comes from the count, and a count above a stale
        // status wins.
        let counted: Usage = [("pods".to_owned(), 2000)].into();
        let fresh = quota(json!({"pods": "2"}), None);
        assert!(charge(&fresh, &delta, &counted).is_err());
        let stale = quota(json!({"pods": "2"}), Some(json!({"pods": "1"})));
        assert!(charge(&stale, &delta, &counted).is_err());
    }

    #[test]
    fn compute_resources_are_charged_and_required() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}}},
                {"name": "b"},
            ],
        }});
        let table = crate::resources::ResourceTable::new(crate::resources::builtin());
        let r = table.find("", "v1", "pods");
        let Some(r) = r else {
            panic!("pods are served")
        };
        assert_eq!(usage_of(&r, &pod, "requests.cpu"), Some(250));
        assert_eq!(usage_of(&r, &pod, "cpu"), Some(250));
        assert_eq!(usage_of(&r, &pod, "limits.memory"), Some((64 << 20) * 1000));
        assert_eq!(usage_of(&r, &pod, "count/pods"), Some(1000));
        assert_eq!(format((64 << 20) * 1000, "limits.memory"), "64Mi");
        assert_eq!(
            missing_compute(&pod, &["limits.cpu", "requests.cpu"]).as_deref(),
            Some("must specify limits.cpu for: a,b; requests.cpu for: b")
        );
    }
}
