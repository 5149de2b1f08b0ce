//! Cluster DNS inside `skiff server`: the DNS server (`skiff-dns`) and the
//! `kube-dns` Service in kube-system that pods reach it through
//! (10.43.0.10:53, UDP and TCP, as `--cluster-dns` tells the kubelets).
//!
//! The server listens on this node's address (port 10053 by default, not
//! 53, which the host's own resolver often holds); the Service's selector-less
//! Endpoints and EndpointSlice point at this node's address, and
//! kube-proxy carries 10.43.0.10:53 there.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The cluster DNS Service's address (k3s's and the kubelet's default).
pub const CLUSTER_DNS_IP: &str = "10.43.0.10";
const NAME: &str = "kube-dns";
const NAMESPACE: &str = "kube-system";
const MANAGER: &str = "skiff-dns";

#[derive(clap::Args, Clone)]
pub struct DnsFlags {
    /// Run no cluster DNS on this server.
    #[arg(long)]
    pub disable_dns: bool,
    /// Port the DNS server listens on, UDP and TCP, on the node's address
    /// (0 picks a free one); the kube-dns Service forwards 53 to it.
    #[arg(long, default_value_t = 10053)]
    pub dns_port: u16,
    /// Port of the DNS server's /metrics and /health (0: not served).
    #[arg(long, default_value_t = 9153)]
    pub dns_metrics_port: u16,
}

/// The kube-dns Service: selector-less, its ports named as CoreDNS's.
fn service(metrics: bool) -> serde_json::Value {
    let mut ports = vec![
        json!({"name": "dns", "port": 53, "protocol": "UDP"}),
        json!({"name": "dns-tcp", "port": 53, "protocol": "TCP"}),
    ];
    if metrics {
        ports.push(json!({"name": "metrics", "port": 9153, "protocol": "TCP"}));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "skiff-dns"},
        },
        "spec": {"clusterIP": CLUSTER_DNS_IP, "ports": ports},
    })
}

/// (name, port, protocol) of what this server serves.
fn served_ports(
    dns_port: u16,
    metrics_port: Option<u16>,
) -> Vec<(&'static str, u16, &'static str)> {
    let mut ports = vec![("dns", dns_port, "UDP"), ("dns-tcp", dns_port, "TCP")];
    if let Some(p) = metrics_port {
        ports.push(("metrics", p, "TCP"));
    }
    ports
}

fn endpoint_slice(
    ip: IpAddr,
    node: Option<&str>,
    ports: &[(&str, u16, &str)],
) -> serde_json::Value {
    let mut endpoint = json!({
        "addresses": [ip.to_string()],
        "conditions": {"ready": true, "serving": true, "terminating": false},
    });
    if let Some(node) = node {
        endpoint["nodeName"] = json!(node);
    }
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": NAME,
                "endpointslice.kubernetes.io/managed-by": MANAGER,
            },
        },
        "addressType": if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [endpoint],
        "ports": ports.iter().map(|(name, port, protocol)| json!({"name": name, "port": port, "protocol": protocol})).collect::<Vec<_>>(),
    })
}

fn endpoints(ip: IpAddr, node: Option<&str>, ports: &[(&str, u16, &str)]) -> serde_json::Value {
    let mut address = json!({"ip": ip.to_string()});
    if let Some(node) = node {
        address["nodeName"] = json!(node);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{
            "addresses": [address],
            "ports": ports.iter().map(|(name, port, protocol)| json!({"name": name, "port": port, "protocol": protocol})).collect::<Vec<_>>(),
        }],
    })
}

/// Writes the Service, Endpoints and EndpointSlice (server-side apply, so
/// a restart with another port or address converges).
async fn register(
    client: &kube::Client,
    ip: IpAddr,
    node: Option<&str>,
    dns_port: u16,
    metrics_port: Option<u16>,
) -> kube::Result<()> {
    let params = PatchParams::apply(MANAGER).force();
    let ports = served_ports(dns_port, metrics_port);
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .patch(
            NAME,
            &params,
            &Patch::Apply(service(metrics_port.is_some())),
        )
        .await?;
    Api::<Endpoints>::namespaced(client.clone(), NAMESPACE)
        .patch(NAME, &params, &Patch::Apply(endpoints(ip, node, &ports)))
        .await?;
    Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .patch(
            NAME,
            &params,
            &Patch::Apply(endpoint_slice(ip, node, &ports)),
        )
        .await?;
    Ok(())
}

/// Binds the DNS server, registers the kube-dns Service for it (retrying
/// until the API accepts), and serves until `shutdown`. `ip` is where pods
/// reach this host; `node` names this server's node, if it runs one.
pub async fn start(
    client: kube::Client,
    flags: &DnsFlags,
    ip: IpAddr,
    node: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut config = skiff_dns::Config::new(client.clone());
    // On the node address itself, not 0.0.0.0: a UDP answer from a
    // wildcard socket leaves with the bridge's address as source, which
    // conntrack cannot map back to 10.43.0.10, and the pod never sees it.
    config.listen = vec![SocketAddr::new(ip, flags.dns_port)];
    config.metrics_address = (flags.dns_metrics_port != 0)
        .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), flags.dns_metrics_port));
    let server = skiff_dns::DnsServer::bind(config).await.map_err(|e| {
        anyhow::anyhow!("starting cluster DNS: {e} (see --dns-port, --disable-dns)")
    })?;
    let port = server
        .local_addrs()
        .first()
        .map(SocketAddr::port)
        .unwrap_or(flags.dns_port);
    let metrics_port = server.metrics_addr().map(|a| a.port());
    tracing::info!(%ip, port, "cluster DNS listening; kube-dns Service at {CLUSTER_DNS_IP}:53");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            match register(&client, ip, node.as_deref(), port, metrics_port).await {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "registering the kube-dns Service; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
    Ok(tokio::spawn(async move {
        if let Err(e) = server.run(shutdown).await {
            tracing::error!(error = %e, "cluster DNS stopped");
        }
    }))
}
