//! The proxy's view of the cluster as plain structs: one [`ServicePort`]
//! per (Service, port) with its endpoints already resolved from the
//! EndpointSlices (named target ports included), and the node's addresses.
//! [`State::from_objects`] builds it from API objects; the ruleset
//! generator ([`crate::ruleset`]) only ever sees these structs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::cidr::Cidr;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A transport protocol a Service port may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// `TCP`, `UDP`, `SCTP` (the API's spelling); `None` for anything else.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nftables keyword (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nft())
    }
}

/// One backend of a service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    /// `nodeName` of the endpoint (for the `Local` traffic policies).
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl Endpoint {
    /// A ready, serving, not terminating endpoint.
    pub fn ready(ip: IpAddr, port: u16, node_name: Option<&str>) -> Endpoint {
        Endpoint {
            ip,
            port,
            node_name: node_name.map(str::to_owned),
            ready: true,
            serving: true,
            terminating: false,
        }
    }
}

/// One port of one Service, with what the ruleset needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's `name` (may be empty for single-port Services).
    pub port_name: String,
    pub protocol: Protocol,
    /// `spec.clusterIPs` (empty for headless Services, which are skipped).
    pub cluster_ips: Vec<IpAddr>,
    pub port: u16,
    /// `nodePort` for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` (malformed ones skipped): when set,
    /// traffic to the load-balancer IPs from elsewhere is dropped.
    pub source_ranges: Vec<Cidr>,
    /// `sessionAffinity: ClientIP` with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` (only for externally reachable Services).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// A ClusterIP service port without endpoints (tests and builders).
    pub fn cluster_ip(namespace: &str, name: &str, ip: IpAddr, port: u16) -> ServicePort {
        ServicePort {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            cluster_ips: vec![ip],
            port,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            source_ranges: Vec::new(),
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints: Vec::new(),
        }
    }

    /// `namespace/name/protocol/port-name` (the port number when unnamed):
    /// unique per service port, and a valid nft identifier tail.
    pub fn id(&self) -> String {
        let port = if self.port_name.is_empty() {
            self.port.to_string()
        } else {
            self.port_name.clone()
        };
        format!(
            "{}/{}/{}/{}",
            self.namespace, self.name, self.protocol, port
        )
    }

    /// Whether NodePort, externalIPs or load-balancer IPs make it reachable
    /// from outside the cluster.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.external_ips.is_empty()
            || !self.load_balancer_ips.is_empty()
    }
}

/// Everything the ruleset is generated from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// This node's name (endpoints with this `nodeName` are local).
    pub node_name: String,
    /// Addresses NodePorts answer on (the node's InternalIPs; upstream's
    /// nftables mode does not serve NodePorts on localhost).
    pub node_ips: Vec<IpAddr>,
    /// Pod CIDRs: traffic from elsewhere to a ClusterIP is masqueraded.
    /// Empty means "masquerade all ClusterIP traffic" is not done either
    /// (upstream without a local-traffic detector).
    pub cluster_cidrs: Vec<String>,
    /// Masquerade every packet to a ClusterIP (upstream `--masquerade-all`).
    pub masquerade_all: bool,
    /// Sorted by [`ServicePort::id`].
    pub services: Vec<ServicePort>,
}

fn parse_ips<'a>(ips: impl IntoIterator<Item = &'a String>) -> Vec<IpAddr> {
    ips.into_iter().filter_map(|s| s.parse().ok()).collect()
}

/// The node's `InternalIP` addresses.
pub fn node_ips(node: &Node) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Endpoints of `port` from the slices of its Service: the slice port with
/// the same name and protocol gives the target port (named target ports are
/// resolved by whoever wrote the slice). Duplicates across slices (same
/// address and port) count once.
fn endpoints_for(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
    want_v6: Option<bool>,
) -> Vec<Endpoint> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        let v6 = match slice.address_type.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            _ => continue,
        };
        if want_v6.is_some_and(|w| w != v6) {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && Protocol::parse(p.protocol.as_deref().unwrap_or("TCP")) == Some(protocol)
        }) else {
            continue;
        };
        let Some(target) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            if !seen.insert((ip, target)) {
                continue;
            }
            let c = ep.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            out.push(Endpoint {
                ip,
                port: target,
                node_name: ep.node_name.clone(),
                ready,
                serving,
                terminating,
            });
        }
    }
    out.sort_by_key(|e| (e.ip, e.port));
    out
}

impl State {
    /// The state for `node_name` from the objects the reflectors hold.
    /// Headless and ExternalName Services and ports with an unknown
    /// protocol are skipped.
    pub fn from_objects<'a>(
        node_name: &str,
        node: Option<&Node>,
        cluster_cidrs: &[String],
        masquerade_all: bool,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> State {
        let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in slices {
            let Some(svc) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            if slice.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            by_service.entry((ns, svc.clone())).or_default().push(slice);
        }
        let mut out = Vec::new();
        for svc in services {
            let ns = svc.metadata.namespace.clone().unwrap_or_default();
            let name = svc.metadata.name.clone().unwrap_or_default();
            out.extend(service_ports(
                &ns,
                &name,
                svc,
                by_service
                    .get(&(ns.clone(), name.clone()))
                    .map_or(&[][..], Vec::as_slice),
            ));
        }
        out.sort_by_key(ServicePort::id);
        State {
            node_name: node_name.to_owned(),
            node_ips: node.map(node_ips).unwrap_or_default(),
            cluster_cidrs: cluster_cidrs.to_vec(),
            masquerade_all,
            services: out,
        }
    }
}

