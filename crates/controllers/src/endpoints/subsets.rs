//! The pure part of the Endpoints controller: a Service's subsets from its
//! pods (upstream's syncService loop and addEndpointSubset), repacked into
//! the canonical layout (upstream's RepackSubsets: one subset per set of
//! addresses sharing the same ports), the labels, and the 1000-address
//! capacity limit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service,
};

use crate::endpointslice::pods;

/// Upstream's maxCapacity: more addresses are truncated.
pub const MAX_CAPACITY: usize = 1000;
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

fn headless(service: &Service) -> bool {
    matches!(
        service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        None | Some("" | "None")
    )
}

/// The Endpoints' labels: the Service's, the headless marker, and
/// `skip-mirror` (the EndpointSlice controller covers these pods itself).
pub fn labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.remove(LABEL_HEADLESS);
    if headless(service) {
        labels.insert(LABEL_HEADLESS.to_owned(), String::new());
    }
    labels.insert(LABEL_SKIP_MIRROR.to_owned(), "true".to_owned());
    labels
}

/// The pod's address for the Service: its IP of the Service's first
/// family (upstream's podToEndpointAddressForService).
fn address(pod: &Pod, service: &Service) -> Option<EndpointAddress> {
    let family = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first().cloned())
        .unwrap_or_else(|| "IPv4".to_owned());
    let ip = pods::ips(pod)
        .into_iter()
        .find(|ip| pods::of_family(ip, &family))?;
    Some(EndpointAddress {
        ip,
        hostname: pods::hostname(pod, service),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
    })
}

/// The Service's subsets from the pods it selects, repacked.
pub fn subsets(service: &Service, selected: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let tolerate_unready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.clone().unwrap_or_default();
    let mut out = Vec::new();
    for pod in selected {
        if !pods::should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(addr) = address(pod, service) else {
            continue;
        };
        let ready = tolerate_unready || pods::is_ready(pod);
        let mut add = |port: Option<EndpointPort>| {
            let (addresses, not_ready) = if ready {
                (Some(vec![addr.clone()]), None)
            } else {
                (None, Some(vec![addr.clone()]))
            };
            out.push(EndpointSubset {
                addresses,
                not_ready_addresses: not_ready,
                ports: Some(port.into_iter().collect()),
            });
        };
        if ports.is_empty() {
            // Headless services may have no ports.
            if spec.cluster_ip.as_deref() == Some("None") {
                add(None);
            }
            continue;
        }
        for p in &ports {
            let Some(number) = pods::find_port(pod, p) else {
                continue;
            };
            add(Some(EndpointPort {
                name: p.name.clone(),
                port: number,
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: p.app_protocol.clone(),
            }));
        }
    }
    repack(&out)
}

