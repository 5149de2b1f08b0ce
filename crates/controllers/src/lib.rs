//! skiff's controller manager: the reconcile loops that make the cluster
//! converge, each an API client like upstream's kube-controller-manager.
//!
//! Start reading at [`run`]: it parses the `--controllers` selection, wins
//! the `kube-system/skiff-controller-manager` Lease ([`leader_election`])
//! and runs every enabled controller until it loses the lease or is shut
//! down. Each controller is a module with its own `run`, registered by its
//! upstream name in [`KNOWN_CONTROLLERS`]: workloads ([`replicaset`],
//! [`deployment`], [`statefulset`], [`daemonset`], [`job`], [`cronjob`],
//! [`ttl_after_finished`]), the object graph ([`garbage_collector`],
//! [`namespace`]), Services ([`endpointslice`], [`endpoints`]), nodes
//! ([`node_lifecycle`], [`taint_eviction`], [`node_ipam`], [`podgc`]),
//! per-namespace defaults ([`serviceaccount`], [`root_ca_publisher`]),
//! policy ([`disruption`], [`resourcequota`]) and node join
//! ([`certificates`], [`bootstrap_tokens`]). The horizontal pod
//! autoscaler joins them as `horizontal-pod-autoscaler-controller` once the
//! metrics API exists.

pub mod bootstrap_tokens;
pub mod certificates;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod garbage_collector;
pub mod job;
pub use skiff_leaderelection as leader_election;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod node_pod_caches;
pub mod per_namespace;
pub mod podgc;
pub mod replicaset;
pub mod replication_controller;
pub mod resourcequota;
pub mod root_ca_publisher;
pub mod serviceaccount;
pub mod statefulset;
pub mod taint_eviction;
pub mod ttl_after_finished;
pub mod work_queue;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Every controller this manager knows, by its upstream name.
pub const KNOWN_CONTROLLERS: &[&str] = &[
    "garbage-collector-controller",
    "replicaset-controller",
    "replicationcontroller-controller",
    "deployment-controller",
    "namespace-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "node-ipam-controller",
    "pod-garbage-collector-controller",
    "disruption-controller",
    "resourcequota-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "statefulset-controller",
    "daemonset-controller",
    "csrapproving-controller",
    "csrsigning-controller",
    "bootstrap-signer-controller",
    "tokencleaner-controller",
];

/// Older names upstream still accepts, and the controller each stands for.
const ALIASES: &[(&str, &str)] = &[
    ("garbagecollector", "garbage-collector-controller"),
    ("replicaset", "replicaset-controller"),
    ("replicationcontroller", "replicationcontroller-controller"),
    ("deployment", "deployment-controller"),
    ("namespace", "namespace-controller"),
    ("endpoint", "endpoints-controller"),
    ("endpointslice", "endpointslice-controller"),
    ("serviceaccount", "serviceaccount-controller"),
    (
        "root-ca-cert-publisher",
        "root-ca-certificate-publisher-controller",
    ),
    ("job", "job-controller"),
    ("cronjob", "cronjob-controller"),
    ("ttl-after-finished", "ttl-after-finished-controller"),
    ("statefulset", "statefulset-controller"),
    ("daemonset", "daemonset-controller"),
    ("nodelifecycle", "node-lifecycle-controller"),
    ("nodeipam", "node-ipam-controller"),
    ("podgc", "pod-garbage-collector-controller"),
    ("disruption", "disruption-controller"),
    ("resourcequota", "resourcequota-controller"),
    ("csrapproving", "csrapproving-controller"),
    ("csrsigning", "csrsigning-controller"),
    ("bootstrapsigner", "bootstrap-signer-controller"),
    ("tokencleaner", "tokencleaner-controller"),
];

/// Controllers that `*` does not turn on (none yet).
const DISABLED_BY_DEFAULT: &[&str] = &[];

