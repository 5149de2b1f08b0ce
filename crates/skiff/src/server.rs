//! `skiff server`: opens the store and runs the components until Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::identity::{self, Component};
use skiff_store::{
    AutoCompactor, DEFAULT_COMPACTION_INTERVAL, EtcdConfig, EtcdStore, SqliteConfig, SqliteStore,
    Store,
};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where state lives (`/var/lib/skiff` as root, else `$XDG_DATA_HOME/skiff`).
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Empty: embedded SQLite in the data dir. `etcd://h:p,h:p` or
    /// `http(s)://h:p,...`: an etcd cluster.
    #[arg(long, env = "SKIFF_DATASTORE_ENDPOINT", default_value = "")]
    pub datastore_endpoint: String,
    /// How much store history is kept for watches, in seconds.
    #[arg(long, default_value_t = DEFAULT_COMPACTION_INTERVAL.as_secs())]
    pub compaction_interval_seconds: u64,
    /// HTTPS port of the API server (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    pub https_port: u16,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// Address other hosts reach this server on (default: the host's primary address).
    #[arg(long)]
    pub advertise_address: Option<std::net::IpAddr>,
    /// Run no node agent (kubelet, containerd) on this server.
    #[arg(long)]
    pub disable_agent: bool,
    /// Static bearer tokens, upstream's CSV format:
    /// `token,user,uid[,"group1,group2"]`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Encrypt resources at rest as upstream's EncryptionConfiguration
    /// file says (aescbc, aesgcm, secretbox, identity).
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    #[command(flatten)]
    pub agent: crate::agent::AgentFlags,
    #[command(flatten)]
    pub dns: crate::dns::DnsFlags,
    /// Controllers to run (`skiff server` only), upstream-style: `*` all,
    /// `name` one, `-name` not this one.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Port of the scheduler's /metrics and /healthz on 127.0.0.1 (plain
    /// HTTP; 0: not served). Upstream's kube-scheduler port.
    #[arg(long, default_value_t = 10259)]
    pub scheduler_metrics_port: u16,
    #[command(flatten)]
    pub pod_network: PodNetworkFlags,
}

/// The pod address space nodes' ranges come from (upstream's
/// kube-controller-manager flags).
#[derive(clap::Args, Clone)]
pub struct PodNetworkFlags {
    /// The cluster's pod addresses; each node gets a slice of it.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// The prefix length of each node's slice (`spec.podCIDR`).
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
}

impl PodNetworkFlags {
    /// The node IPAM settings, checked: a bad range stops the start with
    /// a clear error instead of a controller that never assigns.
    pub fn ipam(&self) -> anyhow::Result<skiff_controllers::node_ipam::Settings> {
        let settings = skiff_controllers::node_ipam::Settings {
            cluster_cidr: self.cluster_cidr.clone(),
            node_mask: self.node_cidr_mask_size,
        };
        settings
            .first_range()
            .map_err(|e| anyhow::anyhow!("--cluster-cidr/--node-cidr-mask-size: {e}"))?;
        Ok(settings)
    }
}

/// `skiff controller-manager`: the controllers alone, against any API server.
#[derive(clap::Args)]
pub struct ControllerManagerArgs {
    /// Credentials and address of the API server (default: `$KUBECONFIG`,
    /// `~/.kube/config`, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Controllers to run, upstream-style: `*` all, `name` one, `-name` not this one.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Take part in leader election (Lease kube-system/skiff-controller-manager).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// The cluster CA (PEM) to publish as `kube-root-ca.crt` in every
    /// namespace (default: the CA of the kubeconfig).
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub pod_network: PodNetworkFlags,
    /// The CA certificate (PEM) that signs approved certificate requests
    /// (node join); with `--cluster-signing-key-file`.
    #[arg(long, requires = "cluster_signing_key_file")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// The CA's private key (PEM).
    #[arg(long, requires = "cluster_signing_cert_file")]
    pub cluster_signing_key_file: Option<PathBuf>,
}

