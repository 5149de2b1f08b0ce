//! The pure part of the EndpointSlice controller: the endpoints a Service
//! should have (one per pod and address family, grouped by the ports the
//! pod resolves), and the creates, updates and deletes that turn the
//! existing slices into them with little churn — upstream's
//! reconcileByPortMapping in simplified form: existing slices keep the
//! endpoints still wanted, free room is filled before new slices are
//! made, slices that would be deleted are reused for creates, and a
//! Service without endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::pods;

/// This controller's name in the managed-by label.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Endpoints sharing one set of ports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// address type → ports key → group.
pub type Desired = BTreeMap<String, BTreeMap<String, Group>>;

/// What to write.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The address types of a Service (`spec.ipFamilies`, IPv4 by default).
pub fn address_types(service: &Service) -> Vec<String> {
    let families: Vec<String> = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f == "IPv4" || f == "IPv6")
        .collect();
    if families.is_empty() {
        vec!["IPv4".to_owned()]
    } else {
        families
    }
}

/// The labels of the Service's slices (upstream's setEndpointSliceLabels).
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != LABEL_SERVICE_NAME && k != LABEL_MANAGED_BY && k != LABEL_HEADLESS)
        .collect();
    let headless = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(LABEL_HEADLESS.to_owned(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.to_owned(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.to_owned(), CONTROLLER_NAME.to_owned());
    labels
}

pub fn owner_ref(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: service.metadata.name.clone().unwrap_or_default(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether the slice is controlled by this very Service (same uid).
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == "Service" && r.api_version == "v1" && r.uid == uid)
}

/// The pod's ports for the Service (upstream's getEndpointPorts): every
/// service port whose target the pod resolves.
pub fn endpoint_ports(pod: &Pod, service: &Service) -> Vec<EndpointPort> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(pods::find_port(pod, p)?),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

/// The endpoint of `pod` for `address_type` (upstream's podToEndpoint);
/// `None` when the pod has no address of that family.
pub fn endpoint(
    pod: &Pod,
    service: &Service,
    address_type: &str,
    zone: Option<String>,
) -> Option<Endpoint> {
    let addresses: Vec<String> = pods::ips(pod)
        .into_iter()
        .filter(|ip| pods::of_family(ip, address_type))
        .collect();
    if addresses.is_empty() {
        return None;
    }
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = pods::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready || (serving && !terminating);
    Some(Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
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
        zone,
        ..Endpoint::default()
    })
}

/// A stable key for a set of ports (order does not matter).
pub fn ports_key(ports: &[EndpointPort]) -> String {
    let mut keys: Vec<String> = ports
        .iter()
        .map(|p| serde_json::to_string(p).unwrap_or_default())
        .collect();
    keys.sort();
    keys.join(",")
}

/// An endpoint's identity across updates: its pod (else its addresses).
fn identity(ep: &Endpoint) -> String {
    ep.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone().or_else(|| r.name.clone()))
        .unwrap_or_else(|| ep.addresses.join(","))
}

/// The endpoints the Service should have: selected pods that should be in
/// endpoints (terminating ones included), by address type and ports.
/// `zone_of` gives a node's `topology.kubernetes.io/zone` label.
pub fn desired(
    service: &Service,
    pods: &[Arc<Pod>],
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> Desired {
    let mut out: Desired = BTreeMap::new();
    let types = address_types(service);
    let mut selected: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| pods::should_be_in_endpoints(p, true))
        .collect();
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in selected {
        let ports = endpoint_ports(pod, service);
        let key = ports_key(&ports);
        let zone = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(zone_of);
        for t in &types {
            if let Some(ep) = endpoint(pod, service, t, zone.clone()) {
                let group = out
                    .entry(t.clone())
                    .or_default()
                    .entry(key.clone())
                    .or_insert_with(|| Group {
                        ports: ports.clone(),
                        endpoints: Vec::new(),
                    });
                group.endpoints.push(ep);
            }
        }
    }
    out
}

/// The zone label of a node's labels.
pub fn zone(labels: Option<&BTreeMap<String, String>>) -> Option<String> {
    labels?.get(LABEL_ZONE).filter(|z| !z.is_empty()).cloned()
}

fn new_slice(service: &Service, address_type: &str, group: Group) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                service.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: service.metadata.namespace.clone(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![owner_ref(service)]),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_owned(),
        endpoints: group.endpoints,
        ports: Some(group.ports),
    }
}

/// An existing slice with new content, and whether that is a change.
fn refill(
    slice: &EndpointSlice,
    labels: &BTreeMap<String, String>,
    group: Group,
) -> (EndpointSlice, bool) {
    let mut new = slice.clone();
    new.endpoints = group.endpoints;
    new.ports = Some(group.ports);
    new.metadata.labels = Some(labels.clone());
    let changed = new.endpoints != slice.endpoints
        || new.ports.as_deref().unwrap_or_default() != slice.ports.as_deref().unwrap_or_default()
        || new.metadata.labels != slice.metadata.labels;
    (new, changed)
}

