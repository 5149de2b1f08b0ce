//! The nftables ruleset: a pure function of [`State`].
//!
//! The layout follows upstream kube-proxy's nftables mode, in our own
//! table `ip skiff-proxy` (and `ip6 skiff-proxy` when the state has IPv6
//! Services or pod CIDRs):
//!
//! * base chains `nat-prerouting` / `nat-output` jump to `services`, which
//!   dispatches on `ip daddr . meta l4proto . th dport` through the verdict
//!   map `service-ips` (ClusterIPs, externalIPs, load-balancer IPs) and, for
//!   destinations in `nodeport-ips`, on `meta l4proto . th dport` through
//!   `service-nodeports`;
//! * per service port: `service-<id>` (Cluster policy endpoints),
//!   `local-<id>` (this node's endpoints, for the Local policies) and
//!   `external-<id>` (NodePort/external/LB traffic: masquerade, or the Local
//!   short-circuits); they pick an endpoint with
//!   `numgen random mod N vmap { 0 : goto endpoint-..., ... }` after the
//!   session-affinity lookups;
//! * `endpoint-<id>__<ip>/<port>` marks hairpin traffic for masquerade,
//!   refreshes the affinity set (`affinity-...`, `flags dynamic,timeout`)
//!   and does `dnat to ip:port`;
//! * filter chains (priority dstnat-10, before DNAT) send new connections
//!   to Services without usable endpoints through `no-endpoint-services` /
//!   `no-endpoint-nodeports` to `reject-chain` (or `drop` when only the
//!   Local policy leaves no endpoint), and reject traffic to ClusterIPs on
//!   ports no Service uses (`cluster-ips-check`);
//! * `loadBalancerSourceRanges`: new connections to a load-balancer IP
//!   pass `firewall-check` (filter prerouting and output, before DNAT),
//!   which sends them through the map `firewall-ips` to
//!   `firewall-<id>`: `saddr != { ranges } drop` (the load-balancer IPs
//!   themselves are allowed too when a range holds a node address, for
//!   traffic from the node that loops back with the VIP as source);
//! * `nat-postrouting` masquerades packets carrying the mark 0x4000
//!   (upstream's masquerade bit), set by `mark-for-masquerade`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::cidr::Cidr;
use crate::model::{Endpoint, ServicePort, State};

/// The name of our tables.
pub const TABLE: &str = "skiff-proxy";
/// The masquerade bit (upstream's default `--masquerade-bit=14`).
pub const MASQUERADE_MARK: &str = "0x4000";

/// An address family: one table per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The nft table family and address-match keyword (`ip` / `ip6`).
    pub fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
    fn has(self, ip: &IpAddr) -> bool {
        match self {
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
    fn cidr_has(self, cidr: &str) -> bool {
        match self {
            Family::V4 => !cidr.contains(':'),
            Family::V6 => cidr.contains(':'),
        }
    }
}

/// A top-level object of a table: a set, a map or a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// `set`, `map` or `chain`.
    pub kind: &'static str,
    pub name: String,
    /// Declaration lines (`type ...`, `flags ...`, `timeout ...`, a base
    /// chain's hook line): a change here needs the object recreated.
    pub header: Vec<String>,
    /// The rules of a chain, or the `elements = { ... }` line of a set/map.
    pub body: Vec<String>,
    /// How many elements a set/map holds.
    pub elements: usize,
}

/// One table, objects in declaration order (sets and maps first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    pub objects: Vec<Object>,
}

/// Every table the proxy owns, as nft declarations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub tables: Vec<Table>,
}

