//! The file format: `kubescheduler.config.k8s.io/v1`
//! `KubeSchedulerConfiguration`, field for field as upstream's Go types,
//! decoded strictly (unknown fields are errors, as upstream's strict
//! decoder makes them) so a typo does not silently fall back to a default.
//! Fields skiff has no use for (client connection, profiling, deprecated
//! bind addresses) are accepted and ignored so upstream files load.

use serde::Deserialize;
use serde_json::Value;

pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
pub const KIND: &str = "KubeSchedulerConfiguration";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeSchedulerConfiguration {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub parallelism: Option<i64>,
    #[serde(default)]
    pub leader_election: Option<LeaderElection>,
    #[serde(default)]
    pub client_connection: Option<Value>,
    #[serde(default)]
    pub healthz_bind_address: Option<Value>,
    #[serde(default)]
    pub metrics_bind_address: Option<Value>,
    #[serde(default)]
    pub enable_profiling: Option<Value>,
    #[serde(default)]
    pub enable_contention_profiling: Option<Value>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i64>,
    #[serde(default)]
    pub pod_initial_backoff_seconds: Option<i64>,
    #[serde(default)]
    pub pod_max_backoff_seconds: Option<i64>,
    #[serde(default)]
    pub profiles: Option<Vec<Profile>>,
    #[serde(default)]
    pub extenders: Option<Vec<Value>>,
    #[serde(default)]
    pub delay_cache_until_active: Option<bool>,
}

/// component-base's `LeaderElectionConfiguration`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    #[serde(default)]
    pub leader_elect: Option<bool>,
    #[serde(default)]
    pub lease_duration: Option<String>,
    #[serde(default)]
    pub renew_deadline: Option<String>,
    #[serde(default)]
    pub retry_period: Option<String>,
    #[serde(default)]
    pub resource_lock: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub resource_namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub scheduler_name: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i64>,
    #[serde(default)]
    pub plugins: Option<Plugins>,
    #[serde(default)]
    pub plugin_config: Option<Vec<PluginConfig>>,
}

/// One plugin set per extension point, plus `multiPoint`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
    #[serde(default)]
    pub multi_point: PluginSet,
}

impl Plugins {
    /// The set configured for an extension point by its config name.
    pub fn point(&self, name: &str) -> Option<&PluginSet> {
        Some(match name {
            "preEnqueue" => &self.pre_enqueue,
            "queueSort" => &self.queue_sort,
            "preFilter" => &self.pre_filter,
            "filter" => &self.filter,
            "postFilter" => &self.post_filter,
            "preScore" => &self.pre_score,
            "score" => &self.score,
            "reserve" => &self.reserve,
            "permit" => &self.permit,
            "preBind" => &self.pre_bind,
            "bind" => &self.bind,
            "postBind" => &self.post_bind,
            "multiPoint" => &self.multi_point,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<Plugin>,
    #[serde(default)]
    pub disabled: Vec<Plugin>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugin {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
}
