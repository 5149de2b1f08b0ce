//! Stale UDP conntrack entries, cleared after each sync as upstream
//! kube-proxy does. UDP has no connection to end: a client that keeps
//! sending to a Service keeps its conntrack entry alive, and with it the
//! DNAT to whatever endpoint was chosen first — so when that endpoint goes
//! away the client talks to nothing until it goes quiet for the entry's
//! timeout. Likewise, entries made while a Service had no endpoints would
//! keep its traffic away from the first endpoint that appears.
//!
//! [`stale_udp`] is the pure decision between the previous and the new
//! [`State`]; [`Flush::args`] is the `conntrack -D` command line for each
//! (the `conntrack` tool from Debian's `conntrack` package; upstream uses
//! netlink directly).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{Endpoint, Protocol, ServicePort, State};

/// One set of conntrack entries to delete (all UDP).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flush {
    /// Entries to a Service address and port (the Service just got its
    /// first serving endpoint): upstream's ClearEntriesForIP.
    Destination { ip: IpAddr, port: u16 },
    /// Entries to a NodePort, on either family (same, for NodePorts):
    /// upstream's ClearEntriesForPort.
    NodePort { port: u16, ipv6: bool },
    /// Entries to a Service address and port DNATed to an endpoint that is
    /// no longer serving: upstream's ClearEntriesForNAT.
    Nat {
        ip: IpAddr,
        port: u16,
        endpoint: IpAddr,
    },
    /// Entries to a NodePort DNATed to an endpoint that is gone: upstream's
    /// ClearEntriesForPortNAT.
    NodePortNat { port: u16, endpoint: IpAddr },
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv6() { "ipv6" } else { "ipv4" }
}

impl Flush {
    /// The arguments of `conntrack` that delete these entries.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["-D".into()];
        let mut push = |s: &[&str]| a.extend(s.iter().map(|x| (*x).to_owned()));
        match self {
            Flush::Destination { ip, port } => push(&[
                "-f",
                family(ip),
                "-p",
                "udp",
                "--orig-dst",
                &ip.to_string(),
                "--orig-port-dst",
                &port.to_string(),
            ]),
            Flush::NodePort { port, ipv6 } => push(&[
                "-f",
                if *ipv6 { "ipv6" } else { "ipv4" },
                "-p",
                "udp",
                "--orig-port-dst",
                &port.to_string(),
            ]),
            Flush::Nat { ip, port, endpoint } => push(&[
                "-f",
                family(ip),
                "-p",
                "udp",
                "--orig-dst",
                &ip.to_string(),
                "--orig-port-dst",
                &port.to_string(),
                "--dst-nat",
                &endpoint.to_string(),
            ]),
            Flush::NodePortNat { port, endpoint } => push(&[
                "-f",
                family(endpoint),
                "-p",
                "udp",
                "--orig-port-dst",
                &port.to_string(),
                "--dst-nat",
                &endpoint.to_string(),
            ]),
        }
        a
    }
}

/// Every address a service port answers on (ClusterIPs, externalIPs,
/// load-balancer IPs).
fn addresses(sp: &ServicePort) -> impl Iterator<Item = &IpAddr> {
    sp.cluster_ips
        .iter()
        .chain(&sp.external_ips)
        .chain(&sp.load_balancer_ips)
}

/// The endpoints traffic may have been sent to (upstream's IsServing).
fn serving(sp: &ServicePort) -> BTreeSet<(IpAddr, u16)> {
    sp.endpoints
        .iter()
        .filter(|e: &&Endpoint| e.serving)
        .map(|e| (e.ip, e.port))
        .collect()
}

