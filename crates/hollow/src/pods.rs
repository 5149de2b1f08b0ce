//! The pods of every hollow node, from one shared watch of all bound pods
//! (`spec.nodeName!=`) and one watch of the hollow Nodes (for the pod CIDRs
//! the node IPAM controller assigns).
//!
//! A pod bound to a hollow node is accepted (status Pending, containers
//! `ContainerCreating`, as the kubelet writes before its sandbox exists),
//! then after the startup delay gets an IP from its node's pod CIDR and
//! goes Running and Ready. A pod being deleted is finished the way the
//! kubelet finishes it once its containers stopped (they stop at once
//! here): deleted with grace period 0 and its uid as precondition. Pods
//! are kept as a few hundred bytes each, never as whole objects, except
//! while they wait for their node's pod CIDR.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::ipam::PodAddresses;
use crate::{HOLLOW_LABEL, Shared, runtime};

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

enum Phase {
    /// Bound before its node has a pod CIDR (or a free address).
    Waiting(Box<Pod>),
    /// Being started or running (`None`: found running at our start).
    Started(Option<AbortHandle>),
    /// Deleted; the final delete is under way.
    Terminating,
}

struct Record {
    node: usize,
    uid: String,
    ip: Option<Ipv4Addr>,
    phase: Phase,
}

#[derive(Default)]
struct NodePods {
    cidr: Option<String>,
    addresses: Option<PodAddresses>,
    waiting: usize,
}

struct Kubelets {
    shared: Arc<Shared>,
    by_name: HashMap<String, usize>,
    nodes: Vec<NodePods>,
    pods: HashMap<String, Record>,
    /// Keys seen since a (re)list started; the rest are gone.
    relisting: Option<HashSet<String>>,
}

