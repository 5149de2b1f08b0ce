#![allow(clippy::unwrap_used)]
//! `skiff hollow-nodes` against a server without a node agent: simulated
//! nodes register, renew their Leases, and run a Deployment's pods (Running
//! and Ready, with addresses from their node's pod CIDR); deleted pods go.

mod common;

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

/// The `skiff hollow-nodes` child, killed when dropped.
struct Hollow {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Hollow {
    fn start(c: &skiff_testkit::Cluster, count: usize) -> Hollow {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["hollow-nodes", "--count", &count.to_string()])
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["--server", &format!("https://127.0.0.1:{}", c.port)])
            .args(["--startup-delay", "500ms", "--name-prefix", "hollow"])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Hollow { child, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Hollow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 200 ms until it returns `Some`, for up to `timeout`.
async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    logs: impl Fn() -> String,
    check: F,
) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').unwrap();
    let (net, bits): (Ipv4Addr, u32) = (net.parse().unwrap(), bits.parse().unwrap());
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    ip.parse::<Ipv4Addr>()
        .is_ok_and(|ip| u32::from(ip) & mask == u32::from(net) & mask)
}

fn ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_run_a_deployment() {
    let c = common::cluster();
    let client = common::kube_client(&c).await;
    let hollow = Hollow::start(&c, 3);
    let logs = || {
        format!(
            "--- hollow-nodes ---\n{}\n--- server ---\n{}",
            hollow.logs(),
            c.logs()
        )
    };

    // Three Ready nodes, spread over zones, each with a pod CIDR from the
    // node IPAM controller.
    let nodes_api: Api<Node> = Api::all(client.clone());
    let nodes = eventually(
        "3 Ready hollow nodes with pod CIDRs",
        Duration::from_secs(60),
        logs,
        || async {
            let nodes = nodes_api
                .list(&ListParams::default().labels("skiff.local/hollow-node=true"))
                .await
                .ok()?
                .items;
            let ready = nodes.iter().filter(|n| {
                n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some()
                    && n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
            });
            (ready.count() == 3).then_some(nodes)
        },
    )
    .await;
    let zones: std::collections::BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| {
            n.metadata
                .labels
                .as_ref()?
                .get("topology.kubernetes.io/zone")
                .cloned()
        })
        .collect();
    assert_eq!(zones.len(), 3, "nodes spread over 3 zones: {zones:?}");
    let cidr_of = |name: &str| {
        nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
            .and_then(|n| n.spec.as_ref()?.pod_cidr.clone())
    };

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 6,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "skiff.local/busybox"}]},
            },
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pods = eventually(
        "6 Running and Ready pods",
        Duration::from_secs(90),
        logs,
        || async {
            let pods = pods_api
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?
                .items;
            (pods.len() == 6 && pods.iter().all(ready)).then_some(pods)
        },
    )
    .await;
    let mut ips = std::collections::BTreeSet::new();
    for pod in &pods {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
        assert!(
            node.starts_with("hollow-"),
            "scheduled on a hollow node: {node}"
        );
        let status = pod.status.as_ref().unwrap();
        let ip = status.pod_ip.clone().unwrap();
        let cidr = cidr_of(&node).unwrap();
        assert!(
            in_cidr(&ip, &cidr),
            "pod IP {ip} inside {node}'s pod CIDR {cidr}"
        );
        assert!(ips.insert(ip.clone()), "pod IPs are unique: {ip} twice");
        assert!(
            status
                .host_ip
                .as_deref()
                .is_some_and(|h| h.starts_with("127."))
        );
        let containers = status.container_statuses.as_ref().unwrap();
        assert!(
            containers
                .iter()
                .all(|c| c.ready && c.state.as_ref().unwrap().running.is_some())
        );
    }

    // A deleted pod (default grace period) is finished by its node and goes.
    let victim = pods[0].metadata.name.clone().unwrap();
    let uid = pods[0].metadata.uid.clone();
    pods_api
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the deleted pod to go",
        Duration::from_secs(60),
        logs,
        || async {
            match pods_api.get_opt(&victim).await.ok()? {
                Some(p) if p.metadata.uid == uid => None,
                _ => Some(()),
            }
        },
    )
    .await;

    // Leases are renewed (every 10 s).
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew_time = || async {
        leases
            .get_opt("hollow-0")
            .await
            .ok()??
            .spec?
            .renew_time
            .map(|t| t.0)
    };
    let first = eventually(
        "hollow-0's Lease",
        Duration::from_secs(30),
        logs,
        renew_time,
    )
    .await;
    eventually(
        "hollow-0's Lease to be renewed",
        Duration::from_secs(30),
        logs,
        || async { renew_time().await.filter(|t| *t > first) },
    )
    .await;
}
