//! The in-memory record index: every name of the cluster domain built
//! from Services and EndpointSlices, so that a query is one hash lookup
//! and never an API call. It is rebuilt whole on watch events and swapped
//! in; [`Index::lookup`] is a pure function of it.
//!
//! Names follow the Kubernetes DNS specification (schema 1.1.0):
//! `<svc>.<ns>.svc.<domain>` (ClusterIPs, or every ready endpoint of a
//! headless Service, or a CNAME for an ExternalName Service),
//! `<host>.<svc>.<ns>.svc.<domain>` for headless endpoints,
//! `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for named ports, PTR
//! for ClusterIPs and headless endpoint addresses, and
//! `dns-version.<domain>` TXT. `<a-b-c-d>.<ns>.pod.<domain>` is answered
//! from the name itself (upstream's "pods insecure").

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::names;

/// Every answer of the cluster domain lives this long (upstream's 5 s).
pub const TTL: u32 = 5;

/// The schema version `dns-version.<domain>` reports.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The records one name owns. An entry with nothing in it still marks the
/// name as existing (NODATA rather than NXDOMAIN).
#[derive(Debug, Default, Clone)]
struct Entry {
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    cname: Option<Name>,
    srv: Vec<SRV>,
    txt: Vec<String>,
}

impl Entry {
    fn add_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) if !self.a.contains(&v4) => self.a.push(v4),
            IpAddr::V6(v6) if !self.aaaa.contains(&v6) => self.aaaa.push(v6),
            _ => {}
        }
    }
}

/// What a query gets from the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Authoritative records: the answer section and helpful additional
    /// records (addresses of SRV targets).
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// An ExternalName Service: the CNAME, whose target the caller resolves
    /// upstream for address queries.
    ExternalCname { cname: Box<Record>, target: Name },
    /// The name exists but has no records of the asked type.
    NoData,
    /// The name does not exist in the cluster domain.
    NxDomain,
    /// Not ours to answer: forward upstream.
    Forward,
}

/// All the names of the cluster domain, keyed by lowercase FQDN.
#[derive(Debug, Clone)]
pub struct Index {
    /// The cluster domain, lowercase FQDN (`cluster.local.`).
    domain: Name,
    /// `.cluster.local.`: the suffix every name of the domain ends with.
    dotted_domain: String,
    names: HashMap<String, Entry>,
    reverse: HashMap<IpAddr, Vec<Name>>,
    soa: Record,
}

/// The cluster domain as a lowercase FQDN.
pub fn domain_name(domain: &str) -> Result<Name, hickory_proto::ProtoError> {
    let mut name = Name::from_ascii(domain.trim_end_matches('.'))?.to_lowercase();
    name.set_fqdn(true);
    Ok(name)
}

fn fqdn(labels: &[&str], domain: &Name) -> Option<Name> {
    let mut name = Name::from_labels(labels.iter().map(|l| l.as_bytes())).ok()?;
    name.set_fqdn(false);
    name.append_domain(domain).ok()
}

fn key(name: &Name) -> String {
    let mut key = name.to_ascii();
    key.make_ascii_lowercase();
    if !key.ends_with('.') {
        key.push('.');
    }
    key
}

fn record(name: &Name, rdata: RData) -> Record {
    Record::from_rdata(name.clone(), TTL, rdata)
}

impl Index {
    /// An index with no Services: only the apex, `dns-version` and pod
    /// names answer.
    pub fn empty(domain: &Name, serial: u32) -> Index {
        let domain = domain.to_lowercase();
        let soa = SOA::new(
            Name::from_ascii("ns.dns")
                .ok()
                .and_then(|n| n.append_domain(&domain).ok())
                .unwrap_or_else(|| domain.clone()),
            Name::from_ascii("hostmaster")
                .ok()
                .and_then(|n| n.append_domain(&domain).ok())
                .unwrap_or_else(|| domain.clone()),
            serial,
            7200,
            1800,
            86400,
            TTL,
        );
        let mut index = Index {
            dotted_domain: format!(".{}", key(&domain)),
            soa: record(&domain, RData::SOA(soa)),
            domain,
            names: HashMap::new(),
            reverse: HashMap::new(),
        };
        let apex = key(&index.domain);
        index.names.insert(apex, Entry::default());
        if let Some(version) = fqdn(&["dns-version"], &index.domain) {
            index.entry(&version).txt.push(SCHEMA_VERSION.to_owned());
        }
        index
    }

