//! The scheduler's configuration file: upstream's
//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`, YAML
//! or JSON), so the files and docs written for kube-scheduler work with
//! `skiff scheduler --config`.
//!
//! A file is decoded strictly ([`file`]), defaulted and validated the way
//! upstream does, and resolved into [`SchedulerConfig`]: per profile, the
//! final ordered plugin list of every extension point (upstream's
//! `mergePlugins` + `expandMultiPointPlugins`, [`plugins`]) and every
//! plugin's args with upstream's defaults ([`args`]). The framework then
//! only looks plugins up by name; it never sees multiPoint or
//! enabled/disabled lists.

pub mod args;
pub mod duration;
pub mod file;
pub mod plugins;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use plugins::{EXTENSION_POINTS, UNSUPPORTED};

use crate::DEFAULT_SCHEDULER_NAME;

/// The resolved configuration of the whole scheduler.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// One per scheduler name; never empty.
    pub profiles: Vec<ProfileConfig>,
    /// Percentage of feasible nodes to find before scoring; `None` (or 0)
    /// means upstream's adaptive percentage. A profile's own value wins.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Parallelism of filtering and scoring (upstream: 16).
    pub parallelism: u32,
    /// Backoff of a pod's first failed attempt (1 s), doubled per attempt
    /// up to `pod_max_backoff` (10 s).
    pub pod_initial_backoff: Duration,
    pub pod_max_backoff: Duration,
    pub leader_election: LeaderElectionConfig,
}

/// One profile: the pods naming `scheduler_name` are scheduled with it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileConfig {
    pub scheduler_name: String,
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Per extension point config name ("filter", "score", ... every name
    /// in [`EXTENSION_POINTS`] is present) the enabled plugins in order.
    pub points: BTreeMap<&'static str, Vec<PluginRef>>,
    /// The args of every plugin that takes args (upstream's defaults with
    /// the file's `pluginConfig` merged over them), by plugin name, in
    /// upstream's camelCase shape without `apiVersion`/`kind`.
    pub plugin_args: BTreeMap<String, Value>,
}

/// A plugin enabled at an extension point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    pub name: String,
    /// The score weight (at least 1) at the "score" point; 0 elsewhere.
    pub weight: i64,
}

/// Leader election of the scheduler (component-base's
/// `LeaderElectionConfiguration` with upstream kube-scheduler's defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    pub leader_elect: bool,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub resource_namespace: String,
    pub resource_name: String,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            leader_elect: true,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            resource_namespace: "kube-system".to_owned(),
            resource_name: "kube-scheduler".to_owned(),
        }
    }
}

impl LeaderElectionConfig {
    /// The timings for [`skiff_leaderelection::LeaderElector`].
    pub fn timing(&self) -> skiff_leaderelection::Timing {
        skiff_leaderelection::Timing {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading the scheduler configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("decoding the scheduler configuration: {0}")]
    Decode(String),
    #[error(
        "unsupported apiVersion {0:?} of the scheduler configuration: only \"kubescheduler.config.k8s.io/v1\" is supported"
    )]
    ApiVersion(String),
    #[error(
        "unsupported kind {0:?} of the scheduler configuration: expected \"KubeSchedulerConfiguration\""
    )]
    Kind(String),
    /// Field errors in upstream's format (`path: Invalid value: ...`).
    #[error("invalid KubeSchedulerConfiguration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Default for SchedulerConfig {
    /// One `default-scheduler` profile with upstream's default plugins and
    /// args.
    fn default() -> Self {
        match resolve(file::KubeSchedulerConfiguration::default()) {
            Ok(config) => config,
            // The built-in defaults are tested to resolve; this arm only
            // satisfies the type.
            Err(e) => unreachable!("the default scheduler configuration is invalid: {e}"),
        }
    }
}

impl std::str::FromStr for SchedulerConfig {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        SchedulerConfig::from_str(text)
    }
}

