//! skiff's node agent (kubelet): runs the pods bound to its node through a
//! CRI runtime.
//!
//! Start at [`run`]: it connects to the runtime, registers the Node
//! ([`node`]), keeps its Lease and status fresh, writes the pod network
//! config ([`cni`]) and runs one worker per pod bound here ([`pods`]).

pub mod cni;
pub mod cri;
pub mod events;
pub mod node;
pub mod pods;
pub mod server;
pub mod tls_bootstrap;
pub mod volumes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use node::NodeSpec;
pub use pods::sandbox::ClusterDns;

/// What the node agent runs with.
#[derive(Clone)]
pub struct Config {
    /// The agent's API client.
    pub client: kube::Client,
    /// The Node this agent registers and runs pods for.
    pub node: NodeSpec,
    /// The CRI runtime's unix socket.
    pub runtime_endpoint: PathBuf,
    /// The kubelet's own state: `pods/<uid>/volumes/...`.
    pub root_dir: PathBuf,
    /// Where containers' logs are written (`/var/log/pods` as upstream).
    pub pod_log_dir: PathBuf,
    /// Where the runtime reads CNI configs; `None`: the kubelet writes none.
    pub cni_conf_dir: Option<PathBuf>,
    /// The nameserver of `dnsPolicy: ClusterFirst` pods; `None` = the host's.
    pub cluster_dns: Option<ClusterDns>,
    /// The kubelet API (logs for the API server); `None`: not served.
    pub api: Option<ApiServing>,
    /// Static pod manifests (`--pod-manifest-path`); `None`: none.
    pub pod_manifest_path: Option<PathBuf>,
    /// Hard eviction thresholds (upstream's `--eviction-hard` defaults).
    pub eviction_hard: node::pressure::Thresholds,
}

/// How the kubelet API is served (port 10250, healthz on 10248).
#[derive(Clone)]
pub struct ApiServing {
    pub tls: server::KubeletTls,
    pub port: u16,
    pub healthz_port: u16,
    /// Idle exec/attach/port-forward sessions are closed after this.
    pub streaming_idle_timeout: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cri(#[from] cri::CriError),
    #[error("CRI call: {0}")]
    Status(#[from] tonic::Status),
    #[error("writing the CNI config: {0}")]
    Cni(std::io::Error),
}

/// The pod CIDR the node IPAM controller assigns to this node (the pod
/// network cannot start without one); `None` if shut down first.
async fn wait_for_pod_cidr(
    client: &kube::Client,
    node: &str,
    shutdown: &CancellationToken,
) -> Option<String> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    tracing::info!(
        node,
        "waiting for the node IPAM controller to assign a pod CIDR"
    );
    loop {
        match nodes.get_opt(node).await {
            Ok(Some(n)) => {
                if let Some(cidr) = n.spec.and_then(|s| s.pod_cidr) {
                    tracing::info!(node, cidr = %cidr, "pod CIDR assigned");
                    return Some(cidr);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading this node"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// How long to wait for the runtime's socket at start.
const RUNTIME_WAIT: Duration = Duration::from_secs(60);

/// Runs the node agent until `shutdown`. Containers keep running after
/// it returns; the next start adopts them.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let cri = connect(&config.runtime_endpoint, &shutdown).await?;
    let capacity = node::Capacity::read(&config.root_dir, config.node.max_pods);
    let mut reporter = node::status::Reporter::new(
        config.client.clone(),
        cri.clone(),
        config.node.clone(),
        capacity.clone(),
    )
    .await?;
    let registered = reporter.register().await?;
    tracing::info!(node = %config.node.name, "node registered");
    let mut pod_cidr = registered
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .or_else(|| config.node.pod_cidr.clone());
    if pod_cidr.is_none() && config.cni_conf_dir.is_some() {
        pod_cidr = wait_for_pod_cidr(&config.client, &config.node.name, &shutdown).await;
    }
    if let (Some(dir), Some(cidr)) = (&config.cni_conf_dir, &pod_cidr) {
        cni::write(dir, cidr).map_err(Error::Cni)?;
        cni::enable_forwarding();
    }
    tokio::spawn(node::lease::heartbeat(
        config.client.clone(),
        config.node.name.clone(),
        shutdown.clone(),
    ));
    let (pressure, pressure_rx) = tokio::sync::watch::channel(node::pressure::Pressure::default());
    tokio::spawn(reporter.with_pressure(pressure_rx).run(shutdown.clone()));
    if let Some(api) = &config.api {
        let mut serving = server::ServerConfig::new(
            api.tls.clone(),
            config.pod_log_dir.clone(),
            Some(cri.clone()),
        );
        serving.port = api.port;
        serving.healthz_port = api.healthz_port;
        serving.streaming_idle_timeout = api.streaming_idle_timeout;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = server::serve(serving, stop).await {
                tracing::error!(error = %e, "the kubelet API stopped");
            }
        });
    }
    let mut version_cri = cri.clone();
    let runtime_name = version_cri
        .runtime
        .version(k8s_cri::v1::VersionRequest::default())
        .await?
        .into_inner()
        .runtime_name;
    let volumes = volumes::Volumes::new(config.root_dir.clone(), config.client.clone());
    let ctx = Arc::new(pods::Context {
        recorder: events::Recorder::new(config.client.clone(), &config.node.name),
        cri,
        client: config.client.clone(),
        volumes,
        node_name: config.node.name.clone(),
        node_ip: config
            .node
            .addresses
            .first()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.0.1".into()),
        node_memory: capacity.memory_bytes,
        pod_log_dir: config.pod_log_dir.clone(),
        dns: config.cluster_dns.clone(),
        host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        runtime_name,
        manifest_dir: config.pod_manifest_path.clone(),
        root_dir: config.root_dir.clone(),
        pressure,
        eviction_hard: config.eviction_hard,
    });
    tokio::spawn(pods::log_rotation::run(
        ctx.cri.clone(),
        config.pod_log_dir.clone(),
        pods::log_rotation::Limits::default(),
        shutdown.clone(),
    ));
    tokio::spawn(node::image_gc::run(ctx.cri.clone(), shutdown.clone()));
    pods::run(ctx, shutdown).await;
    Ok(())
}

/// Connects to the runtime, waiting for it to come up.
async fn connect(
    endpoint: &std::path::Path,
    shutdown: &CancellationToken,
) -> Result<cri::Cri, Error> {
    let deadline = tokio::time::Instant::now() + RUNTIME_WAIT;
    loop {
        match cri::Cri::connect(endpoint).await {
            Ok(cri) => return Ok(cri),
            Err(e) if tokio::time::Instant::now() >= deadline || shutdown.is_cancelled() => {
                return Err(e.into());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
