//! The node agent: a managed containerd (unless a runtime endpoint is
//! given), the offline images, then the kubelet. Run by `skiff agent` and,
//! for the server's own node, by `skiff server`.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Flags shared by `skiff agent` and the agent inside `skiff server`.
#[derive(clap::Args, Clone)]
pub struct AgentFlags {
    /// The Node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The Node's InternalIP (default: the host's primary address).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// A CRI runtime's socket; empty: skiff runs its own containerd.
    #[arg(long, default_value = "")]
    pub container_runtime_endpoint: String,
    /// Where container logs go.
    #[arg(long, default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,
    /// This node's pod address range, when no controller assigns one.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The nameserver `dnsPolicy: ClusterFirst` pods get.
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Resources kept for Kubernetes daemons (`cpu=100m,memory=256Mi,...`).
    #[arg(long, default_value = "")]
    pub kube_reserved: String,
    /// Resources kept for the operating system (`cpu=100m,memory=256Mi,...`).
    #[arg(long, default_value = "")]
    pub system_reserved: String,
    /// Hard eviction thresholds, upstream syntax (`memory.available<100Mi,
    /// nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%` by
    /// default; signals not named keep their default).
    #[arg(long, default_value = "")]
    pub eviction_hard: String,
    /// Most pods this node runs.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Run no kube-proxy on this node (Services are then not reachable by
    /// ClusterIP or NodePort from it).
    #[arg(long)]
    pub disable_kube_proxy: bool,
    /// Port of kube-proxy's /healthz (0: not served).
    #[arg(long, default_value_t = 10256)]
    pub proxy_healthz_port: u16,
    /// Port of kube-proxy's /metrics on 127.0.0.1 (0: not served).
    #[arg(long, default_value_t = 10249)]
    pub proxy_metrics_port: u16,
    /// Static pod manifests (default: `<data-dir>/agent/pod-manifests`).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// Port of the kubelet API (logs for the API server).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Port of the kubelet's plain-HTTP /healthz on 127.0.0.1.
    #[arg(long, default_value_t = 10248)]
    pub kubelet_healthz_port: u16,
    /// exec/attach/port-forward sessions idle this long are closed (Go
    /// duration syntax, as upstream: `4h`, `30m`, `1h30m`, `90s`).
    #[arg(long, default_value = "4h", value_parser = parse_go_duration)]
    pub streaming_connection_idle_timeout: std::time::Duration,
}

/// A Go `time.Duration` string: a sequence of numbers with units `h`, `m`,
/// `s`, `ms` (as upstream's flags take them).
pub(crate) fn parse_go_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {text:?} (examples: 4h, 30m, 1h30m, 90s)");
    let mut total = std::time::Duration::ZERO;
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(total);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(bad()),
        };
        total += std::time::Duration::from_secs_f64(number * seconds);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `skiff agent`: a node joining a cluster.
#[derive(clap::Args)]
pub struct AgentArgs {
    /// Credentials and address of the API server (instead of joining
    /// with `--server`/`--token`).
    #[arg(long, conflicts_with_all = ["server", "token"])]
    pub kubeconfig: Option<PathBuf>,
    /// The API server to join (`https://host:6443`).
    #[arg(long, requires_all = ["token", "ca_cert_hash"])]
    pub server: Option<String>,
    /// A bootstrap token (`skiff token create`), used only to ask for this
    /// node's certificate.
    #[arg(long, requires = "server")]
    pub token: Option<String>,
    /// `sha256:<hex>` of the cluster CA's public key (printed by `skiff
    /// token create`): a server with another CA is refused.
    #[arg(long, requires = "server")]
    pub ca_cert_hash: Option<String>,
    /// Where the agent's state lives (`/var/lib/skiff` as root).
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub flags: AgentFlags,
}

/// A running agent; [`Agent::stop`] waits for its parts to end.
pub struct Agent {
    kubelet: JoinHandle<()>,
    proxy: Option<JoinHandle<()>>,
    containerd: Option<skiff_containerd::Managed>,
}