impl SchedulerConfig {
    /// Reads a file (YAML, or JSON).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str(&text)
    }

    /// Decodes, defaults, validates and resolves a configuration document.
    #[allow(clippy::should_implement_trait)] // also implemented, for `parse`
    pub fn from_str(text: &str) -> Result<Self, ConfigError> {
        // JSON is YAML, but JSON files may be indented with tabs, which
        // YAML forbids.
        let value: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| ConfigError::Decode(e.to_string()))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode(e.to_string()))?
        };
        if !value.is_object() {
            return Err(ConfigError::Decode(
                "the document is not a KubeSchedulerConfiguration object".to_owned(),
            ));
        }
        match value.get("apiVersion").and_then(Value::as_str) {
            Some(file::API_VERSION) => {}
            Some(other) => return Err(ConfigError::ApiVersion(other.to_owned())),
            None => return Err(ConfigError::ApiVersion(String::new())),
        }
        match value.get("kind").and_then(Value::as_str) {
            Some(file::KIND) => {}
            Some(other) => return Err(ConfigError::Kind(other.to_owned())),
            None => return Err(ConfigError::Kind(String::new())),
        }
        let file: file::KubeSchedulerConfiguration =
            serde_json::from_value(value).map_err(|e| ConfigError::Decode(e.to_string()))?;
        resolve(file)
    }

    /// The profile scheduling pods that name `scheduler_name`.
    pub fn profile(&self, scheduler_name: &str) -> Option<&ProfileConfig> {
        self.profiles
            .iter()
            .find(|p| p.scheduler_name == scheduler_name)
    }
}

impl ProfileConfig {
    /// The plugins enabled at an extension point, in order.
    pub fn plugins(&self, point: &str) -> &[PluginRef] {
        self.points.get(point).map_or(&[], Vec::as_slice)
    }

    /// Whether `plugin` runs at any extension point of this profile.
    pub fn enabled(&self, plugin: &str) -> bool {
        self.points.values().flatten().any(|p| p.name == plugin)
    }
}

fn percentage(value: Option<i64>, path: &str, errors: &mut Vec<String>) -> Option<u32> {
    let v = value?;
    match u32::try_from(v) {
        Ok(p) if p <= 100 => Some(p),
        _ => {
            errors.push(format!(
                "{path}: Invalid value: {v}: not in valid range [0-100]"
            ));
            None
        }
    }
}

fn leader_election(
    file: Option<file::LeaderElection>,
    errors: &mut Vec<String>,
) -> LeaderElectionConfig {
    let mut config = LeaderElectionConfig::default();
    let Some(file) = file else {
        return config;
    };
    let path = "leaderElection";
    let mut duration = |text: Option<String>, field: &str, target: &mut Duration| {
        if let Some(text) = text {
            match duration::parse(&text) {
                Ok(d) => *target = d,
                Err(e) => errors.push(format!("{path}.{field}: Invalid value: {e}")),
            }
        }
    };
    duration(
        file.lease_duration,
        "leaseDuration",
        &mut config.lease_duration,
    );
    duration(
        file.renew_deadline,
        "renewDeadline",
        &mut config.renew_deadline,
    );
    duration(file.retry_period, "retryPeriod", &mut config.retry_period);
    if let Some(elect) = file.leader_elect {
        config.leader_elect = elect;
    }
    // Set but empty fields are kept empty, so validation names them.
    if let Some(name) = file.resource_name {
        config.resource_name = name;
    }
    if let Some(namespace) = file.resource_namespace {
        config.resource_namespace = namespace;
    }
    match file.resource_lock.as_deref() {
        None | Some("leases") => {}
        Some("") => errors.push(format!(
            "{path}.resourceLock: Invalid value: \"\": resourceLock is required"
        )),
        Some(other) => errors.push(format!(
            "{path}.resourceLock: Unsupported value: {other:?}: supported values: \"leases\""
        )),
    }
    if config.leader_elect {
        let d = duration::format;
        for (field, value) in [
            ("leaseDuration", config.lease_duration),
            ("renewDeadline", config.renew_deadline),
            ("retryPeriod", config.retry_period),
        ] {
            if value.is_zero() {
                errors.push(format!(
                    "{path}.{field}: Invalid value: \"{}\": must be greater than zero",
                    d(value)
                ));
            }
        }
        if config.lease_duration <= config.renew_deadline {
            errors.push(format!(
                "{path}.leaseDuration: Invalid value: \"{}\": LeaseDuration must be greater than RenewDeadline",
                d(config.renew_deadline)
            ));
        }
        if config.resource_name.is_empty() {
            errors.push(format!(
                "{path}.resourceName: Invalid value: \"\": resourceName is required"
            ));
        }
        if config.resource_namespace.is_empty() {
            errors.push(format!(
                "{path}.resourceNamespace: Invalid value: \"\": resourceNamespace is required"
            ));
        }
    }
    config
}

