//! Golden snippets of the generated ruleset.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::Protocol;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn state(services: Vec<ServicePort>) -> State {
    State {
        node_name: "node-a".to_owned(),
        node_ips: vec![ip("192.168.1.10")],
        cluster_cidrs: vec!["10.42.0.0/16".to_owned()],
        masquerade_all: false,
        services,
    }
}

/// The block `kind name { ... }` of the rendered text, tabs normalised to
/// one level, or `None`.
fn block(text: &str, kind: &str, name: &str) -> Option<String> {
    let start = format!("\t{kind} {name} {{\n");
    let at = text.find(&start)?;
    let rest = &text[at + 1..];
    let end = rest.find("\n\t}\n")?;
    Some(
        rest[..end + 3]
            .lines()
            .map(|l| l.strip_prefix('\t').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn chain(text: &str, name: &str) -> String {
    block(text, "chain", name).unwrap_or_else(|| panic!("no chain {name} in\n{text}"))
}

fn map(text: &str, name: &str) -> String {
    block(text, "map", name).unwrap_or_else(|| panic!("no map {name} in\n{text}"))
}

fn web() -> ServicePort {
    ServicePort::cluster_ip("default", "web", ip("10.43.0.100"), 80)
}

#[test]
fn cluster_ip_with_two_endpoints() {
    let mut s = web();
    s.port_name = "http".to_owned();
    s.endpoints = vec![
        Endpoint::ready(ip("10.42.0.5"), 8080, Some("node-a")),
        Endpoint::ready(ip("10.42.1.7"), 8080, Some("node-b")),
    ];
    let text = ruleset(&state(vec![s]));
    assert!(text.starts_with("table ip skiff-proxy {\n"), "{text}");
    assert!(!text.contains("table ip6"), "{text}");
    assert_eq!(
        map(&text, "service-ips"),
        "map service-ips {\n\ttype ipv4_addr . inet_proto . inet_service : verdict\n\
         \telements = { 10.43.0.100 . tcp . 80 : goto service-default/web/tcp/http }\n}"
    );
    assert_eq!(
        chain(&text, "service-default/web/tcp/http"),
        "chain service-default/web/tcp/http {\n\
         \tip daddr 10.43.0.100 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade\n\
         \tnumgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/http__10.42.0.5/8080, 1 : goto endpoint-default/web/tcp/http__10.42.1.7/8080 }\n}"
    );
    assert_eq!(
        chain(&text, "endpoint-default/web/tcp/http__10.42.0.5/8080"),
        "chain endpoint-default/web/tcp/http__10.42.0.5/8080 {\n\
         \tip saddr 10.42.0.5 jump mark-for-masquerade\n\
         \tmeta l4proto tcp dnat to 10.42.0.5:8080\n}"
    );
    assert_eq!(
        block(&text, "set", "cluster-ips").unwrap(),
        "set cluster-ips {\n\ttype ipv4_addr\n\telements = { 10.43.0.100 }\n}"
    );
    assert!(!text.contains("no-endpoint-services {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements"));
    // Nothing external: no external chain, no affinity.
    assert!(!text.contains("external-"), "{text}");
    assert!(!text.contains("affinity-"), "{text}");
}

#[test]
fn fixed_chains_follow_upstream() {
    let text = ruleset(&state(vec![]));
    assert_eq!(
        chain(&text, "nat-prerouting"),
        "chain nat-prerouting {\n\ttype nat hook prerouting priority -100; policy accept;\n\tjump services\n}"
    );
    assert_eq!(
        chain(&text, "nat-postrouting"),
        "chain nat-postrouting {\n\ttype nat hook postrouting priority 100; policy accept;\n\tjump masquerading\n}"
    );
    assert_eq!(
        chain(&text, "masquerading"),
        "chain masquerading {\n\tmark and 0x4000 == 0 return\n\tmark set mark xor 0x4000\n\tmasquerade fully-random\n}"
    );
    assert_eq!(
        chain(&text, "mark-for-masquerade"),
        "chain mark-for-masquerade {\n\tmark set mark or 0x4000\n}"
    );
    assert_eq!(
        chain(&text, "services"),
        "chain services {\n\tip daddr . meta l4proto . th dport vmap @service-ips\n\
         \tip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports\n}"
    );
    assert_eq!(
        chain(&text, "filter-output"),
        "chain filter-output {\n\ttype filter hook output priority -110; policy accept;\n\
         \tct state new jump service-endpoints-check\n\tct state new jump firewall-check\n}"
    );
    assert_eq!(
        chain(&text, "filter-prerouting"),
        "chain filter-prerouting {\n\ttype filter hook prerouting priority -110; policy accept;\n\
         \tct state new jump firewall-check\n}"
    );
    assert_eq!(
        chain(&text, "firewall-check"),
        "chain firewall-check {\n\tip daddr . meta l4proto . th dport vmap @firewall-ips\n}"
    );
    assert_eq!(
        chain(&text, "reject-chain"),
        "chain reject-chain {\n\treject\n}"
    );
    assert_eq!(
        block(&text, "set", "nodeport-ips").unwrap(),
        "set nodeport-ips {\n\ttype ipv4_addr\n\telements = { 192.168.1.10 }\n}"
    );
}

#[test]
fn no_endpoints_rejects() {
    let mut s = web();
    // Not ready and not terminating: unusable.
    s.endpoints = vec![Endpoint {
        ready: false,
        serving: false,
        ..Endpoint::ready(ip("10.42.0.5"), 8080, None)
    }];
    let text = ruleset(&state(vec![s]));
    assert_eq!(
        map(&text, "no-endpoint-services"),
        "map no-endpoint-services {\n\ttype ipv4_addr . inet_proto . inet_service : verdict\n\
         \telements = { 10.43.0.100 . tcp . 80 : goto reject-chain }\n}"
    );
    assert_eq!(
        map(&text, "service-ips"),
        "map service-ips {\n\ttype ipv4_addr . inet_proto . inet_service : verdict\n}"
    );
    assert!(!text.contains("chain service-default"), "{text}");
    assert!(!text.contains("chain endpoint-"), "{text}");
}

#[test]
fn node_port_external_ips_and_load_balancer() {
    let mut s = web();
    s.protocol = Protocol::Udp;
    s.node_port = Some(30053);
    s.external_ips = vec![ip("192.0.2.1")];
    s.load_balancer_ips = vec![ip("192.0.2.9")];
    s.endpoints = vec![Endpoint::ready(ip("10.42.1.7"), 53, Some("node-b"))];
    let text = ruleset(&state(vec![s]));
    assert_eq!(
        map(&text, "service-ips"),
        "map service-ips {\n\ttype ipv4_addr . inet_proto . inet_service : verdict\n\
         \telements = { 10.43.0.100 . udp . 80 : goto service-default/web/udp/80, \
         192.0.2.1 . udp . 80 : goto external-default/web/udp/80, \
         192.0.2.9 . udp . 80 : goto external-default/web/udp/80 }\n}"
    );
    assert_eq!(
        map(&text, "service-nodeports"),
        "map service-nodeports {\n\ttype inet_proto . inet_service : verdict\n\
         \telements = { udp . 30053 : goto external-default/web/udp/80 }\n}"
    );
    // Cluster policy: external traffic is always masqueraded.
    assert_eq!(
        chain(&text, "external-default/web/udp/80"),
        "chain external-default/web/udp/80 {\n\tjump mark-for-masquerade\n\
         \tgoto service-default/web/udp/80\n}"
    );
    assert_eq!(
        chain(&text, "endpoint-default/web/udp/80__10.42.1.7/53"),
        "chain endpoint-default/web/udp/80__10.42.1.7/53 {\n\
         \tip saddr 10.42.1.7 jump mark-for-masquerade\n\
         \tmeta l4proto udp dnat to 10.42.1.7:53\n}"
    );
}

#[test]
fn node_port_without_endpoints_rejects_on_node_ips() {
    let mut s = web();
    s.node_port = Some(30080);
    let text = ruleset(&state(vec![s]));
    assert_eq!(
        map(&text, "no-endpoint-nodeports"),
        "map no-endpoint-nodeports {\n\ttype inet_proto . inet_service : verdict\n\
         \telements = { tcp . 30080 : goto reject-chain }\n}"
    );
    assert_eq!(
        chain(&text, "nodeport-endpoints-check"),
        "chain nodeport-endpoints-check {\n\
         \tip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports\n}"
    );
    assert!(!text.contains("chain external-"), "{text}");
}

#[test]
fn session_affinity() {
    let mut s = web();
    s.affinity_timeout = Some(10800);
    s.endpoints = vec![
        Endpoint::ready(ip("10.42.0.5"), 8080, None),
        Endpoint::ready(ip("10.42.0.6"), 8080, None),
    ];
    let text = ruleset(&state(vec![s]));
    assert_eq!(
        block(&text, "set", "affinity-default/web/tcp/80__10.42.0.5/8080").unwrap(),
        "set affinity-default/web/tcp/80__10.42.0.5/8080 {\n\ttype ipv4_addr\n\
         \tflags dynamic,timeout\n\ttimeout 10800s\n}"
    );
    assert_eq!(
        chain(&text, "service-default/web/tcp/80"),
        "chain service-default/web/tcp/80 {\n\
         \tip daddr 10.43.0.100 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade\n\
         \tip saddr @affinity-default/web/tcp/80__10.42.0.5/8080 goto endpoint-default/web/tcp/80__10.42.0.5/8080\n\
         \tip saddr @affinity-default/web/tcp/80__10.42.0.6/8080 goto endpoint-default/web/tcp/80__10.42.0.6/8080\n\
         \tnumgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/80__10.42.0.5/8080, 1 : goto endpoint-default/web/tcp/80__10.42.0.6/8080 }\n}"
    );
    assert_eq!(
        chain(&text, "endpoint-default/web/tcp/80__10.42.0.6/8080"),
        "chain endpoint-default/web/tcp/80__10.42.0.6/8080 {\n\
         \tip saddr 10.42.0.6 jump mark-for-masquerade\n\
         \tupdate @affinity-default/web/tcp/80__10.42.0.6/8080 { ip saddr }\n\
         \tmeta l4proto tcp dnat to 10.42.0.6:8080\n}"
    );
}

#[test]
fn external_traffic_policy_local() {
    let mut s = web();
    s.node_port = Some(30080);
    s.external_local = true;
    s.endpoints = vec![
        Endpoint::ready(ip("10.42.0.5"), 8080, Some("node-a")),
        Endpoint::ready(ip("10.42.1.7"), 8080, Some("node-b")),
    ];
    let text = ruleset(&state(vec![s.clone()]));
    // No masquerade for external traffic from elsewhere; pods and the host
    // short-circuit to the cluster-wide chain.
    assert_eq!(
        chain(&text, "external-default/web/tcp/80"),
        "chain external-default/web/tcp/80 {\n\
         \tip saddr 10.42.0.0/16 goto service-default/web/tcp/80\n\
         \tfib saddr type local jump mark-for-masquerade\n\
         \tfib saddr type local goto service-default/web/tcp/80\n\
         \tgoto local-default/web/tcp/80\n}"
    );
    assert_eq!(
        chain(&text, "local-default/web/tcp/80"),
        "chain local-default/web/tcp/80 {\n\
         \tnumgen random mod 1 vmap { 0 : goto endpoint-default/web/tcp/80__10.42.0.5/8080 }\n}"
    );
    assert!(chain(&text, "service-default/web/tcp/80").contains("mod 2"));

    // No endpoint on this node: NodePort traffic from outside is dropped,
    // the external chain still short-circuits local traffic.
    s.endpoints.remove(0);
    let text = ruleset(&state(vec![s]));
    assert_eq!(
        map(&text, "no-endpoint-nodeports"),
        "map no-endpoint-nodeports {\n\ttype inet_proto . inet_service : verdict\n\
         \telements = { tcp . 30080 : drop }\n}"
    );
    assert!(
        map(&text, "service-nodeports").contains("tcp . 30080 : goto external-default/web/tcp/80")
    );
    assert!(!chain(&text, "external-default/web/tcp/80").contains("goto local-"));
    assert!(!text.contains("chain local-"), "{text}");
}

#[test]
fn internal_traffic_policy_local() {
    let mut s = web();
    s.internal_local = true;
    s.endpoints = vec![
        Endpoint::ready(ip("10.42.0.5"), 8080, Some("node-a")),
        Endpoint::ready(ip("10.42.1.7"), 8080, Some("node-b")),
    ];
    let text = ruleset(&state(vec![s.clone()]));
    assert!(
        map(&text, "service-ips")
            .contains("10.43.0.100 . tcp . 80 : goto local-default/web/tcp/80")
    );
    assert_eq!(
        chain(&text, "local-default/web/tcp/80"),
        "chain local-default/web/tcp/80 {\n\
         \tip daddr 10.43.0.100 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade\n\
         \tnumgen random mod 1 vmap { 0 : goto endpoint-default/web/tcp/80__10.42.0.5/8080 }\n}"
    );
    assert!(!text.contains("chain service-default"), "{text}");
    assert!(!text.contains("10.42.1.7"), "{text}");

    // Endpoints only elsewhere: drop (upstream), not reject.
    s.endpoints.remove(0);
    let text = ruleset(&state(vec![s]));
    assert!(map(&text, "no-endpoint-services").contains("10.43.0.100 . tcp . 80 : drop"));
}

#[test]
fn terminating_endpoints_only_when_none_ready() {
    let terminating = |a: &str| Endpoint {
        ready: false,
        serving: true,
        terminating: true,
        ..Endpoint::ready(ip(a), 8080, Some("node-a"))
    };
    let mut s = web();
    s.endpoints = vec![
        terminating("10.42.0.5"),
        Endpoint::ready(ip("10.42.0.6"), 8080, None),
    ];
    let text = ruleset(&state(vec![s.clone()]));
    assert!(!text.contains("10.42.0.5"), "{text}");
    assert!(
        chain(&text, "service-default/web/tcp/80")
            .contains("mod 1 vmap { 0 : goto endpoint-default/web/tcp/80__10.42.0.6/8080 }")
    );

    // No ready endpoint: the serving terminating ones take over.
    s.endpoints = vec![
        terminating("10.42.0.5"),
        Endpoint {
            serving: false,
            ..terminating("10.42.0.7")
        },
    ];
    let text = ruleset(&state(vec![s]));
    assert!(
        chain(&text, "service-default/web/tcp/80")
            .contains("mod 1 vmap { 0 : goto endpoint-default/web/tcp/80__10.42.0.5/8080 }")
    );
    assert!(!text.contains("10.42.0.7"), "{text}");
    assert!(!text.contains("reject-chain }"), "{text}");
}

#[test]
fn masquerade_all_and_no_cluster_cidr() {
    let mut s = web();
    s.endpoints = vec![Endpoint::ready(ip("10.42.0.5"), 8080, None)];
    let mut st = state(vec![s]);
    st.masquerade_all = true;
    let text = ruleset(&st);
    assert!(
        chain(&text, "service-default/web/tcp/80")
            .contains("\tip daddr 10.43.0.100 tcp dport 80 jump mark-for-masquerade\n")
    );
    st.masquerade_all = false;
    st.cluster_cidrs.clear();
    let text = ruleset(&st);
    assert!(!chain(&text, "service-default/web/tcp/80").contains("mark-for-masquerade"));
}

#[test]
fn ipv6_gets_its_own_table() {
    let mut s = ServicePort::cluster_ip("default", "v6", ip("fd00:43::10"), 80);
    s.endpoints = vec![Endpoint::ready(ip("fd00:42::5"), 8080, None)];
    let mut st = state(vec![s, web()]);
    st.cluster_cidrs.push("fd00:42::/56".to_owned());
    let rs = build(&st);
    assert_eq!(rs.tables.len(), 2);
    let v6 = rs.tables[1].to_string();
    assert!(v6.starts_with("table ip6 skiff-proxy {\n"));
    assert!(
        map(&v6, "service-ips").contains("fd00:43::10 . tcp . 80 : goto service-default/v6/tcp/80")
    );
    assert_eq!(
        chain(&v6, "endpoint-default/v6/tcp/80__fd00.42..5/8080"),
        "chain endpoint-default/v6/tcp/80__fd00.42..5/8080 {\n\
         \tip6 saddr fd00:42::5 jump mark-for-masquerade\n\
         \tmeta l4proto tcp dnat to [fd00:42::5]:8080\n}"
    );
    assert!(chain(&v6, "service-default/v6/tcp/80").contains("ip6 saddr != fd00:42::/56"));
    // The v4-only service is not in the v6 table and vice versa.
    assert!(!v6.contains("10.43.0.100"));
    assert!(!rs.tables[0].to_string().contains("fd00"));
}

#[test]
fn conflicting_destinations_keep_the_first_service() {
    let mut a = ServicePort::cluster_ip("a", "one", ip("10.43.0.1"), 80);
    a.external_ips = vec![ip("192.0.2.1")];
    a.endpoints = vec![Endpoint::ready(ip("10.42.0.5"), 80, None)];
    let mut b = ServicePort::cluster_ip("b", "two", ip("10.43.0.2"), 80);
    b.external_ips = vec![ip("192.0.2.1")];
    b.endpoints = vec![Endpoint::ready(ip("10.42.0.6"), 80, None)];
    let text = ruleset(&state(vec![a, b]));
    let m = map(&text, "service-ips");
    assert_eq!(m.matches("192.0.2.1 . tcp . 80").count(), 1, "{m}");
    assert!(m.contains("192.0.2.1 . tcp . 80 : goto external-a/one/tcp/80"));
}

#[test]
fn counts_rules_and_elements() {
    let mut s = web();
    s.endpoints = vec![Endpoint::ready(ip("10.42.0.5"), 8080, None)];
    let rs = build(&state(vec![s]));
    let (rules, elements) = rs.counts();
    // cluster-ips, nodeport-ips, service-ips: one element each.
    assert_eq!(elements, 3);
    assert!(rules > 20, "{rules}");
}

#[test]
fn load_balancer_source_ranges_drop_other_sources() {
    let mut s = web();
    s.node_port = Some(30080);
    s.load_balancer_ips = vec![ip("192.0.2.9"), ip("2001:db8::9")];
    s.source_ranges = vec![
        crate::cidr::Cidr::parse("198.51.100.0/24").unwrap(),
        crate::cidr::Cidr::parse("203.0.113.7").unwrap(),
        crate::cidr::Cidr::parse("2001:db8::/64").unwrap(),
    ];
    let text = ruleset(&state(vec![s.clone()]));
    assert_eq!(
        map(&text, "firewall-ips"),
        "map firewall-ips {\n\ttype ipv4_addr . inet_proto . inet_service : verdict\n\
         \telements = { 192.0.2.9 . tcp . 80 : goto firewall-default/web/tcp/80 }\n}"
    );
    // The node (192.168.1.10) is in no range: only the ranges pass.
    assert_eq!(
        chain(&text, "firewall-default/web/tcp/80"),
        "chain firewall-default/web/tcp/80 {\n\
         \tip saddr != { 198.51.100.0/24, 203.0.113.7/32 } drop\n}"
    );
    // Also without endpoints (the Service rejects then, but sources outside
    // the ranges still see nothing).
    s.endpoints.clear();
    assert!(ruleset(&state(vec![s.clone()])).contains("chain firewall-default/web/tcp/80 {"));

    // A range holding a node address: the load-balancer IPs may be
    // sources too (hairpin traffic from the node).
    s.source_ranges = vec![crate::cidr::Cidr::parse("192.168.0.0/16").unwrap()];
    let text = ruleset(&state(vec![s.clone()]));
    assert_eq!(
        chain(&text, "firewall-default/web/tcp/80"),
        "chain firewall-default/web/tcp/80 {\n\
         \tip saddr != { 192.168.0.0/16, 192.0.2.9 } drop\n}"
    );

    // No ranges (or no load-balancer IP): nothing filtered.
    s.source_ranges.clear();
    let text = ruleset(&state(vec![s.clone()]));
    assert!(!text.contains("chain firewall-default"), "{text}");
    assert_eq!(
        map(&text, "firewall-ips"),
        "map firewall-ips {\n\ttype ipv4_addr . inet_proto . inet_service : verdict\n}"
    );
}