/// What the controller manager runs and how.
#[derive(Clone)]
pub struct Config {
    /// The client every controller uses (its own identity).
    pub client: kube::Client,
    /// Upstream-style selection: `*` all (default-on) controllers, `name`
    /// enables one, `-name` disables one.
    pub controllers: Vec<String>,
    /// Take part in leader election (off: act at once, for a single
    /// instance that cannot race with another).
    pub leader_elect: bool,
    /// This instance's name in the Lease.
    pub identity: String,
    /// Lease timings (upstream's defaults: 15 s, 10 s, 2 s).
    pub lease: leader_election::Timing,
    /// Garbage collector tuning.
    pub garbage_collector: garbage_collector::Settings,
    /// ReplicaSet controller tuning.
    pub replicaset: replicaset::Settings,
    /// Deployment controller tuning.
    pub deployment: deployment::Settings,
    /// The cluster CA (PEM) the root CA publisher puts in every namespace
    /// (upstream's `--root-ca-file`); without it that controller idles.
    pub root_ca: Option<String>,
    /// Node lifecycle timings.
    pub node_lifecycle: node_lifecycle::Settings,
    /// Taint eviction timings.
    pub taint_eviction: taint_eviction::Settings,
    /// The cluster CIDR nodes' pod CIDRs come from.
    pub node_ipam: node_ipam::Settings,
    /// Pod GC timings and threshold.
    pub podgc: podgc::Settings,
    /// ResourceQuota recount period.
    pub resourcequota: resourcequota::Settings,
    /// Job controller tuning.
    pub job: job::Settings,
    /// CronJob controller tuning (and its clock).
    pub cronjob: cronjob::Settings,
    /// StatefulSet controller tuning.
    pub statefulset: statefulset::Settings,
    /// DaemonSet controller tuning.
    pub daemonset: daemonset::Settings,
    /// The CA that signs approved certificate requests (upstream's
    /// `--cluster-signing-cert-file`/`--cluster-signing-key-file`);
    /// without it the CSR signer idles.
    pub signing: Option<certificates::signer::Settings>,
}

impl Config {
    /// All controllers, leader election on, upstream's timings.
    pub fn new(client: kube::Client) -> Self {
        Config {
            client,
            controllers: vec!["*".to_owned()],
            leader_elect: true,
            identity: default_identity(),
            lease: leader_election::Timing::default(),
            garbage_collector: garbage_collector::Settings::default(),
            replicaset: replicaset::Settings::default(),
            deployment: deployment::Settings::default(),
            root_ca: None,
            node_lifecycle: node_lifecycle::Settings::default(),
            taint_eviction: taint_eviction::Settings::default(),
            node_ipam: node_ipam::Settings::default(),
            podgc: podgc::Settings::default(),
            resourcequota: resourcequota::Settings::default(),
            job: job::Settings::default(),
            cronjob: cronjob::Settings::default(),
            statefulset: statefulset::Settings::default(),
            daemonset: daemonset::Settings::default(),
            signing: None,
        }
    }
}

/// `<hostname>_<uuid>`, as upstream names lease holders.
pub fn default_identity() -> String {
    leader_election::default_identity()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not in the list of known controllers")]
    UnknownController(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("controller {name} stopped: {message}")]
    Controller { name: &'static str, message: String },
}

/// Whether `name` runs under the selection `controllers` (upstream's
/// IsControllerEnabled: the first explicit mention wins, then `*`).
pub fn controller_enabled(name: &str, controllers: &[String]) -> bool {
    let mut star = false;
    for c in controllers {
        let (negated, mentioned) = match c.strip_prefix('-') {
            Some(rest) => (true, canonical(rest)),
            None => (false, canonical(c)),
        };
        if mentioned == name {
            return !negated;
        }
        star |= c == "*";
    }
    star && !DISABLED_BY_DEFAULT.contains(&name)
}

/// Checks a `--controllers` selection; returns the enabled controllers.
pub fn enabled_controllers(controllers: &[String]) -> Result<Vec<&'static str>, Error> {
    for c in controllers {
        let name = c.strip_prefix('-').unwrap_or(c);
        if c != "*" && !KNOWN_CONTROLLERS.contains(&canonical(name)) {
            return Err(Error::UnknownController(name.to_owned()));
        }
    }
    Ok(KNOWN_CONTROLLERS
        .iter()
        .copied()
        .filter(|n| controller_enabled(n, controllers))
        .collect())
}

fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, full)| full)
}

/// Runs the enabled controllers until `shutdown`, under the lease when
/// leader election is on (losing it stops them; they start again once the
/// lease is won back).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let enabled = enabled_controllers(&config.controllers)?;
    tracing::info!(controllers = ?enabled, identity = %config.identity, "controller manager starting");
    if !config.leader_elect {
        return run_controllers(&config, &enabled, shutdown).await;
    }
    let elector = leader_election::LeaderElector::new(
        config.client.clone(),
        "kube-system",
        "skiff-controller-manager",
        &config.identity,
        config.lease,
    );
    loop {
        if !elector.acquire(&shutdown).await {
            return Ok(());
        }
        tracing::info!(identity = %config.identity, "became leader: starting controllers");
        let term = shutdown.child_token();
        let controllers = run_controllers(&config, &enabled, term.clone());
        let keep = elector.keep(&term);
        tokio::pin!(controllers);
        tokio::select! {
            result = &mut controllers => {
                term.cancel();
                elector.release().await;
                return result;
            }
            () = keep => {}
        }
        term.cancel();
        let result = controllers.await;
        if shutdown.is_cancelled() {
            elector.release().await;
            return result;
        }
        tracing::warn!("lost the leader lease: controllers stopped; trying to win it back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_controllers(
    config: &Config,
    enabled: &[&'static str],
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for &name in enabled {
        let client = config.client.clone();
        let token = shutdown.clone();
        match name {
            "garbage-collector-controller" => spawn(
                &mut tasks,
                name,
                garbage_collector::run(client, config.garbage_collector.clone(), token),
            ),
            "replicaset-controller" => spawn(
                &mut tasks,
                name,
                replicaset::run(client, config.replicaset.clone(), token),
            ),
            "replicationcontroller-controller" => {
                spawn(&mut tasks, name, replication_controller::run(client, token))
            }
            "deployment-controller" => spawn(
                &mut tasks,
                name,
                deployment::run(client, config.deployment.clone(), token),
            ),
            "namespace-controller" => spawn(&mut tasks, name, namespace::run(client, token)),
            "endpoints-controller" => spawn(&mut tasks, name, endpoints::run(client, token)),
            "endpointslice-controller" => {
                spawn(&mut tasks, name, endpointslice::run(client, token))
            }
            "serviceaccount-controller" => {
                spawn(&mut tasks, name, serviceaccount::run(client, token));
            }
            "root-ca-certificate-publisher-controller" => match config.root_ca.clone() {
                Some(ca) => spawn(&mut tasks, name, root_ca_publisher::run(client, ca, token)),
                None => tracing::warn!("no root CA given: not publishing kube-root-ca.crt"),
            },
            "node-lifecycle-controller" => spawn(
                &mut tasks,
                name,
                node_lifecycle::run(client, config.node_lifecycle.clone(), token),
            ),
            "taint-eviction-controller" => spawn(
                &mut tasks,
                name,
                taint_eviction::run(client, config.taint_eviction.clone(), token),
            ),
            "node-ipam-controller" => spawn(
                &mut tasks,
                name,
                node_ipam::run(client, config.node_ipam.clone(), token),
            ),
            "pod-garbage-collector-controller" => spawn(
                &mut tasks,
                name,
                podgc::run(client, config.podgc.clone(), token),
            ),
            "disruption-controller" => spawn(&mut tasks, name, disruption::run(client, token)),
            "resourcequota-controller" => spawn(
                &mut tasks,
                name,
                resourcequota::run(client, config.resourcequota.clone(), token),
            ),
            "job-controller" => spawn(
                &mut tasks,
                name,
                job::run(client, config.job.clone(), token),
            ),
            "cronjob-controller" => spawn(
                &mut tasks,
                name,
                cronjob::run(client, config.cronjob.clone(), token),
            ),
            "ttl-after-finished-controller" => {
                spawn(&mut tasks, name, ttl_after_finished::run(client, token))
            }
            "statefulset-controller" => spawn(
                &mut tasks,
                name,
                statefulset::run(client, config.statefulset.clone(), token),
            ),
            "daemonset-controller" => spawn(
                &mut tasks,
                name,
                daemonset::run(client, config.daemonset.clone(), token),
            ),
            "csrapproving-controller" => {
                spawn(&mut tasks, name, certificates::approver::run(client, token))
            }
            "csrsigning-controller" => match config.signing.clone() {
                Some(signing) => spawn(
                    &mut tasks,
                    name,
                    certificates::signer::run(client, signing, token),
                ),
                None => tracing::warn!("no signing CA given: not signing certificate requests"),
            },
            "bootstrap-signer-controller" => spawn(
                &mut tasks,
                name,
                bootstrap_tokens::signer::run(client, token),
            ),
            "tokencleaner-controller" => spawn(
                &mut tasks,
                name,
                bootstrap_tokens::cleaner::run(client, token),
            ),
            other => tracing::warn!(controller = other, "no such controller"),
        }
    }
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let outcome = match done {
            Ok(r) => r,
            Err(e) => Err(Error::Controller {
                name: "controller",
                message: e.to_string(),
            }),
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "controller failed");
            shutdown.cancel();
            result = Err(e);
        }
    }
    result
}