/// Upstream's decoding of `pluginConfig`: per plugin name at most once,
/// args of the matching `<Name>Args` kind, merged over the defaults.
fn plugin_args(
    configs: Vec<file::PluginConfig>,
    path: &str,
    errors: &mut Vec<String>,
) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = crate::plugins::NAMES
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), args::default_args(name)?)))
        .collect();
    let mut seen = HashSet::new();
    // Where each plugin's args came from, for error paths.
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, config) in configs.into_iter().enumerate() {
        let at = format!("{path}.pluginConfig[{i}]");
        index.entry(config.name.clone()).or_insert(i);
        if !seen.insert(config.name.clone()) {
            errors.push(format!("{at}.name: Duplicate value: {:?}", config.name));
            continue;
        }
        if UNSUPPORTED.contains(&config.name.as_str()) {
            // Accepted (upstream's defaults configure VolumeBinding) and
            // unused: the plugin does not run here.
            continue;
        }
        if plugins::points_of(&config.name).is_none() {
            errors.push(format!(
                "{at}.name: Invalid value: {:?}: unknown plugin",
                config.name
            ));
            continue;
        }
        let mut user = config.args.unwrap_or(Value::Null);
        if let Some(o) = user.as_object_mut() {
            o.remove("apiVersion");
            let expected = format!("{}Args", config.name);
            match o.remove("kind") {
                Some(Value::String(kind)) if kind != expected => {
                    errors.push(format!(
                        "{at}.args.kind: Invalid value: {kind:?}: expected {expected:?}"
                    ));
                    continue;
                }
                _ => {}
            }
        } else if !user.is_null() {
            errors.push(format!("{at}.args: Invalid value: must be an object"));
            continue;
        }
        let merged = match (out.remove(&config.name), user) {
            (Some(default), Value::Null) => default,
            (Some(mut default), user) => {
                // Upstream defaults defaultingType after decoding: List
                // when the user gave constraints, System otherwise.
                if user.get("defaultingType").is_none()
                    && let Some(o) = default.as_object_mut()
                {
                    o.remove("defaultingType");
                }
                args::merge(default, user)
            }
            (None, Value::Null) => Value::Object(Default::default()),
            (None, user) => user,
        };
        out.insert(config.name, merged);
    }
    for (name, value) in &mut out {
        args::finish_defaults(name, value);
    }
    for (name, value) in &out {
        let at = match index.get(name) {
            Some(i) => format!("{path}.pluginConfig[{i}].args"),
            None => format!("{path}.pluginConfig[{name}].args"),
        };
        args::validate(name, value, &at, errors);
    }
    out
}

