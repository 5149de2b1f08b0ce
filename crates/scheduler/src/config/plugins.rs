//! Which plugins exist, which extension points each implements, the
//! default profile, and upstream's two-step resolution of a profile's
//! `plugins`: `mergePlugins` (v1 defaulting: the user's sets merged over
//! the default sets, point by point) then the framework's
//! `expandMultiPointPlugins` (multiPoint plugins spread over every point
//! they implement, with specific points taking precedence).

use std::collections::{BTreeMap, HashSet};

use super::PluginRef;
use super::file::{Plugin, PluginSet, Plugins};

/// Extension points by upstream config name, in the order a pod meets
/// them.
pub const EXTENSION_POINTS: [&str; 12] = [
    "preEnqueue",
    "queueSort",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
    "postBind",
];

/// Upstream's in-tree plugins skiff does not implement (volumes). Part of
/// upstream's defaults, so a file may disable them; enabling one is an
/// error rather than a plugin silently missing.
pub const UNSUPPORTED: &[&str] = &[
    "VolumeRestrictions",
    "NodeVolumeLimits",
    "VolumeBinding",
    "VolumeZone",
    "EBSLimits",
    "GCEPDLimits",
    "AzureDiskLimits",
    "CinderLimits",
    "DynamicResources",
];

/// Upstream v1's default profile (`getDefaultPlugins`, v1.33) without the
/// volume plugins: everything through multiPoint, in upstream's order,
/// with upstream's score weights.
pub const DEFAULT_MULTI_POINT: &[(&str, Option<i32>)] = &[
    ("SchedulingGates", None),
    ("PrioritySort", None),
    ("NodeUnschedulable", None),
    ("NodeName", None),
    ("TaintToleration", Some(3)),
    ("NodeAffinity", Some(2)),
    ("NodePorts", None),
    ("NodeResourcesFit", Some(1)),
    ("PodTopologySpread", Some(2)),
    ("InterPodAffinity", Some(2)),
    ("DefaultPreemption", None),
    ("NodeResourcesBalancedAllocation", Some(1)),
    ("ImageLocality", Some(1)),
    ("DefaultBinder", None),
];

/// The extension points (config names) `name` implements, as the
/// plugin itself declares them; `None` for unknown plugins.
pub fn points_of(name: &str) -> Option<Vec<&'static str>> {
    crate::plugins::points_of(name).map(|ps| ps.iter().map(|p| p.config_name()).collect())
}

fn default_plugins() -> Plugins {
    Plugins {
        multi_point: PluginSet {
            enabled: DEFAULT_MULTI_POINT
                .iter()
                .map(|(name, weight)| Plugin {
                    name: (*name).to_owned(),
                    weight: *weight,
                })
                .collect(),
            disabled: Vec::new(),
        },
        ..Default::default()
    }
}

/// Upstream's `mergePluginSet`: disabled names (or `*`) drop defaults; an
/// enabled plugin that is also a default replaces it in place (keeping
/// the default order, taking the user's weight); the other enabled
/// plugins are appended in the user's order.
fn merge_set(default: &PluginSet, custom: &PluginSet) -> PluginSet {
    let mut disabled: Vec<Plugin> = custom
        .disabled
        .iter()
        .map(|p| Plugin {
            name: p.name.clone(),
            weight: None,
        })
        .collect();
    let mut disabled_names: HashSet<&str> = custom.disabled.iter().map(|p| &*p.name).collect();
    for p in &default.disabled {
        if disabled_names.insert(&p.name) {
            disabled.push(p.clone());
        }
    }
    let mut replaced = HashSet::new();
    let mut enabled = Vec::new();
    if !disabled_names.contains("*") {
        for p in &default.enabled {
            if disabled_names.contains(&*p.name) {
                continue;
            }
            // The last entry of a name wins, as upstream's map does.
            match custom.enabled.iter().rposition(|c| c.name == p.name) {
                Some(i) => {
                    replaced.insert(i);
                    enabled.push(custom.enabled[i].clone());
                }
                None => enabled.push(p.clone()),
            }
        }
    }
    for (i, p) in custom.enabled.iter().enumerate() {
        if !replaced.contains(&i) {
            enabled.push(p.clone());
        }
    }
    PluginSet { enabled, disabled }
}

/// A profile's plugins after merging with the defaults (v1 defaulting).
pub fn merge(custom: Option<&Plugins>) -> Plugins {
    let default = default_plugins();
    let Some(custom) = custom else {
        return default;
    };
    let set = |d: &PluginSet, c: &PluginSet| merge_set(d, c);
    Plugins {
        pre_enqueue: set(&default.pre_enqueue, &custom.pre_enqueue),
        queue_sort: set(&default.queue_sort, &custom.queue_sort),
        pre_filter: set(&default.pre_filter, &custom.pre_filter),
        filter: set(&default.filter, &custom.filter),
        post_filter: set(&default.post_filter, &custom.post_filter),
        pre_score: set(&default.pre_score, &custom.pre_score),
        score: set(&default.score, &custom.score),
        reserve: set(&default.reserve, &custom.reserve),
        permit: set(&default.permit, &custom.permit),
        pre_bind: set(&default.pre_bind, &custom.pre_bind),
        bind: set(&default.bind, &custom.bind),
        post_bind: set(&default.post_bind, &custom.post_bind),
        multi_point: set(&default.multi_point, &custom.multi_point),
    }
}