/// `skiff scheduler`: the scheduler alone, against any API server.
#[derive(clap::Args)]
pub struct SchedulerArgs {
    /// Credentials and address of the API server (default: `$KUBECONFIG`,
    /// `~/.kube/config`, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// A KubeSchedulerConfiguration file (kubescheduler.config.k8s.io/v1,
    /// YAML or JSON): profiles, plugins, plugin args, leader election.
    /// Without it, upstream's defaults (one `default-scheduler` profile).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Take part in leader election (Lease kube-system/kube-scheduler,
    /// or the file's `leaderElection`); overrides the file's
    /// `leaderElect` when given. Default: true.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: Option<bool>,
    /// Address of the /metrics, /healthz, /livez and /readyz endpoint.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: std::net::IpAddr,
    /// Port of that endpoint (upstream's 10259; 0 disables it). Plain
    /// HTTP, not HTTPS as upstream: bind it to a local address.
    #[arg(long, default_value_t = 10259)]
    pub secure_port: u16,
    /// Deprecated (as upstream): the name of the single profile; name
    /// profiles in `--config` instead.
    #[arg(long, conflicts_with = "config")]
    pub scheduler_name: Option<String>,
}

/// A client from a kubeconfig file, or the usual inference without one.
pub async fn client_from(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = config_from(kubeconfig).await?;
    kube::Client::try_from(config).context("building the API client")
}

/// The client configuration of a kubeconfig file, or the usual inference
/// without one.
pub async fn config_from(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Config> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding a kubeconfig (use --kubeconfig)")?,
    };
    Ok(config)
}

/// The CA (PEM) the kubeconfig trusts for its current cluster, if it names
/// one.
fn kubeconfig_ca(path: Option<&std::path::Path>) -> Option<String> {
    use base64::Engine as _;
    let file = match path {
        Some(p) => kube::config::Kubeconfig::read_from(p).ok()?,
        None => kube::config::Kubeconfig::read().ok()?,
    };
    let context = file.current_context.as_deref()?;
    let cluster_name = file
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .cluster
        .clone();
    let cluster = file
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .ok()?;
        return String::from_utf8(pem).ok();
    }
    std::fs::read_to_string(cluster.certificate_authority.as_ref()?).ok()
}

/// Runs the controller manager alone until Ctrl-C.
pub async fn run_controller_manager(args: ControllerManagerArgs) -> anyhow::Result<()> {
    skiff_controllers::enabled_controllers(&args.controllers)?;
    let node_ipam = args.pod_network.ipam()?;
    let client = client_from(args.kubeconfig.as_deref()).await?;
    let mut config = skiff_controllers::Config::new(client);
    config.controllers = args.controllers;
    config.node_ipam = node_ipam;
    config.leader_elect = args.leader_elect;
    config.root_ca = match &args.root_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --root-ca-file {}", path.display()))?,
        ),
        None => kubeconfig_ca(args.kubeconfig.as_deref()),
    };
    if let (Some(cert), Some(key)) = (
        &args.cluster_signing_cert_file,
        &args.cluster_signing_key_file,
    ) {
        let read = |path: &PathBuf, flag: &str| {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {flag} {}", path.display()))
        };
        config.signing = Some(skiff_controllers::certificates::signer::Settings::new(
            read(cert, "--cluster-signing-cert-file")?,
            read(key, "--cluster-signing-key-file")?,
        ));
    }
    let shutdown = CancellationToken::new();
    let mut running = tokio::spawn(skiff_controllers::run(config, shutdown.clone()));
    tokio::select! {
        () = wait_for_signal() => {
            tracing::info!("shutting down");
            shutdown.cancel();
            (&mut running).await??;
        }
        result = &mut running => result??,
    }
    Ok(())
}