impl Agent {
    pub async fn stop(self) {
        let _ = self.kubelet.await;
        if let Some(proxy) = self.proxy {
            let _ = proxy.await;
        }
        if let Some(containerd) = self.containerd {
            containerd.wait().await;
        }
    }
}

/// The API clients of the agent's parts: the kubelet acts as
/// `system:node:<name>`; kube-proxy as itself where it has its own
/// identity (on the server), else as the node.
pub struct Clients {
    pub kubelet: kube::Client,
    pub proxy: kube::Client,
}

/// The node's name and InternalIP from the flags (host name and primary
/// address by default).
pub fn node_identity(flags: &AgentFlags) -> (String, IpAddr) {
    let name = flags
        .node_name
        .clone()
        .or_else(skiff_apiserver::host_name)
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase();
    let ip = flags
        .node_ip
        .or_else(skiff_apiserver::primary_address)
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    (name, ip)
}

/// Starts containerd (when managed), imports images, then the kubelet
/// (serving its API with `serving` when given).
pub async fn start(
    data_dir: &std::path::Path,
    flags: &AgentFlags,
    clients: Clients,
    serving: Option<skiff_kubelet::server::KubeletTls>,
    control_plane: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<Agent> {
    let agent_dir = data_dir.join("agent");
    let containerd_config = skiff_containerd::ContainerdConfig::new(&agent_dir);
    let cni_conf_dir = containerd_config.cni_conf_dir.clone();
    let (socket, containerd) = if flags.container_runtime_endpoint.is_empty() {
        let managed = skiff_containerd::start(containerd_config, shutdown.clone())
            .await
            .context("starting containerd")?;
        let socket = managed.socket();
        skiff_containerd::images::ensure_images(&socket, &agent_dir, |line| {
            tracing::info!("{line}");
        })
        .await
        .context("importing the node's images")?;
        (socket, Some(managed))
    } else {
        (PathBuf::from(&flags.container_runtime_endpoint), None)
    };
    let (name, ip) = node_identity(flags);
    let mut node = skiff_kubelet::NodeSpec::new(&name, vec![ip]);
    node.control_plane = control_plane;
    node.kubelet_port = flags.kubelet_port;
    node.max_pods = flags.max_pods;
    for (flag, list) in [
        ("--kube-reserved", &flags.kube_reserved),
        ("--system-reserved", &flags.system_reserved),
    ] {
        node.reserved
            .add_list(list)
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    }
    let api = serving.map(|tls| skiff_kubelet::ApiServing {
        tls,
        port: flags.kubelet_port,
        healthz_port: flags.kubelet_healthz_port,
        streaming_idle_timeout: flags.streaming_connection_idle_timeout,
    });
    if api.is_none() {
        tracing::warn!("no serving certificate: the kubelet API (kubectl logs) is not served");
    }
    node.pod_cidr = flags.pod_cidr.clone();
    let config = skiff_kubelet::Config {
        client: clients.kubelet,
        node,
        runtime_endpoint: socket,
        root_dir: agent_dir.join("kubelet"),
        pod_log_dir: flags.pod_log_dir.clone(),
        cni_conf_dir: Some(cni_conf_dir),
        cluster_dns: Some(skiff_kubelet::ClusterDns {
            server: flags.cluster_dns,
            domain: flags.cluster_domain.clone(),
        }),
        api,
        eviction_hard: skiff_kubelet::node::pressure::Thresholds::parse(&flags.eviction_hard)
            .map_err(|e| anyhow::anyhow!("--eviction-hard: {e}"))?,
        pod_manifest_path: Some(
            flags
                .pod_manifest_path
                .clone()
                .unwrap_or_else(|| agent_dir.join("pod-manifests")),
        ),
    };
    let proxy = (!flags.disable_kube_proxy).then(|| {
        let mut proxy = skiff_proxy::Config::new(clients.proxy.clone(), &name);
        proxy.healthz_port = flags.proxy_healthz_port;
        proxy.metrics_port = flags.proxy_metrics_port;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = skiff_proxy::run(proxy, stop).await {
                tracing::error!(error = %e, "kube-proxy stopped");
            }
        })
    });
    let kubelet = tokio::spawn(async move {
        if let Err(e) = skiff_kubelet::run(config, shutdown).await {
            tracing::error!(error = %e, "node agent stopped");
        }
    });
    Ok(Agent {
        kubelet,
        proxy,
        containerd,
    })
}