/// Checks every enabled name of the user's own sets (before merging, so
/// the error points at what the user wrote).
pub fn check_enabled(plugins: &Plugins, path: &str, errors: &mut Vec<String>) {
    for point in EXTENSION_POINTS.iter().copied().chain(["multiPoint"]) {
        let Some(set) = plugins.point(point) else {
            continue;
        };
        for (i, p) in set.enabled.iter().enumerate() {
            let at = format!("{path}.{point}.enabled[{i}]");
            if UNSUPPORTED.contains(&p.name.as_str()) {
                errors.push(format!(
                    "{at}: plugin {:?} is not supported by skiff (no volume scheduling)",
                    p.name
                ));
                continue;
            }
            let Some(implemented) = points_of(&p.name) else {
                errors.push(format!(
                    "{at}: unknown plugin {:?} (known: {})",
                    p.name,
                    crate::plugins::NAMES.join(", ")
                ));
                continue;
            };
            if point != "multiPoint" && !implemented.contains(&point) {
                errors.push(format!(
                    "{at}: plugin {:?} does not extend {point} (it implements {})",
                    p.name,
                    implemented.join(", ")
                ));
            }
            if let Some(w) = p.weight
                && w < 0
            {
                errors.push(format!(
                    "{at}.weight: Invalid value: {w}: must not be negative"
                ));
            }
        }
    }
}

/// Upstream's framework construction on merged plugins: each point's own
/// list, then `expandMultiPointPlugins` (overridden plugins first in
/// their point's order, then multiPoint plugins, then the point's
/// others), then score weights (the score entry's, else the multiPoint
/// entry's; zero means one). Errors on double registration and on a
/// missing queue-sort or bind plugin.
pub fn expand(
    merged: &Plugins,
    path: &str,
) -> Result<BTreeMap<&'static str, Vec<PluginRef>>, String> {
    let mut points = BTreeMap::new();
    for point in EXTENSION_POINTS {
        let set = merged.point(point).cloned().unwrap_or_default();
        let mut enabled: Vec<&str> = Vec::new();
        for p in &set.enabled {
            if enabled.contains(&p.name.as_str()) {
                return Err(format!(
                    "{path}.{point}: plugin {:?} already registered as {point}",
                    p.name
                ));
            }
            enabled.push(&p.name);
        }
        let disabled: HashSet<&str> = set.disabled.iter().map(|p| &*p.name).collect();
        let mut order: Vec<&str> = Vec::new();
        if disabled.contains("*") {
            order = enabled.clone();
        } else {
            let mut overridden: HashSet<&str> = HashSet::new();
            let mut multi: Vec<&str> = Vec::new();
            for p in &merged.multi_point.enabled {
                let implements = points_of(&p.name).is_some_and(|ps| ps.contains(&point));
                if !implements || disabled.contains(&*p.name) {
                    continue;
                }
                if enabled.contains(&p.name.as_str()) {
                    overridden.insert(&p.name);
                    continue;
                }
                if multi.contains(&p.name.as_str()) {
                    return Err(format!(
                        "{path}.multiPoint: plugin {:?} already registered as {point}",
                        p.name
                    ));
                }
                multi.push(&p.name);
            }
            order.extend(enabled.iter().filter(|n| overridden.contains(*n)));
            order.extend(&multi);
            order.extend(enabled.iter().filter(|n| !overridden.contains(*n)));
        }
        let refs = order
            .into_iter()
            .map(|name| PluginRef {
                name: name.to_owned(),
                weight: if point == "score" {
                    score_weight(merged, name)
                } else {
                    0
                },
            })
            .collect();
        points.insert(point, refs);
    }
    match points.get("queueSort").map_or(0, Vec::len) {
        0 => return Err(format!("{path}: no queue sort plugin is enabled")),
        1 => {}
        _ => return Err(format!("{path}: only one queue sort plugin can be enabled")),
    }
    if points.get("bind").is_none_or(Vec::is_empty) {
        return Err(format!("{path}: at least one bind plugin is needed"));
    }
    Ok(points)
}

fn score_weight(merged: &Plugins, name: &str) -> i64 {
    let weight = merged
        .score
        .enabled
        .iter()
        .chain(&merged.multi_point.enabled)
        .find(|p| p.name == name)
        .and_then(|p| p.weight)
        .unwrap_or(0);
    if weight == 0 { 1 } else { i64::from(weight) }
}