/// Defaulting, validation and resolution of a decoded file.
fn resolve(file: file::KubeSchedulerConfiguration) -> Result<SchedulerConfig, ConfigError> {
    let mut errors = Vec::new();
    let parallelism = match file.parallelism {
        None => 16,
        Some(p) => match u32::try_from(p) {
            Ok(p) if p > 0 => p,
            _ => {
                errors.push(format!(
                    "parallelism: Invalid value: {p}: should be an integer value greater than zero"
                ));
                16
            }
        },
    };
    let percentage_of_nodes_to_score = percentage(
        file.percentage_of_nodes_to_score,
        "percentageOfNodesToScore",
        &mut errors,
    );
    let initial = file.pod_initial_backoff_seconds.unwrap_or(1);
    let max = file.pod_max_backoff_seconds.unwrap_or(10);
    if initial <= 0 {
        errors.push(format!(
            "podInitialBackoffSeconds: Invalid value: {initial}: must be greater than 0"
        ));
    }
    if max < initial {
        errors.push(format!(
            "podMaxBackoffSeconds: Invalid value: {max}: must be greater than or equal to PodInitialBackoffSeconds"
        ));
    }
    let secs = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
    if file.extenders.as_ref().is_some_and(|e| !e.is_empty()) {
        errors.push(
            "extenders: Invalid value: scheduler extenders are not supported by skiff".to_owned(),
        );
    }
    let leader_election = leader_election(file.leader_election, &mut errors);

    let mut profiles_in = file.profiles.unwrap_or_default();
    if profiles_in.is_empty() {
        profiles_in.push(file::Profile::default());
    }
    // Upstream names a lone profile; with several each must be named.
    if profiles_in.len() == 1 && profiles_in[0].scheduler_name.is_none() {
        profiles_in[0].scheduler_name = Some(DEFAULT_SCHEDULER_NAME.to_owned());
    }
    let mut names = HashSet::new();
    let mut profiles = Vec::new();
    for (i, profile) in profiles_in.into_iter().enumerate() {
        let path = format!("profiles[{i}]");
        let name = profile.scheduler_name.unwrap_or_default();
        if name.is_empty() {
            errors.push(format!("{path}.schedulerName: Required value"));
        } else if !names.insert(name.clone()) {
            errors.push(format!("{path}.schedulerName: Duplicate value: {name:?}"));
        }
        let percentage = percentage(
            profile.percentage_of_nodes_to_score,
            &format!("{path}.percentageOfNodesToScore"),
            &mut errors,
        );
        let plugins_path = format!("{path}.plugins");
        if let Some(p) = &profile.plugins {
            plugins::check_enabled(p, &plugins_path, &mut errors);
        }
        let merged = plugins::merge(profile.plugins.as_ref());
        let points = match plugins::expand(&merged, &plugins_path) {
            Ok(points) => points,
            Err(e) => {
                errors.push(e);
                BTreeMap::new()
            }
        };
        let plugin_args = plugin_args(
            profile.plugin_config.unwrap_or_default(),
            &path,
            &mut errors,
        );
        profiles.push(ProfileConfig {
            scheduler_name: name,
            percentage_of_nodes_to_score: percentage,
            points,
            plugin_args,
        });
    }
    // Upstream's validateCommonQueueSort: one queue serves all profiles.
    if let Some(first) = profiles.first() {
        let sort = |p: &ProfileConfig| {
            let plugin = p.plugins("queueSort").first().map(|r| r.name.clone());
            let args = plugin.as_ref().and_then(|n| p.plugin_args.get(n).cloned());
            (plugin, args)
        };
        let want = sort(first);
        for (i, p) in profiles.iter().enumerate().skip(1) {
            if sort(p) != want {
                errors.push(format!(
                    "profiles[{i}].plugins.queueSort: Invalid value: queueSort must be the same for all profiles"
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    Ok(SchedulerConfig {
        profiles,
        percentage_of_nodes_to_score,
        parallelism,
        pod_initial_backoff: secs(initial),
        pod_max_backoff: secs(max),
        leader_election,
    })
}

#[cfg(test)]
mod tests;
