//! Plugin arguments (`pluginConfig[].args`): upstream v1's defaults per
//! plugin, the user's args merged over them, and upstream's validation of
//! the fields skiff's plugins read. Kept as JSON in upstream's camelCase
//! shape so plugins decode exactly what upstream documents.

use serde_json::{Value, json};

/// Upstream v1's defaulted args for the plugins that take args.
pub fn default_args(plugin: &str) -> Option<Value> {
    Some(match plugin {
        "NodeResourcesFit" => json!({
            "scoringStrategy": {
                "type": "LeastAllocated",
                "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}],
            },
        }),
        "PodTopologySpread" => json!({"defaultingType": "System"}),
        "InterPodAffinity" => json!({
            "hardPodAffinityWeight": 1,
            "ignorePreferredTermsOfExistingPods": false,
        }),
        "NodeResourcesBalancedAllocation" => json!({
            "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}],
        }),
        "DefaultPreemption" => json!({
            "minCandidateNodesPercentage": 10,
            "minCandidateNodesAbsolute": 100,
        }),
        "NodeAffinity" => json!({}),
        _ => return None,
    })
}

/// The constraints PodTopologySpread applies with `defaultingType: System`
/// to pods that have none (upstream's `systemDefaultConstraints`): spread
/// softly over zones (maxSkew 5) and hosts (maxSkew 3).
pub fn system_default_constraints() -> Value {
    json!([
        {"maxSkew": 3, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"},
        {"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
    ])
}

/// Merges `user` over `default`: objects field by field, anything else
/// (lists included) replaced — upstream decodes the user's args and then
/// defaults only the fields left unset.
pub fn merge(default: Value, user: Value) -> Value {
    match (default, user) {
        (Value::Object(mut d), Value::Object(u)) => {
            for (k, v) in u {
                let merged = match d.remove(&k) {
                    Some(dv) if !v.is_null() => merge(dv, v),
                    Some(dv) => dv,
                    None => v,
                };
                d.insert(k, merged);
            }
            Value::Object(d)
        }
        (_, u) => u,
    }
}

/// Upstream's post-decoding defaults that depend on the user's values:
/// resource weights of 0 mean 1, an empty resource list means cpu+memory.
pub fn finish_defaults(plugin: &str, args: &mut Value) {
    let resources = match plugin {
        "NodeResourcesFit" => args.pointer_mut("/scoringStrategy/resources"),
        "NodeResourcesBalancedAllocation" => args.pointer_mut("/resources"),
        _ => None,
    };
    if let Some(resources) = resources {
        if resources.as_array().is_none_or(Vec::is_empty) {
            *resources = json!([{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]);
        }
        if let Some(list) = resources.as_array_mut() {
            for r in list {
                if r.get("weight").and_then(Value::as_i64).unwrap_or(0) == 0
                    && let Some(o) = r.as_object_mut()
                {
                    o.insert("weight".to_owned(), json!(1));
                }
            }
        }
    }
    if plugin == "PodTopologySpread"
        && args.get("defaultingType").is_none()
        && let Some(o) = args.as_object_mut()
    {
        let has_constraints = o
            .get("defaultConstraints")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        let kind = if has_constraints { "List" } else { "System" };
        o.insert("defaultingType".to_owned(), json!(kind));
    }
}

fn int(args: &Value, pointer: &str) -> Option<i64> {
    args.pointer(pointer).and_then(Value::as_i64)
}

/// Upstream's validation of the args (field errors under `path`).
pub fn validate(plugin: &str, args: &Value, path: &str, errors: &mut Vec<String>) {
    if !args.is_object() {
        errors.push(format!("{path}: Invalid value: must be an object"));
        return;
    }
    match plugin {
        "NodeResourcesFit" => {
            let strategy = format!("{path}.scoringStrategy");
            let kind = args
                .pointer("/scoringStrategy/type")
                .and_then(Value::as_str)
                .unwrap_or("");
            let supported = [
                "LeastAllocated",
                "MostAllocated",
                "RequestedToCapacityRatio",
            ];
            if !supported.contains(&kind) {
                errors.push(format!(
                    "{strategy}.type: Unsupported value: {kind:?}: supported values: \"LeastAllocated\", \"MostAllocated\", \"RequestedToCapacityRatio\""
                ));
            }
            resources(
                args,
                "/scoringStrategy/resources",
                &strategy,
                1..=100,
                errors,
            );
            if kind == "RequestedToCapacityRatio" {
                let shape = args
                    .pointer("/scoringStrategy/requestedToCapacityRatio/shape")
                    .and_then(Value::as_array);
                if shape.is_none_or(Vec::is_empty) {
                    errors.push(format!(
                        "{strategy}.requestedToCapacityRatio.shape: Required value: at least one point must be specified"
                    ));
                }
            }
        }
        "NodeResourcesBalancedAllocation" => {
            resources(args, "/resources", path, 1..=1, errors);
        }
        "InterPodAffinity" => {
            let w = int(args, "/hardPodAffinityWeight").unwrap_or(-1);
            if !(0..=100).contains(&w) {
                errors.push(format!(
                    "{path}.hardPodAffinityWeight: Invalid value: {}: not in valid range [0, 100]",
                    args.get("hardPodAffinityWeight").unwrap_or(&Value::Null)
                ));
            }
        }
        "DefaultPreemption" => {
            let pct = int(args, "/minCandidateNodesPercentage").unwrap_or(-1);
            let abs = int(args, "/minCandidateNodesAbsolute").unwrap_or(-1);
            if !(0..=100).contains(&pct) {
                errors.push(format!(
                    "{path}.minCandidateNodesPercentage: Invalid value: {pct}: not in valid range [0, 100]"
                ));
            }
            if abs < 0 {
                errors.push(format!(
                    "{path}.minCandidateNodesAbsolute: Invalid value: {abs}: not in valid range [0, inf)"
                ));
            }
            if pct == 0 && abs == 0 {
                errors.push(format!(
                    "{path}: Invalid value: both minCandidateNodesPercentage and minCandidateNodesAbsolute cannot be zero"
                ));
            }
        }
        "PodTopologySpread" => {
            let kind = args
                .get("defaultingType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let constraints = args.get("defaultConstraints").and_then(Value::as_array);
            match kind {
                "System" if constraints.is_some_and(|c| !c.is_empty()) => errors.push(format!(
                    "{path}.defaultConstraints: Invalid value: when .defaultingType is \"System\", .defaultConstraints must be empty"
                )),
                "System" | "List" => {}
                other => errors.push(format!(
                    "{path}.defaultingType: Unsupported value: {other:?}: supported values: \"List\", \"System\""
                )),
            }
            for (i, c) in constraints.into_iter().flatten().enumerate() {
                let at = format!("{path}.defaultConstraints[{i}]");
                if int(c, "/maxSkew").unwrap_or(0) <= 0 {
                    errors.push(format!(
                        "{at}.maxSkew: Invalid value: must be greater than zero"
                    ));
                }
                if c.get("topologyKey")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errors.push(format!(
                        "{at}.topologyKey: Required value: can not be empty"
                    ));
                }
                let when = c
                    .get("whenUnsatisfiable")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !["DoNotSchedule", "ScheduleAnyway"].contains(&when) {
                    errors.push(format!(
                        "{at}.whenUnsatisfiable: Unsupported value: {when:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
                    ));
                }
                if c.get("labelSelector").is_some() {
                    errors.push(format!(
                        "{at}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
                    ));
                }
            }
        }
        _ => {}
    }
}

fn resources(
    args: &Value,
    pointer: &str,
    path: &str,
    weights: std::ops::RangeInclusive<i64>,
    errors: &mut Vec<String>,
) {
    let Some(list) = args.pointer(pointer).and_then(Value::as_array) else {
        return;
    };
    let field = pointer.rsplit('/').next().unwrap_or("resources");
    let mut seen = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let at = format!("{path}.{field}[{i}]");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            errors.push(format!("{at}.name: Required value"));
        } else if seen.contains(&name) {
            errors.push(format!("{at}.name: Duplicate value: {name:?}"));
        }
        seen.push(name);
        let w = r.get("weight").and_then(Value::as_i64).unwrap_or(0);
        if !weights.contains(&w) {
            let range = if weights.start() == weights.end() {
                format!("must be {}", weights.start())
            } else {
                format!(
                    "resource weight of {name} not in valid range [{}, {}]",
                    weights.start(),
                    weights.end()
                )
            };
            errors.push(format!("{at}.weight: Invalid value: {w}: {range}"));
        }
    }
}
