//! The in-tree plugins, by upstream name, and the default profile.

pub mod balanced_allocation;
pub mod builtin_points;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod scheduling_gates;
pub mod selector;
pub mod taint_toleration;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use serde_json::Value;

use crate::framework::{Framework, Plugin};

/// Upstream's default plugins (multiPoint, v1.33) that skiff has, in
/// order, with their Score weights.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];

fn parse<T: serde::de::DeserializeOwned + Default>(
    name: &str,
    args: Option<&Value>,
) -> Result<T, String> {
    match args {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{name} args: {e}")),
    }
}

/// A plugin by name with its args (`pluginConfig`); an error for an
/// unknown name or bad args.
pub fn new_plugin(name: &str, args: Option<&Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(match name {
        "SchedulingGates" => Arc::new(scheduling_gates::SchedulingGates),
        "PrioritySort" => Arc::new(builtin_points::PrioritySort),
        "DefaultBinder" => Arc::new(builtin_points::DefaultBinder),
        "NodeUnschedulable" => Arc::new(node_unschedulable::NodeUnschedulable),
        "NodeName" => Arc::new(node_name::NodeName),
        "TaintToleration" => Arc::new(taint_toleration::TaintToleration),
        "NodeAffinity" => Arc::new(node_affinity::NodeAffinity),
        "NodePorts" => Arc::new(node_ports::NodePorts),
        "NodeResourcesFit" => Arc::new(node_resources_fit::NodeResourcesFit::new(parse(
            name, args,
        )?)?),
        "NodeResourcesBalancedAllocation" => Arc::new(
            balanced_allocation::BalancedAllocation::new(parse(name, args)?),
        ),
        "ImageLocality" => Arc::new(image_locality::ImageLocality),
        "PodTopologySpread" => Arc::new(pod_topology_spread::PodTopologySpread::new(parse(
            name, args,
        )?)?),
        "InterPodAffinity" => Arc::new(inter_pod_affinity::InterPodAffinity::new(parse(
            name, args,
        )?)?),
        other => return Err(format!("plugin {other:?} does not exist")),
    })
}

/// The default profile (`default-scheduler` or `name`) with every
/// default plugin this build has.
pub fn default_framework(name: &str) -> Framework {
    let mut fw = Framework::new(name);
    for &(plugin, weight) in DEFAULT_PLUGINS {
        // A default plugin not built in yet is left out.
        let Ok(p) = new_plugin(plugin, None) else {
            continue;
        };
        if let Err(e) = fw.enable_all(p, weight) {
            tracing::error!(plugin, error = %e, "default plugin");
        }
    }
    fw
}