    /// Builds the index of `services` and the `slices` of headless ones.
    pub fn build<'a>(
        domain: &Name,
        serial: u32,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Index {
        let mut index = Index::empty(domain, serial);
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let ns = slice.metadata.namespace.as_deref().unwrap_or_default();
            let labels = slice.metadata.labels.as_ref();
            if let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                by_service
                    .entry((ns, svc.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        for service in services {
            let ns = service.metadata.namespace.as_deref().unwrap_or_default();
            let name = service.metadata.name.as_deref().unwrap_or_default();
            let slices = by_service.get(&(ns, name)).map_or(&[][..], Vec::as_slice);
            index.add_service(service, slices);
        }
        index.add_ancestors();
        index
    }

    /// The zone's SOA, for the authority section of negative answers.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    fn entry(&mut self, name: &Name) -> &mut Entry {
        self.names.entry(key(name)).or_default()
    }

    fn add_service(&mut self, service: &Service, slices: &[&EndpointSlice]) {
        let (Some(ns), Some(name)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ) else {
            return;
        };
        let Some(svc_name) = fqdn(&[name, ns, "svc"], &self.domain) else {
            return;
        };
        let Some(spec) = &service.spec else {
            self.entry(&svc_name);
            return;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec
                .external_name
                .as_deref()
                .and_then(|t| Name::from_ascii(t.trim_end_matches('.')).ok())
                .map(|mut t| {
                    t.set_fqdn(true);
                    t
                });
            self.entry(&svc_name).cname = target;
            return;
        }
        let cluster_ips: Vec<&str> = match (&spec.cluster_ips, &spec.cluster_ip) {
            (Some(ips), _) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
            (_, Some(ip)) => vec![ip.as_str()],
            _ => Vec::new(),
        };
        if cluster_ips.contains(&"None") {
            self.add_headless(
                &svc_name,
                spec.publish_not_ready_addresses == Some(true),
                slices,
            );
            return;
        }
        self.entry(&svc_name);
        for ip in cluster_ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
        {
            self.entry(&svc_name).add_ip(ip);
            self.reverse.entry(ip).or_default().push(svc_name.clone());
        }
        for port in spec.ports.iter().flatten() {
            let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let proto = port.protocol.as_deref().unwrap_or("TCP");
            if let (Some(srv_name), Ok(number)) = (
                srv_name(port_name, proto, &svc_name),
                u16::try_from(port.port),
            ) {
                let srv = SRV::new(0, 100, number, svc_name.clone());
                self.entry(&srv_name).srv.push(srv);
            }
        }
    }

    fn add_headless(
        &mut self,
        svc_name: &Name,
        publish_not_ready: bool,
        slices: &[&EndpointSlice],
    ) {
        self.entry(svc_name);
        // (port name, protocol) → (port, target), deduplicated.
        let mut srvs: HashMap<(String, String), BTreeSet<(u16, Name)>> = HashMap::new();
        for slice in slices {
            if slice.address_type == "FQDN" {
                continue;
            }
            for endpoint in &slice.endpoints {
                let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
                if !ready && !publish_not_ready {
                    continue;
                }
                for ip in endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                {
                    let host = endpoint
                        .hostname
                        .clone()
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| names::dashed(ip));
                    let Some(host_name) = Name::from_ascii(&host)
                        .ok()
                        .and_then(|h| h.append_domain(svc_name).ok())
                    else {
                        continue;
                    };
                    self.entry(svc_name).add_ip(ip);
                    self.entry(&host_name).add_ip(ip);
                    let ptrs = self.reverse.entry(ip).or_default();
                    if !ptrs.contains(&host_name) {
                        ptrs.push(host_name.clone());
                    }
                    for port in slice.ports.iter().flatten() {
                        let (Some(name), Some(number)) = (
                            port.name.as_deref().filter(|n| !n.is_empty()),
                            port.port.and_then(|p| u16::try_from(p).ok()),
                        ) else {
                            continue;
                        };
                        let proto = port.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
                        srvs.entry((name.to_owned(), proto))
                            .or_default()
                            .insert((number, host_name.clone()));
                    }
                }
            }
        }
        for ((port_name, proto), targets) in srvs {
            let Some(name) = srv_name(&port_name, &proto, svc_name) else {
                continue;
            };
            let weight = u16::try_from(100 / targets.len().max(1))
                .unwrap_or(1)
                .max(1);
            let entry = self.entry(&name);
            for (port, target) in targets {
                entry.srv.push(SRV::new(0, weight, port, target));
            }
        }
    }