/// A serving certificate for the kubelet API signed by the cluster CA,
/// when this node shares the server's data dir (the server's own node);
/// agents on other hosts get theirs through the join flow.
pub fn kubelet_tls(
    data_dir: &std::path::Path,
    node_name: &str,
    ip: IpAddr,
) -> anyhow::Result<Option<skiff_kubelet::server::KubeletTls>> {
    let tls = data_dir.join("tls");
    let (Ok(cert_pem), Ok(key_pem)) = (
        std::fs::read_to_string(tls.join("ca.crt")),
        std::fs::read_to_string(tls.join("ca.key")),
    ) else {
        return Ok(None);
    };
    let ca = skiff_apiserver::pki::CertPair { cert_pem, key_pem };
    let serving = skiff_apiserver::pki::issue_kubelet_serving(&ca, node_name, &[ip])
        .context("issuing the kubelet's serving certificate")?;
    Ok(Some(skiff_kubelet::server::KubeletTls {
        cert_pem: serving.cert_pem,
        key_pem: serving.key_pem,
        client_ca_pem: ca.cert_pem,
    }))
}

/// `skiff proxy`: kube-proxy alone.
#[derive(clap::Args)]
pub struct ProxyArgs {
    /// Credentials and address of the API server.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The Node whose addresses serve NodePorts (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Remove skiff's nftables table and exit.
    #[arg(long)]
    pub cleanup: bool,
}

/// Runs kube-proxy until Ctrl-C (or removes its rules with `--cleanup`).
pub async fn run_proxy(args: ProxyArgs) -> anyhow::Result<()> {
    if args.cleanup {
        skiff_proxy::cleanup().await?;
        return Ok(());
    }
    let client = crate::server::client_from(args.kubeconfig.as_deref()).await?;
    let name = args
        .node_name
        .or_else(skiff_apiserver::host_name)
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(skiff_proxy::run(
        skiff_proxy::Config::new(client, &name),
        shutdown.clone(),
    ));
    crate::server::wait_for_signal().await;
    shutdown.cancel();
    running.await??;
    Ok(())
}

/// `skiff agent`: runs until Ctrl-C.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::server::default_data_dir);
    let (name, ip) = node_identity(&args.flags);
    let (client, serving) = match (&args.server, &args.token, &args.ca_cert_hash) {
        (Some(server), Some(token), Some(hash)) => {
            let params = skiff_kubelet::tls_bootstrap::JoinParams {
                server: server.clone(),
                token: token.clone(),
                ca_cert_hash: hash.clone(),
                node_name: name.clone(),
                node_ips: vec![ip],
                dir: data_dir.join("agent").join("pki"),
                discovery_timeout: std::time::Duration::from_secs(300),
            };
            let creds = skiff_kubelet::tls_bootstrap::join(&params)
                .await
                .with_context(|| format!("joining {server}"))?;
            let client = creds.client().await?;
            let tls = skiff_kubelet::server::KubeletTls {
                cert_pem: creds.serving_cert_pem,
                key_pem: creds.serving_key_pem,
                client_ca_pem: creds.ca_pem,
            };
            (client, Some(tls))
        }
        _ => {
            let client = crate::server::client_from(args.kubeconfig.as_deref()).await?;
            (client, kubelet_tls(&data_dir, &name, ip)?)
        }
    };
    let shutdown = CancellationToken::new();
    let clients = Clients {
        kubelet: client.clone(),
        proxy: client,
    };
    let agent = start(
        &data_dir,
        &args.flags,
        clients,
        serving,
        false,
        shutdown.clone(),
    )
    .await?;
    crate::server::wait_for_signal().await;
    shutdown.cancel();
    agent.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("4 hours").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("10").is_err());
    }
}