/// Runs the pods of every hollow node until `shutdown`.
pub(crate) async fn run(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), crate::Error> {
    let mut kubelets = Kubelets {
        by_name: shared
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.index))
            .collect(),
        nodes: shared.nodes.iter().map(|_| NodePods::default()).collect(),
        pods: HashMap::new(),
        relisting: None,
        shared: shared.clone(),
    };
    let node_events = watcher::watcher(
        Api::<Node>::all(shared.client.clone()),
        watcher::Config::default().labels(&format!("{HOLLOW_LABEL}=true")),
    )
    .default_backoff();
    let pod_events = watcher::watcher(
        Api::<Pod>::all(shared.client.clone()),
        watcher::Config::default().fields("spec.nodeName!="),
    )
    .default_backoff();
    let mut node_events = std::pin::pin!(node_events);
    let mut pod_events = std::pin::pin!(pod_events);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            event = node_events.next() => match event {
                Some(Ok(Event::Apply(n) | Event::InitApply(n))) => kubelets.node_changed(&n),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "watching hollow nodes"),
                None => break,
            },
            event = pod_events.next() => match event {
                Some(Ok(event)) => kubelets.pod_event(event),
                Some(Err(e)) => tracing::warn!(error = %e, "watching pods"),
                None => break,
            },
        }
    }
    for record in kubelets.pods.values() {
        if let Phase::Started(Some(task)) = &record.phase {
            task.abort();
        }
    }
    Ok(())
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Kubelets {
    fn pod_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.relisting = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let Some(seen) = &mut self.relisting {
                    seen.insert(key(&pod));
                }
                self.pod_changed(pod);
            }
            Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect();
                    for k in gone {
                        self.forget(&k);
                    }
                }
            }
            Event::Apply(pod) => self.pod_changed(pod),
            Event::Delete(pod) => {
                let k = key(&pod);
                if self.pods.get(&k).map(|r| r.uid.as_str()) == pod.metadata.uid.as_deref() {
                    self.forget(&k);
                }
            }
        }
    }

    fn pod_changed(&mut self, pod: Pod) {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| self.by_name.get(n))
            .copied()
        else {
            return;
        };
        let k = key(&pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if self.pods.get(&k).is_some_and(|r| r.uid != uid) {
            // The same name, a new pod: the old one is gone.
            self.forget(&k);
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(k, node, uid, &pod);
            return;
        }
        if let Some(record) = self.pods.get_mut(&k) {
            if let Phase::Waiting(waiting) = &mut record.phase {
                **waiting = pod;
            }
            return;
        }
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return;
        }
        let running_ip = status
            .filter(|_| phase == Some("Running"))
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        if let Some(ip) = running_ip {
            // Already running (we restarted): adopt it and its address.
            if let Some(a) = &mut self.nodes[node].addresses {
                a.reserve(ip);
            }
            self.pods.insert(
                k,
                Record {
                    node,
                    uid,
                    ip: Some(ip),
                    phase: Phase::Started(None),
                },
            );
            return;
        }
        self.nodes[node].waiting += 1;
        self.pods.insert(
            k.clone(),
            Record {
                node,
                uid,
                ip: None,
                phase: Phase::Waiting(Box::new(pod)),
            },
        );
        self.start(&k);
    }

    /// Starts a waiting pod if its node has a free address.
    fn start(&mut self, k: &str) {
        let Some(record) = self.pods.get_mut(k) else {
            return;
        };
        let node = &mut self.nodes[record.node];
        let Some(addresses) = &mut node.addresses else {
            return;
        };
        let Phase::Waiting(_) = &record.phase else {
            return;
        };
        let Some(ip) = addresses.allocate() else {
            tracing::warn!(pod = %k, node = %self.shared.nodes[record.node].name, "no free pod IP");
            return;
        };
        node.waiting -= 1;
        let Phase::Waiting(pod) = std::mem::replace(&mut record.phase, Phase::Started(None)) else {
            return;
        };
        let hollow = &self.shared.nodes[record.node];
        let task = tokio::spawn(start_pod(
            self.shared.clone(),
            *pod,
            hollow.address.to_string(),
            ip.to_string(),
        ));
        record.ip = Some(ip);
        record.phase = Phase::Started(Some(task.abort_handle()));
    }

    fn terminate(&mut self, k: String, node: usize, uid: String, pod: &Pod) {
        let record = self.pods.entry(k).or_insert_with(|| Record {
            node,
            uid: uid.clone(),
            ip: None,
            phase: Phase::Started(None),
        });
        match &record.phase {
            Phase::Terminating => return,
            Phase::Started(Some(task)) => task.abort(),
            Phase::Started(None) => {}
            Phase::Waiting(_) => self.nodes[node].waiting -= 1,
        }
        record.phase = Phase::Terminating;
        tokio::spawn(finish(
            self.shared.clone(),
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
            uid,
        ));
    }

    /// The pod is gone from the API: its task stops, its address is free.
    fn forget(&mut self, k: &str) {
        let Some(record) = self.pods.remove(k) else {
            return;
        };
        let node = &mut self.nodes[record.node];
        match record.phase {
            Phase::Started(Some(task)) => task.abort(),
            Phase::Waiting(_) => node.waiting -= 1,
            _ => {}
        }
        if let (Some(ip), Some(a)) = (record.ip, &mut node.addresses) {
            a.release(ip);
            if node.waiting > 0 {
                self.start_waiting(record.node);
            }
        }
    }

    fn start_waiting(&mut self, node: usize) {
        let waiting: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, r)| r.node == node && matches!(r.phase, Phase::Waiting(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in waiting {
            self.start(&k);
        }
    }

    fn node_changed(&mut self, n: &Node) {
        let Some(&i) = n
            .metadata
            .name
            .as_ref()
            .and_then(|name| self.by_name.get(name))
        else {
            return;
        };
        let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        if cidr.is_none() || cidr == self.nodes[i].cidr {
            return;
        }
        let name = &self.shared.nodes[i].name;
        let mut addresses = match cidr.as_deref().map(PodAddresses::new) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                tracing::warn!(node = %name, error = %e, "unusable pod CIDR");
                return;
            }
            None => return,
        };
        tracing::debug!(node = %name, cidr = ?cidr, "pod CIDR assigned");
        for r in self.pods.values().filter(|r| r.node == i) {
            if let Some(ip) = r.ip {
                addresses.reserve(ip);
            }
        }
        self.nodes[i].cidr = cidr;
        self.nodes[i].addresses = Some(addresses);
        if self.nodes[i].waiting > 0 {
            self.start_waiting(i);
        }
    }
}

/// Runs `call` until it succeeds; `None` if the pod is gone (404).
async fn until_done<T, F, Fut>(what: &str, mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    loop {
        match call().await {
            Ok(v) => return Some(v),
            Err(kube::Error::Api(e)) if e.code == 404 => return None,
            Err(e) => {
                tracing::warn!(error = %e, "{what}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Accepts the pod, waits the startup delay, reports it running.
async fn start_pod(shared: Arc<Shared>, pod: Pod, host_ip: String, pod_ip: String) {
    let api: Api<Pod> = Api::namespaced(
        shared.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    let write = |status: k8s_openapi::api::core::v1::PodStatus| {
        let (api, name, shared) = (api.clone(), name.clone(), shared.clone());
        async move {
            let patch = json!({ "status": status });
            shared
                .call(
                    "patch",
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await
        }
    };
    let Some(accepted) = until_done("writing the pod status", || {
        write(runtime::pending(&pod, &host_ip))
    })
    .await
    else {
        return;
    };
    tokio::time::sleep(shared.startup_delay).await;
    let started_ns = i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(0);
    let status = runtime::running(&accepted, &host_ip, &pod_ip, started_ns);
    until_done("writing the pod status", || write(status.clone())).await;
}

/// The final delete of a pod whose (fake) containers have stopped.
async fn finish(shared: Arc<Shared>, namespace: String, name: String, uid: String) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    until_done("deleting the terminated pod", || async {
        match shared.call("delete", api.delete(&name, &params)).await {
            // Another pod of that name, or already gone: not ours to delete.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
}