/// Runs one controller as a task; its error stops the manager.
fn spawn<F, E>(
    tasks: &mut tokio::task::JoinSet<Result<(), Error>>,
    name: &'static str,
    controller: F,
) where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    tasks.spawn(async move {
        controller.await.map_err(|e| Error::Controller {
            name,
            message: e.to_string(),
        })
    });
}

/// Merge-patches the status of `name`; `Ok(false)` when the object is
/// already gone (nothing left to report on).
pub(crate) async fn patch_status<K>(
    api: &kube::Api<K>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<bool, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = kube::api::PatchParams::default();
    match api
        .patch_status(name, &params, &kube::api::Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if api_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The HTTP status of an API error (`None` for transport errors): how the
/// controllers tell "already gone" (404) or "refused" (403) from failures.
pub(crate) fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn controllers_flag_as_upstream() {
        let gc = "garbage-collector-controller";
        assert!(controller_enabled(gc, &sel(&["*"])));
        assert!(!controller_enabled(
            gc,
            &sel(&["*", "-garbage-collector-controller"])
        ));
        assert!(!controller_enabled(
            gc,
            &sel(&["-garbage-collector-controller", "*"])
        ));
        assert!(controller_enabled(
            gc,
            &sel(&["garbage-collector-controller"])
        ));
        assert!(!controller_enabled(gc, &sel(&[])));
        assert!(!controller_enabled(gc, &sel(&["other"])));
        let rs = "replicaset-controller";
        // `*` enables every known controller (none is off by default yet).
        assert_eq!(
            enabled_controllers(&sel(&["*"])).ok(),
            Some(KNOWN_CONTROLLERS.to_vec())
        );
        assert_eq!(KNOWN_CONTROLLERS[..2], [gc, rs]);
        assert_eq!(
            enabled_controllers(&sel(&["*", "-garbage-collector-controller"])).ok(),
            Some(KNOWN_CONTROLLERS[1..].to_vec())
        );
        assert!(!controller_enabled(rs, &sel(&["*", "-replicaset"])));
        let Err(e) = enabled_controllers(&sel(&["*", "-nope"])) else {
            panic!("accepted an unknown controller");
        };
        assert_eq!(
            e.to_string(),
            "\"nope\" is not in the list of known controllers"
        );
        assert!(!controller_enabled(gc, &sel(&["-garbagecollector", "*"])));
        assert!(controller_enabled(gc, &sel(&["garbagecollector"])));
        assert!(!controller_enabled(
            "pod-garbage-collector-controller",
            &sel(&["*", "-podgc"])
        ));
    }
}