/// The writes that make `existing` (this controller's slices for the
/// Service) match `desired`.
pub fn plan(service: &Service, desired: &Desired, existing: &[Arc<EndpointSlice>]) -> Plan {
    let labels = slice_labels(service);
    let mut plan = Plan::default();
    let mut kept = 0usize;
    // address type → ports key → existing slices.
    let mut by_group: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
    let mut sorted: Vec<&EndpointSlice> = existing.iter().map(AsRef::as_ref).collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for slice in sorted {
        let wanted = owned_by(slice, service)
            && desired.get(&slice.address_type).is_some_and(|g| {
                g.contains_key(&ports_key(slice.ports.as_deref().unwrap_or_default()))
            });
        if wanted {
            let key = (
                slice.address_type.clone(),
                ports_key(slice.ports.as_deref().unwrap_or_default()),
            );
            by_group.entry(key).or_default().push(slice);
        } else {
            plan.delete.push(slice.clone());
        }
    }
    for (address_type, groups) in desired {
        for (key, group) in groups {
            let wanted: HashMap<String, &Endpoint> =
                group.endpoints.iter().map(|e| (identity(e), e)).collect();
            let mut placed: HashSet<String> = HashSet::new();
            // (slice, endpoints it keeps, whether that changes it)
            let mut slots: Vec<(&EndpointSlice, Vec<Endpoint>, bool)> = Vec::new();
            for slice in by_group
                .get(&(address_type.clone(), key.clone()))
                .into_iter()
                .flatten()
            {
                let eps: Vec<Endpoint> = slice
                    .endpoints
                    .iter()
                    .filter_map(|e| {
                        let id = identity(e);
                        let want = wanted.get(&id)?;
                        placed.insert(id).then(|| (*want).clone())
                    })
                    .collect();
                if eps.is_empty() {
                    plan.delete.push((*slice).clone());
                    continue;
                }
                let changed = eps != slice.endpoints;
                slots.push((slice, eps, changed));
            }
            let mut left: Vec<Endpoint> = group
                .endpoints
                .iter()
                .filter(|e| !placed.contains(&identity(e)))
                .cloned()
                .collect();
            // Free room: slices changing anyway first, then the others.
            slots.sort_by_key(|(_, _, changed)| !*changed);
            for (_, eps, changed) in &mut slots {
                if left.is_empty() {
                    break;
                }
                let room = MAX_ENDPOINTS_PER_SLICE.saturating_sub(eps.len());
                if room == 0 {
                    continue;
                }
                let take = room.min(left.len());
                eps.extend(left.drain(..take));
                *changed = true;
            }
            for (slice, eps, _) in slots {
                let (new, changed) = refill(
                    slice,
                    &labels,
                    Group {
                        ports: group.ports.clone(),
                        endpoints: eps,
                    },
                );
                if changed {
                    plan.update.push(new);
                } else {
                    kept += 1;
                }
            }
            while !left.is_empty() {
                let take = MAX_ENDPOINTS_PER_SLICE.min(left.len());
                let endpoints: Vec<Endpoint> = left.drain(..take).collect();
                plan.create.push(new_slice(
                    service,
                    address_type,
                    Group {
                        ports: group.ports.clone(),
                        endpoints,
                    },
                ));
            }
        }
    }
    // No endpoints at all: one empty placeholder slice.
    if kept == 0 && plan.update.is_empty() && plan.create.is_empty() {
        let address_type = address_types(service).remove(0);
        let placeholder = new_slice(service, &address_type, Group::default());
        let reusable = plan.delete.iter().position(|s| {
            owned_by(s, service)
                && s.address_type == address_type
                && s.endpoints.is_empty()
                && s.ports.as_deref().unwrap_or_default().is_empty()
        });
        match reusable {
            Some(i) => {
                let slice = plan.delete.remove(i);
                let (new, changed) = refill(&slice, &labels, Group::default());
                if changed {
                    plan.update.push(new);
                }
            }
            None => plan.create.push(placeholder),
        }
    }
    // Reuse slices that would be deleted for the creates (same owner and
    // address type), as upstream's finalize.
    let mut creates = std::mem::take(&mut plan.create);
    let mut remaining = Vec::new();
    while let Some(create) = creates.pop() {
        let reuse = plan
            .delete
            .iter()
            .rposition(|s| owned_by(s, service) && s.address_type == create.address_type);
        match reuse {
            Some(i) => {
                let old = plan.delete.remove(i);
                let (new, _) = refill(
                    &old,
                    &labels,
                    Group {
                        ports: create.ports.clone().unwrap_or_default(),
                        endpoints: create.endpoints,
                    },
                );
                plan.update.push(new);
            }
            None => remaining.push(create),
        }
    }
    remaining.reverse();
    plan.create = remaining;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn web() -> Service {
        service(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.10",
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
        }))
    }

    fn pod(name: &str, ip: &str, http: i32, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": http}]}]},
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap_or_default(),
        )
    }

    fn as_existing(plan: &Plan) -> Vec<Arc<EndpointSlice>> {
        plan.create
            .iter()
            .chain(&plan.update)
            .enumerate()
            .map(|(i, s)| {
                let mut s = s.clone();
                if s.metadata.name.is_none() {
                    s.metadata.name = Some(format!("web-{i:05}"));
                }
                Arc::new(s)
            })
            .collect()
    }

    #[test]
    fn endpoints_conditions_ports_and_zones() {
        let svc = web();
        let mut deleting = (*pod("c", "10.1.0.3", 8080, true)).clone();
        deleting.metadata.deletion_timestamp =
            serde_json::from_value(json!("2020-01-01T00:00:00Z")).ok();
        let pods = vec![
            pod("a", "10.1.0.1", 8080, true),
            pod("b", "10.1.0.2", 8080, false),
            Arc::new(deleting),
            pod("d", "10.1.0.4", 9090, true),
        ];
        let zone = |n: &str| (n == "n1").then(|| "z1".to_owned());
        let d = desired(&svc, &pods, &zone);
        let groups = &d["IPv4"];
        assert_eq!(
            groups.len(),
            2,
            "pods with different named-port numbers split"
        );
        let p = plan(&svc, &d, &[]);
        assert_eq!(p.create.len(), 2);
        let s8080 = p
            .create
            .iter()
            .find(|s| s.ports.as_ref().is_some_and(|p| p[0].port == Some(8080)))
            .unwrap_or_else(|| panic!("no 8080 slice"));
        let conds: Vec<(bool, bool, bool)> = s8080
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (
                    c.ready.unwrap_or(false),
                    c.serving.unwrap_or(false),
                    c.terminating.unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            conds,
            [
                (true, true, false),
                (false, false, false),
                (false, true, true)
            ]
        );
        assert_eq!(s8080.endpoints[0].zone.as_deref(), Some("z1"));
        assert_eq!(s8080.endpoints[0].node_name.as_deref(), Some("n1"));
        let labels = s8080.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(labels["app"], "web");
        assert_eq!(s8080.metadata.generate_name.as_deref(), Some("web-"));
        // Applied: nothing more to do.
        let existing = as_existing(&p);
        assert!(plan(&svc, &d, &existing).is_empty());
        // publishNotReadyAddresses: every endpoint ready.
        let mut pnr = web();
        if let Some(spec) = pnr.spec.as_mut() {
            spec.publish_not_ready_addresses = Some(true);
        }
        let d = desired(&pnr, &pods, &zone);
        assert!(
            d["IPv4"].values().flat_map(|g| &g.endpoints).all(|e| e
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                == Some(true))
        );
    }

    #[test]
    fn slices_hold_at_most_100_and_keep_their_endpoints() {
        let svc = web();
        let pods: Vec<Arc<Pod>> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.1.{}.{}", i / 200, i % 200),
                    8080,
                    true,
                )
            })
            .collect();
        let d = desired(&svc, &pods, &|_| None);
        let p = plan(&svc, &d, &[]);
        let sizes: Vec<usize> = p.create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let existing = as_existing(&p);
        // One pod goes: only its slice changes.
        let fewer: Vec<Arc<Pod>> = pods
            .iter()
            .filter(|p| p.metadata.name.as_deref() != Some("p000"))
            .cloned()
            .collect();
        let p2 = plan(&svc, &desired(&svc, &fewer, &|_| None), &existing);
        assert!(p2.create.is_empty() && p2.delete.is_empty());
        assert_eq!(p2.update.len(), 1);
        assert_eq!(p2.update[0].endpoints.len(), 99);
        // No pods: one placeholder is kept (reused), the rest deleted.
        let p3 = plan(&svc, &desired(&svc, &[], &|_| None), &existing);
        assert!(p3.create.is_empty());
        assert_eq!(p3.update.len(), 1);
        assert!(p3.update[0].endpoints.is_empty());
        assert_eq!(p3.delete.len(), 2);
    }

    #[test]
    fn placeholder_for_a_service_without_endpoints() {
        let svc = web();
        let p = plan(&svc, &Desired::new(), &[]);
        assert_eq!(p.create.len(), 1);
        assert!(p.create[0].endpoints.is_empty());
        assert_eq!(p.create[0].address_type, "IPv4");
        let existing = as_existing(&p);
        assert!(plan(&svc, &Desired::new(), &existing).is_empty());
        // A slice of an older Service of the same name is deleted.
        let mut other = web();
        other.metadata.uid = Some("new-uid".into());
        let p = plan(&other, &Desired::new(), &existing);
        assert_eq!((p.create.len(), p.delete.len()), (1, 1));
    }
}