/// Runs the scheduler alone until Ctrl-C: the configuration (file or
/// upstream's defaults), the metrics/health endpoint, and the scheduling
/// loop while holding the lease (losing it ends the process with an error,
/// as upstream's kube-scheduler exits).
pub async fn run_scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    use skiff_scheduler::config::SchedulerConfig;
    let mut scheduler_config = match &args.config {
        Some(path) => SchedulerConfig::from_file(path)?,
        None => SchedulerConfig::default(),
    };
    if let (Some(name), Some(profile)) =
        (&args.scheduler_name, scheduler_config.profiles.first_mut())
    {
        profile.scheduler_name.clone_from(name);
    }
    if let Some(elect) = args.leader_elect {
        scheduler_config.leader_election.leader_elect = elect;
    }
    let client = client_from(args.kubeconfig.as_deref()).await?;
    let metrics = skiff_scheduler::metrics::Metrics::new();
    let shutdown = CancellationToken::new();
    let mut endpoint = if args.secure_port == 0 {
        None
    } else {
        let addr = std::net::SocketAddr::new(args.bind_address, args.secure_port);
        Some(tokio::spawn(skiff_scheduler::metrics::serve(
            addr,
            metrics.clone(),
            || true,
            shutdown.clone(),
        )))
    };
    let config = skiff_scheduler::Config::from_config(client.clone(), &scheduler_config, metrics)
        .map_err(anyhow::Error::msg)?;
    let election = scheduler_config.leader_election.clone();
    let identity = skiff_scheduler::leader::identity();
    tracing::info!(%identity, leader_elect = election.leader_elect, "scheduler starting");
    let mut running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            skiff_scheduler::leader::run_elected(client, &election, identity, shutdown, |token| {
                skiff_scheduler::run(config, token)
            })
            .await
        }
    });
    let endpoint_failed = async {
        match endpoint.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = wait_for_signal() => {
            tracing::info!("shutting down");
            shutdown.cancel();
            (&mut running).await??;
        }
        result = &mut running => result??,
        result = endpoint_failed => {
            shutdown.cancel();
            result?.with_context(|| format!("serving metrics on {}:{}", args.bind_address, args.secure_port))?;
        }
    }
    shutdown.cancel();
    Ok(())
}

/// This server's id, kept in `<data-dir>/server-id`: its lease holder
/// name survives restarts, so after a crash it leads again at once.
fn server_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("server-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_owned());
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// The data dir users know from other distributions.
pub fn default_data_dir() -> PathBuf {
    if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        return PathBuf::from("/var/lib/skiff");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("skiff")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Opens the store named by `--datastore-endpoint`.
pub async fn open_store(
    data_dir: &std::path::Path,
    endpoint: &str,
) -> anyhow::Result<Arc<dyn Store>> {
    if endpoint.is_empty() {
        let config = SqliteConfig::in_data_dir(data_dir);
        let store = SqliteStore::open(config.clone())
            .await
            .with_context(|| format!("opening the embedded store at {}", config.path.display()))?;
        return Ok(Arc::new(store));
    }
    let endpoints = parse_etcd_endpoints(endpoint)?;
    let store = EtcdStore::connect(EtcdConfig::new(endpoints))
        .await
        .with_context(|| format!("connecting to etcd at {endpoint}"))?;
    Ok(Arc::new(store))
}

/// `etcd://a:1,b:2` → `[http://a:1, http://b:2]`; `https://a:1,b:2` keeps https.
pub fn parse_etcd_endpoints(endpoint: &str) -> anyhow::Result<Vec<String>> {
    let (scheme, rest) = match endpoint.split_once("://") {
        Some(("etcd", rest)) | Some(("http", rest)) => ("http", rest),
        Some(("https", rest)) => ("https", rest),
        Some((other, _)) => anyhow::bail!(
            "unsupported datastore scheme {other:?} (use etcd://, http:// or https://)"
        ),
        None => anyhow::bail!("datastore endpoint {endpoint:?} needs a scheme: etcd://host:port"),
    };
    let endpoints: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            format!(
                "{scheme}://{}",
                h.trim_start_matches("etcd://")
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
            )
        })
        .collect();
    anyhow::ensure!(
        !endpoints.is_empty(),
        "datastore endpoint {endpoint:?} names no hosts"
    );
    Ok(endpoints)
}

