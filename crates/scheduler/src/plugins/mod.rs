//! The in-tree plugins, by upstream name, and the default profile.

pub mod balanced_allocation;
pub mod builtin_points;
pub(crate) mod count_memo;
pub mod default_preemption;
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

use crate::config::{EXTENSION_POINTS, ProfileConfig};
use crate::framework::{ExtensionPoint, Framework, Plugin};

/// Every plugin this build has, by upstream name.
pub const NAMES: &[&str] = &[
    "SchedulingGates",
    "PrioritySort",
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "PodTopologySpread",
    "InterPodAffinity",
    "DefaultPreemption",
    "NodeResourcesBalancedAllocation",
    "ImageLocality",
    "DefaultBinder",
];

/// The points a plugin implements (from the plugin itself).
pub fn points_of(name: &str) -> Option<&'static [ExtensionPoint]> {
    new_plugin(name, None).ok().map(|p| p.points())
}

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
        "DefaultPreemption" => Arc::new(default_preemption::DefaultPreemption::new(parse(
            name, args,
        )?)?),
        "PodTopologySpread" => Arc::new(pod_topology_spread::PodTopologySpread::new(parse(
            name, args,
        )?)?),
        "InterPodAffinity" => Arc::new(inter_pod_affinity::InterPodAffinity::new(parse(
            name, args,
        )?)?),
        other => return Err(format!("plugin {other:?} does not exist")),
    })
}

/// Upstream's default profile under `name`.
pub fn default_framework(name: &str) -> Framework {
    let config = crate::config::SchedulerConfig::default();
    let built = config.profiles.first().map(|p| framework_for(p, None));
    let mut fw = match built {
        Some(Ok(fw)) => fw,
        // Only a bug gets here: the defaults name built-in plugins.
        other => {
            tracing::error!(error = ?other.map(|r| r.err()), "building the default profile");
            Framework::new(name)
        }
    };
    fw.profile_name = name.to_owned();
    fw
}

/// The framework of a configured profile: one instance per plugin (with
/// its args), enabled at each point in the configured order.
pub fn framework_for(
    profile: &ProfileConfig,
    percentage: Option<u32>,
) -> Result<Framework, String> {
    let mut fw = Framework::new(profile.scheduler_name.as_str());
    fw.percentage_of_nodes_to_score = profile
        .percentage_of_nodes_to_score
        .or(percentage)
        .filter(|&p| p > 0);
    let mut instances: std::collections::HashMap<&str, Arc<dyn Plugin>> =
        std::collections::HashMap::new();
    for point_name in EXTENSION_POINTS {
        let Some(point) = ExtensionPoint::ALL
            .into_iter()
            .find(|p| p.config_name() == point_name)
        else {
            continue;
        };
        for r in profile.points.get(point_name).into_iter().flatten() {
            let plugin = match instances.get(r.name.as_str()) {
                Some(p) => p.clone(),
                None => {
                    let p = new_plugin(&r.name, profile.plugin_args.get(&r.name))?;
                    instances.insert(r.name.as_str(), p.clone());
                    p
                }
            };
            fw.enable(plugin, point, r.weight.max(1))
                .map_err(|e| format!("profile {:?}: {e}", profile.scheduler_name))?;
        }
    }
    Ok(fw)
}