impl Ruleset {
    /// How many rules (chain lines) and map/set elements it holds.
    pub fn counts(&self) -> (usize, usize) {
        let mut rules = 0;
        let mut elements = 0;
        for t in &self.tables {
            for o in &t.objects {
                if o.kind == "chain" {
                    rules += o.body.len();
                } else {
                    elements += o.elements;
                }
            }
        }
        (rules, elements)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table {} {TABLE} {{", self.family.nft())?;
        for o in &self.objects {
            writeln!(f, "\t{} {} {{", o.kind, o.name)?;
            for line in o.header.iter().chain(&o.body) {
                writeln!(f, "\t\t{line}")?;
            }
            writeln!(f, "\t}}")?;
        }
        writeln!(f, "}}")
    }
}

impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

/// The full ruleset text for `state`: what [`crate::sync`] compares between
/// syncs and what the applier writes.
pub fn ruleset(state: &State) -> String {
    build(state).to_string()
}

/// The families `state` needs: IPv4 always, IPv6 when a Service or a pod
/// CIDR is IPv6.
pub fn families(state: &State) -> Vec<Family> {
    let v6 = state
        .services
        .iter()
        .any(|s| s.cluster_ips.iter().any(IpAddr::is_ipv6))
        || state.cluster_cidrs.iter().any(|c| c.contains(':'));
    if v6 {
        vec![Family::V4, Family::V6]
    } else {
        vec![Family::V4]
    }
}

/// The structured ruleset for `state`.
pub fn build(state: &State) -> Ruleset {
    Ruleset {
        tables: families(state)
            .into_iter()
            .map(|f| table(state, f))
            .collect(),
    }
}

impl Object {
    fn chain(name: impl Into<String>, body: Vec<String>) -> Object {
        Object {
            kind: "chain",
            name: name.into(),
            header: Vec::new(),
            body,
            elements: 0,
        }
    }
    fn base(name: &str, type_: &str, hook: &str, priority: i32, body: Vec<String>) -> Object {
        Object {
            kind: "chain",
            name: name.to_owned(),
            header: vec![format!(
                "type {type_} hook {hook} priority {priority}; policy accept;"
            )],
            body,
            elements: 0,
        }
    }
    fn set(kind: &'static str, name: &str, header: Vec<String>, elements: &[String]) -> Object {
        Object {
            kind,
            name: name.to_owned(),
            header,
            body: if elements.is_empty() {
                Vec::new()
            } else {
                vec![format!("elements = {{ {} }}", elements.join(", "))]
            },
            elements: elements.len(),
        }
    }
}

/// Makes `s` usable inside an nft identifier (IPv6 colons).
fn ident(s: &str) -> String {
    s.replace(':', ".")
}

fn addr(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The endpoints a service port uses, upstream's `CategorizeEndpoints`:
/// ready ones, else serving-and-terminating ones (both cluster-wide and on
/// this node).
struct Categorized<'a> {
    cluster: Vec<&'a Endpoint>,
    local: Vec<&'a Endpoint>,
    /// Whether any usable endpoint exists anywhere.
    any: bool,
    uses_cluster: bool,
    uses_local: bool,
}

fn categorize<'a>(sp: &ServicePort, eps: &[&'a Endpoint], node: &str) -> Categorized<'a> {
    let externally = sp.externally_accessible();
    let uses_cluster = !sp.internal_local || externally;
    let uses_local = sp.internal_local || (externally && sp.external_local);
    let pick = |local_only: bool| {
        let on_node = |e: &&&Endpoint| !local_only || e.node_name.as_deref() == Some(node);
        let ready: Vec<&Endpoint> = eps
            .iter()
            .filter(on_node)
            .filter(|e| e.ready)
            .copied()
            .collect();
        if ready.is_empty() {
            eps.iter()
                .filter(on_node)
                .filter(|e| e.serving && e.terminating)
                .copied()
                .collect()
        } else {
            ready
        }
    };
    let any = eps.iter().any(|e| e.ready || (e.serving && e.terminating));
    Categorized {
        cluster: if uses_cluster {
            pick(false)
        } else {
            Vec::new()
        },
        local: if uses_local { pick(true) } else { Vec::new() },
        any,
        uses_cluster,
        uses_local,
    }
}

fn endpoint_chain(id: &str, e: &Endpoint) -> String {
    format!("endpoint-{id}__{}/{}", ident(&e.ip.to_string()), e.port)
}

fn affinity_set(id: &str, e: &Endpoint) -> String {
    format!("affinity-{id}__{}/{}", ident(&e.ip.to_string()), e.port)
}