/// The UDP conntrack entries made stale by going from `previous` to
/// `current` (upstream's detectStaleConntrackEntries and what its proxier
/// clears for them): entries DNATed to an endpoint that stopped serving,
/// and every entry to a Service that went from no serving endpoint to
/// some. `previous` is empty on the first sync, so a restarted proxy
/// clears what a blackholed Service may have left behind.
pub fn stale_udp(previous: &State, current: &State) -> Vec<Flush> {
    let before: BTreeMap<String, &ServicePort> = previous
        .services
        .iter()
        .filter(|s| s.protocol == Protocol::Udp)
        .map(|s| (s.id(), s))
        .collect();
    let mut out = BTreeSet::new();
    for sp in current
        .services
        .iter()
        .filter(|s| s.protocol == Protocol::Udp)
    {
        let now = serving(sp);
        let was = before
            .get(&sp.id())
            .map(|old| serving(old))
            .unwrap_or_default();
        if !now.is_empty() && was.is_empty() {
            for ip in addresses(sp) {
                out.insert(Flush::Destination {
                    ip: *ip,
                    port: sp.port,
                });
            }
            if let Some(port) = sp.node_port {
                for ipv6 in families(sp) {
                    out.insert(Flush::NodePort { port, ipv6 });
                }
            }
        }
    }
    // Endpoints that stopped serving, for the Service as it was (a removed
    // Service or address leaves its entries stale too).
    let after: BTreeMap<String, &ServicePort> = current
        .services
        .iter()
        .filter(|s| s.protocol == Protocol::Udp)
        .map(|s| (s.id(), s))
        .collect();
    for (id, old) in &before {
        let now = after.get(id).map(|sp| serving(sp)).unwrap_or_default();
        for (endpoint, _) in serving(old).difference(&now) {
            for ip in addresses(old).filter(|ip| ip.is_ipv6() == endpoint.is_ipv6()) {
                out.insert(Flush::Nat {
                    ip: *ip,
                    port: old.port,
                    endpoint: *endpoint,
                });
            }
            if let Some(port) = old.node_port {
                out.insert(Flush::NodePortNat {
                    port,
                    endpoint: *endpoint,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// The families a service port's ClusterIPs have (`true`: IPv6).
fn families(sp: &ServicePort) -> BTreeSet<bool> {
    sp.cluster_ips.iter().map(IpAddr::is_ipv6).collect()
}

/// Whether a `conntrack -D` that failed only because nothing matched (it
/// exits 1 and says "0 flow entries have been deleted").
pub fn nothing_matched(stderr: &str) -> bool {
    stderr.contains("0 flow entries have been deleted")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn dns(endpoints: &[&str]) -> ServicePort {
        let mut s = ServicePort::cluster_ip("kube-system", "dns", ip("10.43.0.10"), 53);
        s.protocol = Protocol::Udp;
        s.endpoints = endpoints
            .iter()
            .map(|e| Endpoint::ready(ip(e), 5353, None))
            .collect();
        s
    }

    fn state(services: Vec<ServicePort>) -> State {
        State {
            services,
            ..State::default()
        }
    }

    #[test]
    fn a_gone_endpoint_clears_its_nat_entries() {
        let before = state(vec![dns(&["10.42.0.5", "10.42.0.6"])]);
        let after = state(vec![dns(&["10.42.0.6"])]);
        assert_eq!(
            stale_udp(&before, &after),
            [Flush::Nat {
                ip: ip("10.43.0.10"),
                port: 53,
                endpoint: ip("10.42.0.5")
            }]
        );
        assert_eq!(
            stale_udp(&before, &after)[0].args().join(" "),
            "-D -f ipv4 -p udp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.5"
        );
        // Nothing changed, nothing to clear.
        assert!(stale_udp(&after, &after).is_empty());
    }

    #[test]
    fn not_serving_counts_as_gone_but_terminating_serving_does_not() {
        let before = state(vec![dns(&["10.42.0.5", "10.42.0.6"])]);
        let mut after = dns(&["10.42.0.5", "10.42.0.6"]);
        after.endpoints[0].ready = false;
        after.endpoints[0].terminating = true; // still serving
        after.endpoints[1].ready = false;
        after.endpoints[1].serving = false;
        let flushes = stale_udp(&before, &state(vec![after]));
        assert_eq!(
            flushes,
            [Flush::Nat {
                ip: ip("10.43.0.10"),
                port: 53,
                endpoint: ip("10.42.0.6")
            }]
        );
    }

    #[test]
    fn first_endpoint_clears_entries_to_every_address_and_node_port() {
        let mut empty = dns(&[]);
        empty.node_port = Some(30053);
        empty.external_ips = vec![ip("192.0.2.1")];
        let mut ready = empty.clone();
        ready.endpoints = vec![Endpoint::ready(ip("10.42.0.5"), 5353, None)];
        let flushes = stale_udp(&state(vec![empty]), &state(vec![ready.clone()]));
        assert_eq!(
            flushes,
            [
                Flush::Destination {
                    ip: ip("10.43.0.10"),
                    port: 53
                },
                Flush::Destination {
                    ip: ip("192.0.2.1"),
                    port: 53
                },
                Flush::NodePort {
                    port: 30053,
                    ipv6: false
                },
            ]
        );
        assert_eq!(
            flushes[2].args().join(" "),
            "-D -f ipv4 -p udp --orig-port-dst 30053"
        );
        // The first sync of a proxy counts as "no endpoints before".
        assert_eq!(stale_udp(&State::default(), &state(vec![ready])).len(), 3);
    }

    #[test]
    fn removed_service_and_node_port_nat() {
        let mut old = dns(&["10.42.0.5"]);
        old.node_port = Some(30053);
        let flushes = stale_udp(&state(vec![old]), &State::default());
        assert_eq!(
            flushes,
            [
                Flush::Nat {
                    ip: ip("10.43.0.10"),
                    port: 53,
                    endpoint: ip("10.42.0.5")
                },
                Flush::NodePortNat {
                    port: 30053,
                    endpoint: ip("10.42.0.5")
                },
            ]
        );
        assert_eq!(
            flushes[1].args().join(" "),
            "-D -f ipv4 -p udp --orig-port-dst 30053 --dst-nat 10.42.0.5"
        );
    }

    #[test]
    fn tcp_is_left_alone() {
        let mut tcp = dns(&["10.42.0.5"]);
        tcp.protocol = Protocol::Tcp;
        assert!(stale_udp(&state(vec![tcp]), &State::default()).is_empty());
        let mut tcp = dns(&["10.42.0.5"]);
        tcp.protocol = Protocol::Tcp;
        assert!(stale_udp(&State::default(), &state(vec![tcp])).is_empty());
    }
}
