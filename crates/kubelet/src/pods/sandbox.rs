//! The CRI sandbox of a pod: its network/IPC/PID namespaces, hostname,
//! DNS and port mappings, as upstream's `generatePodSandboxConfig`.

use std::net::IpAddr;
use std::path::Path;

use k8s_cri::v1::{
    DnsConfig, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol,
};
use k8s_openapi::api::core::v1::Pod;

use super::labels;

/// Cluster DNS settings handed to pods with `dnsPolicy: ClusterFirst`.
#[derive(Clone, Debug)]
pub struct ClusterDns {
    pub server: IpAddr,
    pub domain: String,
}

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            server: IpAddr::from([10, 43, 0, 10]),
            domain: "cluster.local".to_owned(),
        }
    }
}

/// Everything the sandbox config needs besides the pod.
pub struct SandboxInputs<'a> {
    pub attempt: u32,
    pub log_dir: &'a Path,
    pub dns: Option<&'a ClusterDns>,
    pub node_name: &'a str,
    /// The host's resolv.conf, for `dnsPolicy: Default` and host-network pods.
    pub host_resolv_conf: &'a str,
}

pub fn sandbox_config(pod: &Pod, inputs: &SandboxInputs) -> PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let meta = &pod.metadata;
    let host_network = spec.host_network.unwrap_or(false);
    let hostname = if host_network {
        inputs.node_name.to_owned()
    } else {
        spec.hostname
            .clone()
            .unwrap_or_else(|| meta.name.clone().unwrap_or_default())
    };
    let mut port_mappings = Vec::new();
    for container in &spec.containers {
        for port in container.ports.iter().flatten() {
            let Some(host_port) = port.host_port.filter(|p| *p > 0) else {
                continue;
            };
            port_mappings.push(PortMapping {
                protocol: match port.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp as i32,
                    Some("SCTP") => Protocol::Sctp as i32,
                    _ => Protocol::Tcp as i32,
                },
                container_port: port.container_port,
                host_port,
                host_ip: port.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let mut labels = meta
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>();
    labels.extend(labels::pod_labels(pod));
    let mut annotations: std::collections::HashMap<String, String> = meta
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(
        labels::GRACE_PERIOD.to_owned(),
        spec.termination_grace_period_seconds
            .unwrap_or(30)
            .to_string(),
    );
    let ns_mode = |host: Option<bool>| {
        if host.unwrap_or(false) {
            NamespaceMode::Node as i32
        } else {
            NamespaceMode::Pod as i32
        }
    };
    let security = spec.security_context.clone().unwrap_or_default();
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            attempt: inputs.attempt,
        }),
        hostname,
        log_directory: inputs.log_dir.display().to_string(),
        dns_config: Some(dns_config(pod, inputs)),
        port_mappings,
        labels,
        annotations,
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: ns_mode(spec.host_network),
                    pid: if spec.host_pid.unwrap_or(false) {
                        NamespaceMode::Node as i32
                    } else if spec.share_process_namespace.unwrap_or(false) {
                        NamespaceMode::Pod as i32
                    } else {
                        NamespaceMode::Container as i32
                    },
                    ipc: ns_mode(spec.host_ipc),
                    ..Default::default()
                }),
                run_as_user: security
                    .run_as_user
                    .map(|value| k8s_cri::v1::Int64Value { value }),
                run_as_group: security
                    .run_as_group
                    .map(|value| k8s_cri::v1::Int64Value { value }),
                supplemental_groups: security.supplemental_groups.clone().unwrap_or_default(),
                ..Default::default()
            }),
            sysctls: security
                .sysctls
                .iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            ..Default::default()
        }),
        windows: None,
    }
}

/// The pod's resolv.conf per `dnsPolicy` and `dnsConfig`, as upstream.
pub fn dns_config(pod: &Pod, inputs: &SandboxInputs) -> DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let (host_servers, host_searches, host_options) = parse_resolv_conf(inputs.host_resolv_conf);
    let cluster = match policy {
        "ClusterFirstWithHostNet" => inputs.dns,
        "ClusterFirst" if !host_network => inputs.dns,
        _ => None,
    };
    let mut config = match (policy, cluster) {
        ("None", _) => DnsConfig::default(),
        (_, Some(dns)) => {
            let mut searches = vec![
                format!("{ns}.svc.{}", dns.domain),
                format!("svc.{}", dns.domain),
                dns.domain.clone(),
            ];
            searches.extend(host_searches);
            DnsConfig {
                servers: vec![dns.server.to_string()],
                searches,
                options: vec!["ndots:5".to_owned()],
            }
        }
        _ => DnsConfig {
            servers: host_servers,
            searches: host_searches,
            options: host_options,
        },
    };
    if let Some(extra) = &spec.dns_config {
        for server in extra.nameservers.iter().flatten() {
            if !config.servers.contains(server) {
                config.servers.push(server.clone());
            }
        }
        for search in extra.searches.iter().flatten() {
            if !config.searches.contains(search) {
                config.searches.push(search.clone());
            }
        }
        for option in extra.options.iter().flatten() {
            let Some(name) = &option.name else { continue };
            config
                .options
                .retain(|o| o.split(':').next() != Some(name.as_str()));
            config.options.push(match &option.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            });
        }
    }
    // Upstream's limits: 3 servers, 32 search domains.
    config.servers.truncate(3);
    config.searches.truncate(32);
    config
}

fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_owned)),
            Some("search") | Some("domain") => {
                searches = words.map(str::to_owned).collect();
            }
            Some("options") => options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": spec
        }))
        .unwrap_or_default()
    }

    fn inputs<'a>(dns: Option<&'a ClusterDns>) -> SandboxInputs<'a> {
        SandboxInputs {
            attempt: 0,
            log_dir: Path::new("/var/log/pods/shop_web_u1"),
            dns,
            node_name: "node1",
            host_resolv_conf: "nameserver 192.0.2.53\nsearch corp.example\n",
        }
    }

    #[test]
    fn cluster_first_uses_cluster_dns_with_search_paths() {
        let dns = ClusterDns::default();
        let config = dns_config(
            &pod(serde_json::json!({"containers": []})),
            &inputs(Some(&dns)),
        );
        assert_eq!(config.servers, vec!["10.43.0.10"]);
        assert_eq!(
            config.searches,
            vec![
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(config.options, vec!["ndots:5"]);
    }

    #[test]
    fn host_network_and_default_use_the_host_resolver() {
        let dns = ClusterDns::default();
        let p = pod(serde_json::json!({"containers": [], "hostNetwork": true}));
        assert_eq!(
            dns_config(&p, &inputs(Some(&dns))).servers,
            vec!["192.0.2.53"]
        );
        let p = pod(serde_json::json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(
            dns_config(&p, &inputs(Some(&dns))).servers,
            vec!["192.0.2.53"]
        );
        let p = pod(serde_json::json!({"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]}}));
        let config = dns_config(&p, &inputs(Some(&dns)));
        assert_eq!(config.servers, vec!["1.1.1.1"]);
        assert_eq!(config.options, vec!["ndots:2"]);
    }

    #[test]
    fn host_ports_become_port_mappings() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "c", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}]}),
        );
        let config = sandbox_config(&p, &inputs(None));
        assert_eq!(config.port_mappings.len(), 1);
        assert_eq!(config.port_mappings[0].host_port, 8080);
        assert_eq!(config.hostname, "web");
        assert_eq!(
            config.labels.get(labels::POD_UID).map(String::as_str),
            Some("u1")
        );
    }
}