/// Verdict maps are keyed by destination; the first service (in id order)
/// to claim a key keeps it, so a conflict never fails the transaction.
#[derive(Default)]
struct Maps {
    cluster_ips: BTreeSet<IpAddr>,
    service_ips: BTreeMap<(IpAddr, &'static str, u16), String>,
    service_nodeports: BTreeMap<(&'static str, u16), String>,
    no_endpoint_services: BTreeMap<(IpAddr, &'static str, u16), String>,
    no_endpoint_nodeports: BTreeMap<(&'static str, u16), String>,
    firewall_ips: BTreeMap<(IpAddr, &'static str, u16), String>,
}

fn ip_key_elements(m: &BTreeMap<(IpAddr, &'static str, u16), String>) -> Vec<String> {
    m.iter()
        .map(|((ip, proto, port), v)| format!("{ip} . {proto} . {port} : {v}"))
        .collect()
}

fn port_key_elements(m: &BTreeMap<(&'static str, u16), String>) -> Vec<String> {
    m.iter()
        .map(|((proto, port), v)| format!("{proto} . {port} : {v}"))
        .collect()
}

/// The table for one family.
pub fn table(state: &State, family: Family) -> Table {
    let ip = family.nft();
    let cidrs: Vec<&str> = state
        .cluster_cidrs
        .iter()
        .map(String::as_str)
        .filter(|c| family.cidr_has(c))
        .collect();
    let cidr_set = match cidrs.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        many => Some(format!("{{ {} }}", many.join(", "))),
    };
    let mut maps = Maps::default();
    let mut sets: Vec<Object> = Vec::new();
    let mut chains: Vec<Object> = Vec::new();

    for sp in &state.services {
        let Some(cluster_ip) = sp.cluster_ips.iter().find(|i| family.has(i)) else {
            continue;
        };
        maps.cluster_ips.insert(*cluster_ip);
        let id = sp.id();
        let proto = sp.protocol.nft();
        let eps: Vec<&Endpoint> = sp.endpoints.iter().filter(|e| family.has(&e.ip)).collect();
        let c = categorize(sp, &eps, &state.node_name);
        let cluster_chain = format!("service-{id}");
        let local_chain = format!("local-{id}");
        let external_chain = format!("external-{id}");
        let has_endpoints = c.any;
        let (internal_chain, has_internal) = if sp.internal_local {
            (&local_chain, !c.local.is_empty())
        } else {
            (&cluster_chain, has_endpoints)
        };
        let (external_policy_chain, has_external) = if sp.external_local {
            (&local_chain, !c.local.is_empty())
        } else {
            (&cluster_chain, has_endpoints)
        };
        let uses_external_chain = has_endpoints && sp.externally_accessible();
        let (internal_verdict, external_verdict) = if has_endpoints {
            ("drop".to_owned(), "drop".to_owned())
        } else {
            (
                "goto reject-chain".to_owned(),
                "goto reject-chain".to_owned(),
            )
        };

        // Destinations.
        if has_internal {
            maps.service_ips
                .entry((*cluster_ip, proto, sp.port))
                .or_insert(format!("goto {internal_chain}"));
        } else {
            maps.no_endpoint_services
                .entry((*cluster_ip, proto, sp.port))
                .or_insert(internal_verdict);
        }
        for ext in sp
            .external_ips
            .iter()
            .chain(&sp.load_balancer_ips)
            .filter(|i| family.has(i))
        {
            if uses_external_chain {
                maps.service_ips
                    .entry((*ext, proto, sp.port))
                    .or_insert(format!("goto {external_chain}"));
            }
            if !has_external {
                maps.no_endpoint_services
                    .entry((*ext, proto, sp.port))
                    .or_insert(external_verdict.clone());
            }
        }
        if let Some(node_port) = sp.node_port {
            if has_endpoints {
                maps.service_nodeports
                    .entry((proto, node_port))
                    .or_insert(format!("goto {external_chain}"));
            }
            if !has_external {
                maps.no_endpoint_nodeports
                    .entry((proto, node_port))
                    .or_insert(external_verdict.clone());
            }
        }
        if let Some(fw) = firewall(sp, family, &state.node_ips) {
            let fw_chain = format!("firewall-{id}");
            for lb in sp.load_balancer_ips.iter().filter(|i| family.has(i)) {
                maps.firewall_ips
                    .entry((*lb, proto, sp.port))
                    .or_insert(format!("goto {fw_chain}"));
            }
            chains.push(Object::chain(fw_chain, vec![fw]));
        }
        if !has_endpoints {
            continue;
        }

        // The masquerade rule for ClusterIP traffic from outside the pod
        // network, in the chain ClusterIP traffic goes to.
        let masq = if state.masquerade_all {
            Some(format!(
                "{ip} daddr {cluster_ip} {proto} dport {} jump mark-for-masquerade",
                sp.port
            ))
        } else {
            cidr_set.as_ref().map(|cidrs| {
                format!(
                    "{ip} daddr {cluster_ip} {proto} dport {} {ip} saddr != {cidrs} jump mark-for-masquerade",
                    sp.port
                )
            })
        };

        // Policy chains.
        let lb = |eps: &[&Endpoint], masq: Option<String>| {
            let mut body: Vec<String> = masq.into_iter().collect();
            if sp.affinity_timeout.is_some() {
                for e in eps {
                    body.push(format!(
                        "{ip} saddr @{} goto {}",
                        affinity_set(&id, e),
                        endpoint_chain(&id, e)
                    ));
                }
            }
            let arms: Vec<String> = eps
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{i} : goto {}", endpoint_chain(&id, e)))
                .collect();
            body.push(format!(
                "numgen random mod {} vmap {{ {} }}",
                eps.len(),
                arms.join(", ")
            ));
            body
        };
        let uses_cluster_chain = c.uses_cluster && !c.cluster.is_empty();
        let uses_local_chain = c.uses_local && !c.local.is_empty();
        if uses_cluster_chain {
            let m = if sp.internal_local {
                None
            } else {
                masq.clone()
            };
            chains.push(Object::chain(&cluster_chain, lb(&c.cluster, m)));
        }
        if uses_local_chain {
            let m = if sp.internal_local {
                masq.clone()
            } else {
                None
            };
            chains.push(Object::chain(&local_chain, lb(&c.local, m)));
        }
        if uses_external_chain {
            let mut body = Vec::new();
            if sp.external_local {
                if let Some(cidrs) = &cidr_set {
                    // Pods reaching an external address: cluster traffic.
                    body.push(format!("{ip} saddr {cidrs} goto {cluster_chain}"));
                }
                // The host itself: masquerade (the source is a local
                // address) and the cluster policy.
                body.push("fib saddr type local jump mark-for-masquerade".to_owned());
                body.push(format!("fib saddr type local goto {cluster_chain}"));
            } else {
                body.push("jump mark-for-masquerade".to_owned());
            }
            if has_external {
                body.push(format!("goto {external_policy_chain}"));
            }
            chains.push(Object::chain(&external_chain, body));
        }

        // Endpoint chains (each once, also when in both lists).
        let mut seen = BTreeSet::new();
        let mut reachable: Vec<&Endpoint> = Vec::new();
        for e in c.cluster.iter().chain(&c.local) {
            if seen.insert((e.ip, e.port)) {
                reachable.push(e);
            }
        }
        reachable.sort_by_key(|e| (e.ip, e.port));
        for e in reachable {
            let mut body = vec![format!("{ip} saddr {} jump mark-for-masquerade", e.ip)];
            if let Some(timeout) = sp.affinity_timeout {
                let set = affinity_set(&id, e);
                sets.push(Object::set(
                    "set",
                    &set,
                    vec![
                        format!("type {}", family.addr_type()),
                        "flags dynamic,timeout".to_owned(),
                        format!("timeout {timeout}s"),
                    ],
                    &[],
                ));
                body.push(format!("update @{set} {{ {ip} saddr }}"));
            }
            body.push(format!(
                "meta l4proto {proto} dnat to {}:{}",
                addr(&e.ip),
                e.port
            ));
            chains.push(Object::chain(endpoint_chain(&id, e), body));
        }
    }

    let at = family.addr_type();
    let node_ips: Vec<String> = state
        .node_ips
        .iter()
        .filter(|i| family.has(i))
        .map(ToString::to_string)
        .collect();
    let cluster_ips: Vec<String> = maps.cluster_ips.iter().map(ToString::to_string).collect();
    let mut objects = vec![
        Object::set(
            "set",
            "cluster-ips",
            vec![format!("type {at}")],
            &cluster_ips,
        ),
        Object::set("set", "nodeport-ips", vec![format!("type {at}")], &node_ips),
        Object::set(
            "map",
            "service-ips",
            vec![format!("type {at} . inet_proto . inet_service : verdict")],
            &ip_key_elements(&maps.service_ips),
        ),
        Object::set(
            "map",
            "service-nodeports",
            vec!["type inet_proto . inet_service : verdict".to_owned()],
            &port_key_elements(&maps.service_nodeports),
        ),
        Object::set(
            "map",
            "no-endpoint-services",
            vec![format!("type {at} . inet_proto . inet_service : verdict")],
            &ip_key_elements(&maps.no_endpoint_services),
        ),
        Object::set(
            "map",
            "no-endpoint-nodeports",
            vec!["type inet_proto . inet_service : verdict".to_owned()],
            &port_key_elements(&maps.no_endpoint_nodeports),
        ),
        Object::set(
            "map",
            "firewall-ips",
            vec![format!("type {at} . inet_proto . inet_service : verdict")],
            &ip_key_elements(&maps.firewall_ips),
        ),
    ];
    objects.extend(sets);
    let new = |chain: &str| format!("ct state new jump {chain}");
    objects.extend([
        Object::base(
            "filter-prerouting",
            "filter",
            "prerouting",
            -110,
            vec![new("firewall-check")],
        ),
        Object::base(
            "filter-input",
            "filter",
            "input",
            -110,
            vec![
                new("nodeport-endpoints-check"),
                new("service-endpoints-check"),
            ],
        ),
        Object::base(
            "filter-forward",
            "filter",
            "forward",
            -110,
            vec![new("service-endpoints-check"), new("cluster-ips-check")],
        ),
        Object::base(
            "filter-output",
            "filter",
            "output",
            -110,
            vec![new("service-endpoints-check"), new("firewall-check")],
        ),
        Object::base(
            "filter-output-post-dnat",
            "filter",
            "output",
            -90,
            vec![new("cluster-ips-check")],
        ),
        Object::base(
            "nat-prerouting",
            "nat",
            "prerouting",
            -100,
            vec!["jump services".to_owned()],
        ),
        Object::base(
            "nat-output",
            "nat",
            "output",
            -100,
            vec!["jump services".to_owned()],
        ),
        Object::base(
            "nat-postrouting",
            "nat",
            "postrouting",
            100,
            vec!["jump masquerading".to_owned()],
        ),
        Object::chain(
            "mark-for-masquerade",
            vec![format!("mark set mark or {MASQUERADE_MARK}")],
        ),
        Object::chain(
            "masquerading",
            vec![
                format!("mark and {MASQUERADE_MARK} == 0 return"),
                format!("mark set mark xor {MASQUERADE_MARK}"),
                "masquerade fully-random".to_owned(),
            ],
        ),
        Object::chain(
            "services",
            vec![
                format!("{ip} daddr . meta l4proto . th dport vmap @service-ips"),
                format!("{ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"),
            ],
        ),
        Object::chain(
            "service-endpoints-check",
            vec![format!(
                "{ip} daddr . meta l4proto . th dport vmap @no-endpoint-services"
            )],
        ),
        Object::chain(
            "nodeport-endpoints-check",
            vec![format!(
                "{ip} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"
            )],
        ),
        Object::chain(
            "firewall-check",
            vec![format!(
                "{ip} daddr . meta l4proto . th dport vmap @firewall-ips"
            )],
        ),
        Object::chain("reject-chain", vec!["reject".to_owned()]),
        Object::chain(
            "cluster-ips-check",
            vec![format!("{ip} daddr @cluster-ips reject")],
        ),
    ]);
    objects.extend(chains);
    Table { family, objects }
}

/// The rule of `sp`'s firewall chain in `family`, upstream's: drop sources
/// outside `loadBalancerSourceRanges`; `None` when the port has no
/// load-balancer IP or no range of this family (nothing to filter).
fn firewall(sp: &ServicePort, family: Family, node_ips: &[IpAddr]) -> Option<String> {
    let lbs: Vec<&IpAddr> = sp
        .load_balancer_ips
        .iter()
        .filter(|i| family.has(i))
        .collect();
    let ranges: Vec<&Cidr> = sp
        .source_ranges
        .iter()
        .filter(|c| family.has(&c.addr))
        .collect();
    if lbs.is_empty() || ranges.is_empty() {
        return None;
    }
    let from_node = node_ips
        .iter()
        .filter(|n| family.has(n))
        .any(|n| ranges.iter().any(|r| r.contains(n)));
    let mut sources: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    if from_node {
        sources.extend(lbs.iter().map(ToString::to_string));
    }
    Some(format!(
        "{} saddr != {{ {} }} drop",
        family.nft(),
        sources.join(", ")
    ))
}

/// The rendered text of one object, for tests and logs.
pub fn render_object(o: &Object) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} {} {{", o.kind, o.name);
    for line in o.header.iter().chain(&o.body) {
        let _ = writeln!(s, "\t{line}");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests;