fn address_key(a: &EndpointAddress) -> (String, String) {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

fn port_key(p: &Option<EndpointPort>) -> String {
    p.as_ref()
        .map(|p| {
            format!(
                "{}\u{0}{:05}\u{0}{}\u{0}{}",
                p.name.as_deref().unwrap_or_default(),
                p.port,
                p.protocol.as_deref().unwrap_or_default(),
                p.app_protocol.as_deref().unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

/// Upstream's RepackSubsets: every (address, port) pair regrouped so that
/// addresses offering the same ports share one subset; an address ready
/// for a port once stays ready for it; sorted.
pub fn repack(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    type AddrKey = (String, String);
    let mut addrs: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    // port key → (port, address → ready)
    let mut by_port: BTreeMap<String, (Option<EndpointPort>, BTreeMap<AddrKey, bool>)> =
        BTreeMap::new();
    for s in subsets {
        let ports: Vec<Option<EndpointPort>> = match s.ports.as_deref() {
            None | Some([]) => vec![None],
            Some(ports) => ports.iter().cloned().map(Some).collect(),
        };
        for port in ports {
            let entry = by_port
                .entry(port_key(&port))
                .or_insert_with(|| (port.clone(), BTreeMap::new()));
            let listed = s
                .addresses
                .iter()
                .flatten()
                .map(|a| (a, true))
                .chain(s.not_ready_addresses.iter().flatten().map(|a| (a, false)));
            for (a, ready) in listed {
                let key = address_key(a);
                addrs.entry(key.clone()).or_insert_with(|| a.clone());
                let was = entry.1.entry(key).or_insert(ready);
                *was |= ready;
            }
        }
    }
    // address set → ports offered by exactly that set.
    let mut by_set: BTreeMap<Vec<(AddrKey, bool)>, Vec<Option<EndpointPort>>> = BTreeMap::new();
    for (_, (port, set)) in by_port {
        let key: Vec<(AddrKey, bool)> = set.into_iter().collect();
        by_set.entry(key).or_default().push(port);
    }
    by_set
        .into_iter()
        .map(|(set, ports)| {
            let pick = |ready: bool| -> Option<Vec<EndpointAddress>> {
                let v: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, r)| *r == ready)
                    .filter_map(|(k, _)| addrs.get(k).cloned())
                    .collect();
                (!v.is_empty()).then_some(v)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: {
                    let ports: Vec<EndpointPort> = ports.into_iter().flatten().collect();
                    (!ports.is_empty()).then_some(ports)
                },
            }
        })
        .collect()
}

/// Keeps at most [`MAX_CAPACITY`] addresses (ready ones first); whether
/// anything was dropped.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let total: usize = subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    if total <= MAX_CAPACITY {
        return false;
    }
    let mut budget = MAX_CAPACITY;
    for ready in [true, false] {
        for s in subsets.iter_mut() {
            let list = if ready {
                &mut s.addresses
            } else {
                &mut s.not_ready_addresses
            };
            if let Some(v) = list {
                v.truncate(budget);
                budget -= v.len();
                if v.is_empty() {
                    *list = None;
                }
            }
        }
    }
    true
}

/// Subsets compared as upstream does: ignoring targetRef resourceVersions.
pub fn same(a: &[EndpointSubset], b: &[EndpointSubset]) -> bool {
    let strip = |s: &[EndpointSubset]| -> Vec<EndpointSubset> {
        let mut s = s.to_vec();
        for subset in &mut s {
            for list in [&mut subset.addresses, &mut subset.not_ready_addresses] {
                for a in list.iter_mut().flatten() {
                    if let Some(r) = a.target_ref.as_mut() {
                        r.resource_version = None;
                    }
                }
            }
        }
        s
    };
    strip(a) == strip(b)
}

/// Distinct port sets, for tests and logs.
pub fn port_sets(subsets: &[EndpointSubset]) -> BTreeSet<Vec<i32>> {
    subsets
        .iter()
        .map(|s| s.ports.iter().flatten().map(|p| p.port).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, http: i32, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": http}]}]},
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap_or_default(),
        )
    }

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn ready_and_not_ready_share_a_subset_per_port_set() {
        let svc = service(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.10", "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "admin", "port": 81, "targetPort": 9000},
            ]},
        }));
        let pods = vec![
            pod("a", "10.1.0.1", 8080, true),
            pod("b", "10.1.0.2", 8080, false),
            pod("c", "10.1.0.3", 8081, true),
        ];
        let s = subsets(&svc, &pods);
        // Port 9000 is offered by all three pods, 8080 by a and b, 8081 by c.
        assert_eq!(s.len(), 3);
        let first = s
            .iter()
            .find(|s| {
                s.ports
                    .as_ref()
                    .is_some_and(|p| p.iter().any(|p| p.port == 8080))
            })
            .unwrap_or_else(|| panic!("no 8080 subset"));
        let ips = |l: &Option<Vec<EndpointAddress>>| -> Vec<String> {
            l.iter().flatten().map(|a| a.ip.clone()).collect()
        };
        assert_eq!(ips(&first.addresses), ["10.1.0.1"]);
        assert_eq!(ips(&first.not_ready_addresses), ["10.1.0.2"]);
        assert_eq!(first.ports.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            port_sets(&s),
            BTreeSet::from([vec![8080], vec![8081], vec![9000]])
        );
        // Deterministic: the same input gives the same output.
        assert_eq!(s, subsets(&svc, &pods));
    }

    #[test]
    fn headless_without_ports_and_publish_not_ready() {
        let svc = service(json!({
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"selector": {"app": "db"}, "clusterIP": "None", "publishNotReadyAddresses": true},
        }));
        let s = subsets(
            &svc,
            &[
                pod("a", "10.1.0.1", 1, false),
                pod("b", "10.1.0.2", 1, true),
            ],
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].addresses.as_ref().map(Vec::len), Some(2));
        assert!(s[0].ports.is_none() && s[0].not_ready_addresses.is_none());
        assert_eq!(
            labels(&svc).get(LABEL_HEADLESS).map(String::as_str),
            Some("")
        );
        assert_eq!(labels(&svc)[LABEL_SKIP_MIRROR], "true");
    }

    #[test]
    fn over_capacity_is_truncated() {
        let svc = service(json!({
            "metadata": {"name": "big", "namespace": "ns"},
            "spec": {"selector": {"app": "big"}, "clusterIP": "10.0.0.1", "ports": [{"port": 80}]},
        }));
        let pods: Vec<Arc<Pod>> = (0..1200)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.2.{}.{}", i / 250, i % 250),
                    1,
                    i % 2 == 0,
                )
            })
            .collect();
        let mut s = subsets(&svc, &pods);
        assert!(truncate(&mut s));
        let ready: usize = s
            .iter()
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
            .sum();
        let not_ready: usize = s
            .iter()
            .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
            .sum();
        assert_eq!((ready, not_ready), (600, 400));
    }
}