fn service_ports(
    ns: &str,
    name: &str,
    svc: &Service,
    slices: &[&EndpointSlice],
) -> Vec<ServicePort> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    if type_ == "ExternalName" {
        return Vec::new();
    }
    let mut cluster_ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if cluster_ips.is_empty() {
        cluster_ips.extend(spec.cluster_ip.clone());
    }
    if cluster_ips.iter().any(|ip| ip == "None") {
        return Vec::new();
    }
    let cluster_ips = parse_ips(&cluster_ips);
    if cluster_ips.is_empty() {
        return Vec::new();
    }
    let external_ips = parse_ips(spec.external_ips.iter().flatten());
    let load_balancer_ips: Vec<IpAddr> = if type_ == "LoadBalancer" {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_ref()?.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    let source_ranges: Vec<Cidr> = spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .filter_map(|r| Cidr::parse(r))
        .collect();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(10800)
    });
    let node_port_type = type_ == "NodePort" || type_ == "LoadBalancer";
    let externally = node_port_type || !external_ips.is_empty() || !load_balancer_ips.is_empty();
    let external_local = externally && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let dual = cluster_ips.iter().any(IpAddr::is_ipv4) && cluster_ips.iter().any(IpAddr::is_ipv6);
    let mut out = Vec::new();
    for port in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(port.protocol.as_deref().unwrap_or("TCP")) else {
            continue;
        };
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let port_name = port.name.clone().unwrap_or_default();
        // A single-stack Service takes endpoints of its own family only.
        let want_v6 = (!dual).then(|| cluster_ips[0].is_ipv6());
        out.push(ServicePort {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            endpoints: endpoints_for(slices, &port_name, protocol, want_v6),
            port_name,
            protocol,
            cluster_ips: cluster_ips.clone(),
            port: number,
            node_port: port
                .node_port
                .filter(|_| node_port_type)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0),
            external_ips: external_ips.clone(),
            load_balancer_ips: load_balancer_ips.clone(),
            source_ranges: source_ranges.clone(),
            affinity_timeout,
            external_local,
            internal_local,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }
    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn named_target_ports_come_from_the_slice() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.100", "clusterIPs": ["10.43.0.100"],
                     "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }));
        let sl = slice(json!({
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.42.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}}
            ]
        }));
        let other = slice(json!({
            "metadata": {"name": "other", "namespace": "kube-system",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9999, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.9.9"]}]
        }));
        let state = State::from_objects("n1", None, &[], false, [&s], [&sl, &other]);
        assert_eq!(state.services.len(), 2);
        let http = &state.services[0];
        assert_eq!(http.id(), "default/web/tcp/http");
        assert_eq!(
            http.endpoints,
            vec![
                Endpoint::ready("10.42.0.5".parse().unwrap(), 8080, Some("n1")),
                Endpoint {
                    ip: "10.42.0.6".parse().unwrap(),
                    port: 8080,
                    node_name: None,
                    ready: false,
                    serving: true,
                    terminating: true
                }
            ]
        );
        let dns = &state.services[1];
        assert_eq!(dns.id(), "default/web/udp/dns");
        assert_eq!(dns.endpoints[0].port, 5353);
    }

    #[test]
    fn headless_and_external_name_services_are_skipped() {
        let headless = svc(json!({"metadata": {"name": "h", "namespace": "d"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        let ext = svc(json!({"metadata": {"name": "e", "namespace": "d"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}));
        let state = State::from_objects("n", None, &[], false, [&headless, &ext], []);
        assert!(state.services.is_empty());
    }

    #[test]
    fn node_port_load_balancer_affinity_and_policies() {
        let s = svc(json!({
            "metadata": {"name": "lb", "namespace": "d"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.7",
                     "externalIPs": ["192.0.2.1"],
                     "loadBalancerSourceRanges": ["198.51.100.0/24", "bad", "2001:db8::/32"],
                     "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
                     "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                     "ports": [{"port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}, {"hostname": "x"}]}}
        }));
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"addresses": [{"type": "Hostname", "address": "n"},
                                     {"type": "InternalIP", "address": "192.168.1.5"}]}}))
        .unwrap();
        let state = State::from_objects("n", Some(&node), &[], false, [&s], []);
        let p = &state.services[0];
        assert_eq!(p.id(), "d/lb/tcp/80");
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(p.external_ips, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            p.load_balancer_ips,
            vec!["192.0.2.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            p.source_ranges
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["198.51.100.0/24", "2001:db8::/32"]
        );
        assert_eq!(p.affinity_timeout, Some(60));
        assert!(p.external_local && p.internal_local);
        assert_eq!(
            state.node_ips,
            vec!["192.168.1.5".parse::<IpAddr>().unwrap()]
        );
    }
}