/// Which components a command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything this server runs (`skiff server`).
    Server,
    /// The API server alone (`skiff apiserver`).
    ApiServer,
}

pub async fn run(args: ServerArgs, role: Role) -> anyhow::Result<()> {
    skiff_controllers::enabled_controllers(&args.controllers)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let store = open_store(&data_dir, &args.datastore_endpoint).await?;
    let shutdown = CancellationToken::new();
    let compactor = AutoCompactor {
        store: store.clone(),
        interval: std::time::Duration::from_secs(args.compaction_interval_seconds.max(1)),
    };
    let compaction = tokio::spawn(compactor.run(shutdown.clone()));
    let apiserver = skiff_apiserver::ApiServer::bind(skiff_apiserver::Config {
        data_dir: data_dir.clone(),
        bind_address: args.bind_address,
        https_port: args.https_port,
        advertise_address: args.advertise_address,
        store: store.clone(),
        ranges: skiff_apiserver::Ranges::default(),
        token_auth_file: args.token_auth_file.clone(),
        encryption_provider_config: args.encryption_provider_config.clone(),
    })
    .await
    .context("starting the API server")?;
    let kubeconfig_path = apiserver.kubeconfig.clone();
    let kubeconfig = kubeconfig_path.display().to_string();
    let serving = tokio::spawn(apiserver.run(shutdown.clone()));
    tokio::spawn(log_memory(shutdown.clone()));
    // The controllers stop before the API server so that they can give
    // their lease back.
    let stop_controllers = CancellationToken::new();
    let controllers = if role == Role::Server {
        let scheduler_client =
            identity::client(&data_dir, &kubeconfig_path, Component::Scheduler).await?;
        let client =
            identity::client(&data_dir, &kubeconfig_path, Component::ControllerManager).await?;
        let scheduler = skiff_scheduler::Config::new(scheduler_client.clone());
        let token = stop_controllers.clone();
        let identity = skiff_leaderelection::stable_identity(&server_id(&data_dir)?);
        if args.scheduler_metrics_port != 0 {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.scheduler_metrics_port));
            let (metrics, token) = (scheduler.metrics.clone(), token.clone());
            tokio::spawn(async move {
                // Another server on this host may hold the port: the
                // scheduler runs on without its endpoint.
                if let Err(e) = skiff_scheduler::metrics::serve(addr, metrics, || true, token).await
                {
                    tracing::warn!(%addr, error = %e, "scheduler metrics endpoint not served");
                }
            });
        }
        // Servers sharing an etcd take turns (Lease kube-system/
        // kube-scheduler); one that loses the lease stands again.
        let scheduler_identity = identity.clone();
        tokio::spawn(async move {
            let identity = scheduler_identity;
            let election = skiff_scheduler::config::LeaderElectionConfig::default();
            loop {
                let config = scheduler.clone();
                let result = skiff_scheduler::leader::run_elected(
                    scheduler_client.clone(),
                    &election,
                    identity.clone(),
                    token.clone(),
                    |term| skiff_scheduler::run(config, term),
                )
                .await;
                match result {
                    Ok(()) => break,
                    Err(skiff_scheduler::leader::LeaderError::Lost) => {
                        tracing::warn!("scheduler lost its lease; standing again");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "scheduler stopped");
                        break;
                    }
                }
            }
        });
        let mut config = skiff_controllers::Config::new(client);
        config.identity = identity;
        config.controllers = args.controllers.clone();
        config.node_ipam = args.pod_network.ipam()?;
        let ca = data_dir.join("tls").join("ca.crt");
        let ca_pem = std::fs::read_to_string(&ca)
            .with_context(|| format!("reading the cluster CA {}", ca.display()))?;
        let ca_key = data_dir.join("tls").join("ca.key");
        config.signing = Some(skiff_controllers::certificates::signer::Settings::new(
            ca_pem.clone(),
            std::fs::read_to_string(&ca_key)
                .with_context(|| format!("reading the cluster CA key {}", ca_key.display()))?,
        ));
        config.root_ca = Some(ca_pem);
        let token = stop_controllers.clone();
        Some(tokio::spawn(async move {
            if let Err(e) = skiff_controllers::run(config, token).await {
                tracing::error!(error = %e, "controller manager stopped");
            }
        }))
    } else {
        None
    };
    let dns = if role == Role::Server && !args.dns.disable_dns {
        let client = identity::client(&data_dir, &kubeconfig_path, Component::Dns).await?;
        let ip = args
            .agent
            .node_ip
            .or(args.advertise_address)
            .or_else(skiff_apiserver::primary_address)
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let node = (!args.disable_agent).then(|| {
            args.agent
                .node_name
                .clone()
                .or_else(skiff_apiserver::host_name)
                .unwrap_or_else(|| "localhost".into())
                .to_lowercase()
        });
        Some(crate::dns::start(client, &args.dns, ip, node, stop_controllers.clone()).await?)
    } else {
        None
    };
    let stop_agent = CancellationToken::new();
    let agent = if role == Role::Server && !args.disable_agent {
        let mut flags = args.agent.clone();
        // The server's own node takes the first range of the cluster's.
        let first = args
            .pod_network
            .ipam()?
            .first_range()
            .map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
        flags.pod_cidr.get_or_insert(first);
        let (name, ip) = crate::agent::node_identity(&flags);
        let clients = crate::agent::Clients {
            kubelet: identity::client(&data_dir, &kubeconfig_path, Component::Node(&name)).await?,
            proxy: identity::client(&data_dir, &kubeconfig_path, Component::Proxy).await?,
        };
        let serving = crate::agent::kubelet_tls(&data_dir, &name, ip)?;
        Some(
            crate::agent::start(
                &data_dir,
                &flags,
                clients,
                serving,
                true,
                stop_agent.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    eprintln!(
        "skiff is running. Point kubectl at it with:\n\n    export KUBECONFIG={kubeconfig}\n    kubectl get namespaces\n"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    stop_agent.cancel();
    if let Some(agent) = agent {
        agent.stop().await;
    }
    stop_controllers.cancel();
    if let Some(controllers) = controllers
        && tokio::time::timeout(std::time::Duration::from_secs(5), controllers)
            .await
            .is_err()
    {
        tracing::warn!("controllers did not stop within 5 s");
    }
    if let Some(dns) = dns
        && tokio::time::timeout(std::time::Duration::from_secs(5), dns)
            .await
            .is_err()
    {
        tracing::warn!("cluster DNS did not stop within 5 s");
    }
    shutdown.cancel();
    serving.await?;
    compaction.await?;
    Ok(())
}

/// Logs the allocator's view of memory (debug level) once a minute.
async fn log_memory(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if tikv_jemalloc_ctl::epoch::advance().is_ok() {
            let allocated = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0);
            let resident = tikv_jemalloc_ctl::stats::resident::read().unwrap_or(0);
            tracing::debug!(
                allocated_mib = allocated >> 20,
                resident_mib = resident >> 20,
                "memory"
            );
        }
    }
}

/// SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_endpoints_are_parsed() {
        assert_eq!(
            parse_etcd_endpoints("etcd://a:1,b:2").unwrap_or_default(),
            vec!["http://a:1", "http://b:2"]
        );
        assert_eq!(
            parse_etcd_endpoints("https://a:1").unwrap_or_default(),
            vec!["https://a:1"]
        );
        assert!(parse_etcd_endpoints("mysql://x").is_err());
        assert!(parse_etcd_endpoints("a:1").is_err());
    }
}