    /// Every proper ancestor of a name down to the domain exists too
    /// (`<ns>.svc.<domain>` answers NODATA, not NXDOMAIN).
    fn add_ancestors(&mut self) {
        let keys: Vec<String> = self.names.keys().cloned().collect();
        for name in keys {
            let mut rest = name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if !parent.ends_with(&self.dotted_domain) {
                    break;
                }
                if self.names.contains_key(parent) {
                    rest = parent;
                    continue;
                }
                self.names.insert(parent.to_owned(), Entry::default());
                rest = parent;
            }
        }
    }

    fn in_domain(&self, key: &str) -> bool {
        key.ends_with(&self.dotted_domain) || key == &self.dotted_domain[1..]
    }

    /// Answers `qtype` for `qname`. Owner names in the answers are `qname`
    /// as asked (case preserved).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Answer {
        let key = key(qname);
        if !self.in_domain(&key) {
            return self.lookup_reverse(&key, qname, qtype);
        }
        if let Some(entry) = self.names.get(&key) {
            return self.answer(entry, qname, qtype, 0);
        }
        self.lookup_pod(&key, qname, qtype)
    }

    fn answer(&self, entry: &Entry, qname: &Name, qtype: RecordType, depth: u8) -> Answer {
        if let Some(target) = &entry.cname {
            let cname = record(qname, RData::CNAME(CNAME(target.clone())));
            if qtype == RecordType::CNAME {
                return Answer::Records {
                    answers: vec![cname],
                    additionals: Vec::new(),
                };
            }
            let target_key = key(target);
            if !self.in_domain(&target_key) {
                return Answer::ExternalCname {
                    cname: Box::new(cname),
                    target: target.clone(),
                };
            }
            let chased = self.names.get(&target_key).filter(|_| depth < 8);
            return match chased.map(|e| self.answer(e, target, qtype, depth + 1)) {
                Some(Answer::Records {
                    mut answers,
                    additionals,
                }) => {
                    answers.insert(0, cname);
                    Answer::Records {
                        answers,
                        additionals,
                    }
                }
                _ => Answer::Records {
                    answers: vec![cname],
                    additionals: Vec::new(),
                },
            };
        }
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        let any = qtype == RecordType::ANY;
        if any || qtype == RecordType::A {
            answers.extend(entry.a.iter().map(|ip| record(qname, RData::A(A(*ip)))));
        }
        if any || qtype == RecordType::AAAA {
            answers.extend(
                entry
                    .aaaa
                    .iter()
                    .map(|ip| record(qname, RData::AAAA(AAAA(*ip)))),
            );
        }
        if any || qtype == RecordType::SRV {
            for srv in &entry.srv {
                answers.push(record(qname, RData::SRV(srv.clone())));
                if let Some(target) = self.names.get(&key(srv.target())) {
                    let t = srv.target();
                    additionals.extend(target.a.iter().map(|ip| record(t, RData::A(A(*ip)))));
                    additionals.extend(
                        target
                            .aaaa
                            .iter()
                            .map(|ip| record(t, RData::AAAA(AAAA(*ip)))),
                    );
                }
            }
        }
        if any || qtype == RecordType::TXT {
            answers.extend(
                entry
                    .txt
                    .iter()
                    .map(|t| record(qname, RData::TXT(TXT::new(vec![t.clone()])))),
            );
        }
        if (any || qtype == RecordType::SOA) && key(qname) == key(&self.domain) {
            answers.push(record(qname, self.soa.data().clone()));
        }
        if answers.is_empty() {
            Answer::NoData
        } else {
            Answer::Records {
                answers,
                additionals,
            }
        }
    }

    /// `<a-b-c-d>.<ns>.pod.<domain>` answers the encoded address;
    /// `pod.<domain>` and `<ns>.pod.<domain>` exist without records.
    fn lookup_pod(&self, key: &str, qname: &Name, qtype: RecordType) -> Answer {
        let Some(relative) = key.strip_suffix(&self.dotted_domain) else {
            return Answer::NxDomain;
        };
        let labels: Vec<&str> = relative.split('.').collect();
        match labels.as_slice() {
            ["pod"] | [_, "pod"] => Answer::NoData,
            [ip, _ns, "pod"] => match names::undashed(ip) {
                Some(IpAddr::V4(v4)) if matches!(qtype, RecordType::A | RecordType::ANY) => {
                    Answer::Records {
                        answers: vec![record(qname, RData::A(A(v4)))],
                        additionals: Vec::new(),
                    }
                }
                Some(IpAddr::V6(v6)) if matches!(qtype, RecordType::AAAA | RecordType::ANY) => {
                    Answer::Records {
                        answers: vec![record(qname, RData::AAAA(AAAA(v6)))],
                        additionals: Vec::new(),
                    }
                }
                Some(_) => Answer::NoData,
                None => Answer::NxDomain,
            },
            _ => Answer::NxDomain,
        }
    }

    /// PTR for the addresses we know; every other name is forwarded.
    fn lookup_reverse(&self, key: &str, qname: &Name, qtype: RecordType) -> Answer {
        let Some(targets) = names::parse_reverse(key).and_then(|ip| self.reverse.get(&ip)) else {
            return Answer::Forward;
        };
        if !matches!(qtype, RecordType::PTR | RecordType::ANY) {
            return Answer::NoData;
        }
        Answer::Records {
            answers: targets
                .iter()
                .map(|t| record(qname, RData::PTR(PTR(t.clone()))))
                .collect(),
            additionals: Vec::new(),
        }
    }

    /// How many names the index holds (for logs).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the index holds no names at all (never: the apex is there).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn srv_name(port: &str, proto: &str, svc_name: &Name) -> Option<Name> {
    let port = format!("_{}", port.to_ascii_lowercase());
    let proto = format!("_{}", proto.to_ascii_lowercase());
    Name::from_labels([port.as_bytes(), proto.as_bytes()])
        .ok()
        .and_then(|mut n| {
            n.set_fqdn(false);
            n.append_domain(svc_name).ok()
        })
}

#[cfg(test)]
mod tests;
