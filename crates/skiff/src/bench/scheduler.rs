//! `skiff bench scheduler`: scheduling throughput and latency, shaped like
//! upstream's scheduler_perf. `skiff apiserver` (the API server alone: no
//! scheduler, controllers, DNS or agent) runs as a child; N Node objects
//! are created with a fake status (no kubelets, no leases: nothing marks
//! them NotReady because no node lifecycle controller runs); then
//! `skiff scheduler --kubeconfig <admin>` starts as a second child (so its
//! memory and CPU can be read from /proc) and M pods are created, 32 in
//! flight. Throughput is M over the time from the first create sent to
//! the last bind seen through a watch of the pods (`spec.nodeName` set);
//! a pod's latency is from its create sent to its bind seen.
//!
//! Workloads:
//! * `basic`: pods requesting 100m CPU and 128Mi.
//! * `affinity`: as basic, in groups of 10 pods (label `group`) with a
//!   required pod anti-affinity to their group on `kubernetes.io/hostname`
//!   and a preferred one (weight 100) on `topology.kubernetes.io/zone`
//!   (upstream's SchedulingPodAntiAffinity and
//!   SchedulingPreferredPodAntiAffinity together).
//! * `spread`: as basic, with topology spread constraints of maxSkew 1 on
//!   zones (DoNotSchedule) and hostnames (ScheduleAnyway).
//! * `preemption`: every node is first filled with 4 pods of PriorityClass
//!   `bench-low` (8 CPU, 16Gi each, bound at create through
//!   `spec.nodeName`); the M measured pods, PriorityClass `bench-high`,
//!   ask as much, so each binds only after its scheduler preempted a low
//!   pod. Low pods have `terminationGracePeriodSeconds: 0`, so deleting
//!   them removes them at once; were a victim still left Terminating
//!   (a scheduler passing its own grace period), the benchmark deletes it
//!   with `gracePeriodSeconds=0` as a kubelet would, and counts it.
//!
//! After the run, the placements are checked against the workload's
//! constraints (a scheduler without the plugin binds the pods anyway);
//! a violation, like a timeout (`--timeout`), prints the figures and
//! fails the command.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde_json::json;

use super::server::{Server, client, rss_mb};
use super::stats::{cpu_seconds, quantile, spread};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Workload {
    Basic,
    Affinity,
    Spread,
    Preemption,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Basic => "basic",
            Workload::Affinity => "affinity",
            Workload::Spread => "spread",
            Workload::Preemption => "preemption",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Datastore {
    Sqlite,
    Etcd,
}

#[derive(clap::Args)]
pub struct SchedulerBenchArgs {
    /// Node objects (fake status, no kubelets).
    #[arg(long, default_value_t = 1_000)]
    nodes: usize,
    /// Pods measured.
    #[arg(long, default_value_t = 3_000)]
    pods: usize,
    /// What the pods ask of the scheduler.
    #[arg(long, value_enum, default_value = "basic")]
    workload: Workload,
    /// The API server's store: embedded SQLite or a real etcd on loopback.
    #[arg(long, value_enum, default_value = "sqlite")]
    datastore: Datastore,
    /// Zones the nodes are spread over (`topology.kubernetes.io/zone`).
    #[arg(long, default_value_t = 5)]
    zones: usize,
    /// Creates in flight (nodes and pods).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds from the first pod created until every pod must be bound;
    /// after it the figures so far are printed and the command fails.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// A flag for the `skiff scheduler` child (repeat for several).
    #[arg(long = "scheduler-arg", allow_hyphen_values = true)]
    scheduler_args: Vec<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SchedulerFigures {
    workload: Workload,
    datastore: &'static str,
    nodes: usize,
    pods: usize,
    /// Measured pods seen bound.
    bound: usize,
    complete: bool,
    /// First create sent → last bind seen (or the timeout).
    seconds: f64,
    pods_per_second: f64,
    /// Per pod: create sent → bind seen in the watch.
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// The creates alone: how fast the API took the pods.
    create_seconds: f64,
    creates_per_second: f64,
    create_p50_ms: f64,
    create_p99_ms: f64,
    seconds_to_nodes: f64,
    /// Scheduler start → first (warm-up) pod bound.
    seconds_to_first_bind: f64,
    /// The scheduler with N nodes (and the low pods), before the run.
    rss_idle_mb: f64,
    /// The scheduler at the end of the run.
    rss_mb: f64,
    /// The scheduler's CPU time during the run.
    cpu_seconds: f64,
    /// The API server at the end.
    apiserver_rss_mb: f64,
    /// Placements breaking the workload's constraints: pods sharing a
    /// node with their group (affinity), zone skew above 1 (spread).
    violations: usize,
    /// Low-priority pods removed (preemption).
    victims: usize,
    /// Victims left Terminating that the benchmark force-deleted.
    force_deleted: usize,
    metrics_url: Option<String>,
}

/// Capacity of every fake node.
const NODE_CPU: &str = "32";
const NODE_MEMORY: &str = "128Gi";
const NODE_PODS: usize = 110;
/// Pods of one anti-affinity group (`affinity`).
const GROUP: usize = 10;
/// Low-priority pods filling each node (`preemption`); each asks a
/// quarter of the node.
const LOW_PER_NODE: usize = 4;
const LOW_CPU: &str = "8";
const LOW_MEMORY: &str = "16Gi";
const NAMESPACE: &str = "default";
const PAUSE: &str = "skiff.local/pause:latest";

fn node_name(i: usize) -> String {
    format!("bench-node-{i:05}")
}

fn zone(i: usize, zones: usize) -> String {
    format!("zone-{}", i % zones.max(1))
}

fn pod_name(i: usize) -> String {
    format!("bench-{i:06}")
}

fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("bench-")?.parse().ok()
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn node(i: usize, zones: usize) -> anyhow::Result<Node> {
    let name = node_name(i);
    let resources = json!({
        "cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS.to_string(),
        "ephemeral-storage": "1Ti",
    });
    let now = now();
    Ok(serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/region": "bench",
                "topology.kubernetes.io/zone": zone(i, zones),
                "bench": "scheduler",
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "a skiff bench scheduler node (no kubelet)",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
        },
    }))?)
}

/// A pause container asking `cpu` and `memory`.
fn container(cpu: &str, memory: &str) -> serde_json::Value {
    json!([{
        "name": "pause",
        "image": PAUSE,
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }])
}

/// Measured pod `i` of `workload`.
fn pod(workload: Workload, i: usize) -> anyhow::Result<Pod> {
    let mut pod = json!({
        "metadata": {
            "name": pod_name(i),
            "labels": {"bench": "scheduler", "bench-phase": "measured"},
        },
        "spec": {
            "automountServiceAccountToken": false,
            "containers": container("100m", "128Mi"),
        },
    });
    match workload {
        Workload::Basic => {}
        Workload::Affinity => {
            let group = format!("g-{}", i / GROUP);
            pod["metadata"]["labels"]["group"] = json!(group);
            let selector = json!({"matchLabels": {"group": group}});
            pod["spec"]["affinity"] = json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": selector,
                    "topologyKey": "kubernetes.io/hostname",
                }],
                "preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": selector,
                        "topologyKey": "topology.kubernetes.io/zone",
                    },
                }],
            }});
        }
        Workload::Spread => {
            pod["metadata"]["labels"]["app"] = json!("bench-spread");
            let selector = json!({"matchLabels": {"app": "bench-spread"}});
            pod["spec"]["topologySpreadConstraints"] = json!([
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": selector,
                },
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": selector,
                },
            ]);
        }
        Workload::Preemption => {
            pod["spec"]["priorityClassName"] = json!("bench-high");
            pod["spec"]["containers"] = container(LOW_CPU, LOW_MEMORY);
        }
    }
    Ok(serde_json::from_value(pod)?)
}

/// Low-priority pod `i`, bound to node `i / LOW_PER_NODE` at create.
fn low_pod(i: usize) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {
            "name": format!("bench-low-{i:06}"),
            "labels": {"bench": "scheduler", "bench-phase": "fill"},
        },
        "spec": {
            "nodeName": node_name(i / LOW_PER_NODE),
            "priorityClassName": "bench-low",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": container(LOW_CPU, LOW_MEMORY),
        },
    }))?)
}

fn priority_class(name: &str, value: i32) -> anyhow::Result<PriorityClass> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "value": value,
        "description": "skiff bench scheduler",
    }))?)
}

/// The `skiff scheduler` child; killed when dropped.
struct SchedulerChild {
    child: Child,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl Drop for SchedulerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SchedulerChild {
    fn start(kubeconfig: &Path, extra: &[String]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("skb-sched")
            .tempdir_in("/tmp")?;
        let log = dir.path().join("scheduler.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .arg("scheduler")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting skiff scheduler")?;
        Ok(SchedulerChild {
            child,
            _dir: dir,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("the scheduler exited ({status}):\n{}", self.log_tail(20));
        }
        Ok(())
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The flags that give the scheduler a metrics endpoint on a free port,
/// and its URL, if `skiff scheduler --help` shows such a flag.
fn metrics_flags() -> (Vec<String>, Option<String>) {
    let help = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            Command::new(exe)
                .args(["scheduler", "--help"])
                .output()
                .ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let port = skiff_testkit::free_port();
    if help.contains("--metrics-bind-address") {
        (
            vec!["--metrics-bind-address".into(), format!("127.0.0.1:{port}")],
            Some(format!("http://127.0.0.1:{port}/metrics")),
        )
    } else if help.contains("--metrics-port") {
        (
            vec!["--metrics-port".into(), port.to_string()],
            Some(format!("http://127.0.0.1:{port}/metrics")),
        )
    } else if help.contains("--secure-port") {
        let mut flags = vec!["--secure-port".into(), port.to_string()];
        if help.contains("--bind-address") {
            flags.extend(["--bind-address".into(), "127.0.0.1".into()]);
        }
        (flags, Some(format!("http://127.0.0.1:{port}/metrics")))
    } else {
        (Vec::new(), None)
    }
}

/// Binds of the measured pods seen in a watch: pod name → (when, node).
#[derive(Default)]
struct Binds {
    seen: Mutex<HashMap<String, (Instant, String)>>,
}

/// Watches the measured pods and records each one's first bind; signals
/// `ready` once the watch is established and `count` on every bind.
async fn watch_binds(
    pods: Api<Pod>,
    binds: Arc<Binds>,
    ready: tokio::sync::oneshot::Sender<()>,
    count: tokio::sync::watch::Sender<usize>,
) {
    let events = watcher::watcher(
        pods,
        watcher::Config::default().labels("bench-phase=measured"),
    )
    .default_backoff();
    let mut events = std::pin::pin!(events);
    let mut ready = Some(ready);
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(Event::InitDone) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watching the measured pods");
                continue;
            }
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let mut seen = binds.seen.lock().unwrap_or_else(|e| e.into_inner());
        let len = seen.len();
        seen.entry(pod.name_any()).or_insert_with(|| {
            count.send_replace(len + 1);
            (Instant::now(), node)
        });
    }
}

/// Watches the low-priority pods: counts those removed (victims) and
/// force-deletes any left Terminating, as a kubelet would finish them.
async fn reap_victims(pods: Api<Pod>, victims: Arc<AtomicUsize>, forced: Arc<AtomicUsize>) {
    let events = watcher::watcher(
        pods.clone(),
        watcher::Config::default().labels("bench-phase=fill"),
    )
    .default_backoff();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Delete(_)) => {
                victims.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Apply(p) | Event::InitApply(p))
                if p.metadata.deletion_timestamp.is_some() =>
            {
                let (pods, forced) = (pods.clone(), forced.clone());
                tokio::spawn(async move {
                    let params = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions {
                            uid: p.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    if pods.delete(&p.name_any(), &params).await.is_ok() {
                        forced.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "watching the low-priority pods"),
        }
    }
}

/// Creates the warm-up pod and waits until the scheduler binds it (so it
/// has listed every node), then removes it; returns the seconds taken.
async fn warm_up(pods: &Api<Pod>, scheduler: &mut SchedulerChild) -> anyhow::Result<f64> {
    let started = Instant::now();
    let warmup: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bench-warmup", "labels": {"bench": "scheduler", "bench-phase": "warmup"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": container("1m", "1Mi"),
        },
    }))?;
    pods.create(&PostParams::default(), &warmup).await?;
    let deadline = started + Duration::from_secs(180);
    loop {
        scheduler.ensure_running()?;
        let pod = pods.get("bench-warmup").await?;
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some()
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the scheduler did not bind a first pod within 180 s:\n{}",
            scheduler.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    pods.delete(
        "bench-warmup",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await?;
    Ok(seconds)
}

/// Placements breaking the workload's constraints (see the field).
fn violations(
    workload: Workload,
    placed: &HashMap<String, (Instant, String)>,
    zones: usize,
) -> usize {
    match workload {
        Workload::Affinity => {
            let mut per: HashMap<(usize, &str), usize> = HashMap::new();
            for (name, (_, node)) in placed {
                if let Some(i) = pod_index(name) {
                    *per.entry((i / GROUP, node.as_str())).or_default() += 1;
                }
            }
            per.values().map(|n| n - 1).sum()
        }
        Workload::Spread => {
            let mut per_zone = vec![0usize; zones.max(1)];
            for (_, node) in placed.values() {
                let i: Option<usize> = node
                    .strip_prefix("bench-node-")
                    .and_then(|i| i.parse().ok());
                if let Some(i) = i {
                    per_zone[i % zones.max(1)] += 1;
                }
            }
            let max = per_zone.iter().max().copied().unwrap_or(0);
            let min = per_zone.iter().min().copied().unwrap_or(0);
            (max - min).saturating_sub(1)
        }
        Workload::Basic | Workload::Preemption => 0,
    }
}

fn check_args(args: &SchedulerBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
    anyhow::ensure!(args.pods > 0, "--pods must be at least 1");
    anyhow::ensure!(args.zones > 0, "--zones must be at least 1");
    anyhow::ensure!(
        args.pods <= args.nodes * (NODE_PODS - 1),
        "{} pods do not fit on {} nodes of {NODE_PODS} pods",
        args.pods,
        args.nodes
    );
    match args.workload {
        Workload::Affinity => anyhow::ensure!(
            args.nodes >= GROUP,
            "affinity keeps each group of {GROUP} pods on distinct nodes: --nodes must be at least {GROUP}"
        ),
        Workload::Preemption => anyhow::ensure!(
            args.pods <= args.nodes * LOW_PER_NODE,
            "preemption: each pod takes the place of one of the {LOW_PER_NODE} low-priority pods per node: --pods must be at most {}",
            args.nodes * LOW_PER_NODE
        ),
        Workload::Basic | Workload::Spread => {}
    }
    Ok(())
}

/// Why a pending pod is still pending, as its scheduler said.
async fn pending_reason(pods: &Api<Pod>, binds: &Binds, total: usize) -> Option<String> {
    let name = {
        let seen = binds.seen.lock().unwrap_or_else(|e| e.into_inner());
        (0..total).map(pod_name).find(|n| !seen.contains_key(n))?
    };
    let pod = pods.get(&name).await.ok()?;
    let condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .map(|c| {
            format!(
                "{} {}",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_else(|| "no PodScheduled condition".into());
    Some(format!("{name}: {condition}"))
}

pub async fn run(args: SchedulerBenchArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let datastore = match args.datastore {
        Datastore::Sqlite => "sqlite",
        Datastore::Etcd => "etcd",
    };
    let etcd = if args.datastore == Datastore::Etcd {
        Some(skiff_testkit::EtcdServer::start().context("starting etcd")?)
    } else {
        None
    };
    let endpoint = etcd.as_ref().map(|e| e.client_url());
    let extra: Vec<&str> = match &endpoint {
        Some(url) => vec!["--datastore-endpoint", url],
        None => vec![],
    };
    let server = Server::start_apiserver(&extra)?;
    let kube = client(&server.kubeconfig).await?;
    let pods: Api<Pod> = Api::namespaced(kube.clone(), NAMESPACE);

    eprintln!("creating {} nodes in {} zones", args.nodes, args.zones);
    let nodes: Api<Node> = Api::all(kube.clone());
    let started = Instant::now();
    let zones = args.zones;
    spread(
        &nodes,
        args.concurrency,
        args.nodes,
        move |api, i| async move {
            api.create(&PostParams::default(), &node(i, zones)?).await?;
            Ok(())
        },
    )
    .await?;
    let seconds_to_nodes = started.elapsed().as_secs_f64();

    let (metrics_flags, metrics_url) = metrics_flags();
    let mut flags = metrics_flags;
    flags.extend(args.scheduler_args.iter().cloned());
    let mut scheduler = SchedulerChild::start(&server.kubeconfig, &flags)?;
    let pid = scheduler.pid();
    let stat = format!("/proc/{pid}/stat");
    let seconds_to_first_bind = warm_up(&pods, &mut scheduler).await?;
    // After the warm-up pod: full nodes would leave it nowhere to go.
    if args.workload == Workload::Preemption {
        let classes: Api<PriorityClass> = Api::all(kube.clone());
        for (name, value) in [("bench-low", 100), ("bench-high", 1000)] {
            classes
                .create(&PostParams::default(), &priority_class(name, value)?)
                .await
                .with_context(|| format!("creating PriorityClass {name}"))?;
        }
        let low = args.nodes * LOW_PER_NODE;
        eprintln!("filling the nodes with {low} low-priority pods");
        spread(&pods, args.concurrency, low, |api, i| async move {
            api.create(&PostParams::default(), &low_pod(i)?).await?;
            Ok(())
        })
        .await?;
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    scheduler.ensure_running()?;
    let rss_idle_mb = rss_mb(pid);
    eprintln!(
        "scheduler up (first bind after {seconds_to_first_bind:.1} s, {rss_idle_mb:.1} MiB); creating {} {} pods",
        args.pods,
        args.workload.name()
    );

    let binds = Arc::new(Binds::default());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let watching = tokio::spawn(watch_binds(pods.clone(), binds.clone(), ready_tx, count_tx));
    tokio::time::timeout(Duration::from_secs(60), ready_rx)
        .await
        .context("the pod watch did not start within 60 s")??;
    let victims = Arc::new(AtomicUsize::new(0));
    let forced = Arc::new(AtomicUsize::new(0));
    let reaping = (args.workload == Workload::Preemption)
        .then(|| tokio::spawn(reap_victims(pods.clone(), victims.clone(), forced.clone())));

    let sent: Arc<Mutex<HashMap<String, Instant>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(args.pods)));
    let create_ms: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::with_capacity(args.pods)));
    let cpu_start = cpu_seconds(&stat)?;
    let start = Instant::now();
    let workload = args.workload;
    let creating = {
        let (sent, create_ms) = (sent.clone(), create_ms.clone());
        spread(&pods, args.concurrency, args.pods, move |api, i| {
            let (sent, create_ms) = (sent.clone(), create_ms.clone());
            async move {
                let pod = pod(workload, i)?;
                let t = Instant::now();
                sent.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(pod_name(i), t);
                api.create(&PostParams::default(), &pod).await?;
                create_ms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(t.elapsed().as_secs_f64() * 1000.0);
                Ok(())
            }
        })
    };
    creating.await?;
    let create_seconds = start.elapsed().as_secs_f64();

    let deadline = start + Duration::from_secs(args.timeout);
    let mut last_report = Instant::now();
    let complete = loop {
        let bound = *count_rx.borrow_and_update();
        if bound >= args.pods {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        scheduler.ensure_running()?;
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{bound}/{} bound after {:.0} s",
                args.pods,
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), count_rx.changed()).await;
    };
    let cpu_run = cpu_seconds(&stat)? - cpu_start;
    let rss_end = rss_mb(pid);
    let reason = if complete {
        None
    } else {
        pending_reason(&pods, &binds, args.pods).await
    };
    watching.abort();
    if let Some(task) = reaping {
        task.abort();
    }

    let placed = std::mem::take(&mut *binds.seen.lock().unwrap_or_else(|e| e.into_inner()));
    let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|e| e.into_inner()));
    let mut latencies: Vec<f64> = placed
        .iter()
        .filter_map(|(name, (at, _))| {
            let t = sent.get(name)?;
            Some(at.saturating_duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    let last_bind = placed.values().map(|(at, _)| *at).max();
    let seconds = match (complete, last_bind) {
        (true, Some(at)) => at.saturating_duration_since(start).as_secs_f64(),
        _ => start.elapsed().as_secs_f64(),
    };
    let mut create_ms = std::mem::take(&mut *create_ms.lock().unwrap_or_else(|e| e.into_inner()));
    let figures = SchedulerFigures {
        workload: args.workload,
        datastore,
        nodes: args.nodes,
        pods: args.pods,
        bound: placed.len(),
        complete,
        seconds,
        pods_per_second: placed.len() as f64 / seconds.max(f64::EPSILON),
        p50_ms: quantile(&mut latencies, 0.5),
        p90_ms: quantile(&mut latencies, 0.9),
        p99_ms: quantile(&mut latencies, 0.99),
        max_ms: quantile(&mut latencies, 1.0),
        create_seconds,
        creates_per_second: args.pods as f64 / create_seconds.max(f64::EPSILON),
        create_p50_ms: quantile(&mut create_ms, 0.5),
        create_p99_ms: quantile(&mut create_ms, 0.99),
        seconds_to_nodes,
        seconds_to_first_bind,
        rss_idle_mb,
        rss_mb: rss_end,
        cpu_seconds: cpu_run,
        apiserver_rss_mb: server.rss_mb(),
        violations: violations(args.workload, &placed, args.zones),
        victims: victims.load(Ordering::Relaxed),
        force_deleted: forced.load(Ordering::Relaxed),
        metrics_url,
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        print(&figures);
    }
    let log_tail = scheduler.log_tail(20);
    drop(scheduler);
    drop(server);
    drop(etcd);
    if !complete {
        anyhow::bail!(
            "timed out: only {} of {} pods bound after {} s (workload {}); a pending pod: {}\nthe scheduler's log:\n{log_tail}",
            figures.bound,
            figures.pods,
            args.timeout,
            args.workload.name(),
            reason.as_deref().unwrap_or("none found")
        );
    }
    anyhow::ensure!(
        figures.violations == 0,
        "{} placements break the {} workload's constraints (see `violations`): the scheduler bound the pods without honouring them",
        figures.violations,
        args.workload.name()
    );
    Ok(())
}

fn print(f: &SchedulerFigures) {
    println!(
        "{}: {} nodes, {} pods ({}){}",
        f.workload.name(),
        f.nodes,
        f.pods,
        f.datastore,
        if f.complete { "" } else { " — TIMED OUT" }
    );
    println!(
        "  nodes created          {:>9.1} s  ({:.0} nodes/s)",
        f.seconds_to_nodes,
        f.nodes as f64 / f.seconds_to_nodes.max(f64::EPSILON)
    );
    println!(
        "  pods bound             {:>9} of {} in {:.2} s  ({:.0} pods/s)",
        f.bound, f.pods, f.seconds, f.pods_per_second
    );
    println!(
        "  create → bind          {:>9.0} ms p50, {:.0} ms p90, {:.0} ms p99, {:.0} ms max",
        f.p50_ms, f.p90_ms, f.p99_ms, f.max_ms
    );
    println!(
        "  creates                {:>9.2} s  ({:.0} pods/s; {:.1} ms p50, {:.1} ms p99)",
        f.create_seconds, f.creates_per_second, f.create_p50_ms, f.create_p99_ms
    );
    println!(
        "  scheduler              {:>9.1} MiB idle, {:.1} MiB at end, {:.1} CPU s; first bind {:.1} s after start",
        f.rss_idle_mb, f.rss_mb, f.cpu_seconds, f.seconds_to_first_bind
    );
    println!(
        "  API server             {:>9.1} MiB at end",
        f.apiserver_rss_mb
    );
    let mut extra = BTreeMap::new();
    if matches!(f.workload, Workload::Affinity | Workload::Spread) {
        extra.insert("constraint violations", f.violations.to_string());
    }
    if f.workload == Workload::Preemption {
        extra.insert("victims removed", f.victims.to_string());
        extra.insert("victims force-deleted", f.force_deleted.to_string());
    }
    extra.insert(
        "scheduler /metrics",
        f.metrics_url.clone().unwrap_or_else(|| "none".into()),
    );
    for (k, v) in extra {
        println!("  {k:<22} {v:>9}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(pairs: &[(usize, usize)]) -> HashMap<String, (Instant, String)> {
        let now = Instant::now();
        pairs
            .iter()
            .map(|&(pod, node)| (pod_name(pod), (now, node_name(node))))
            .collect()
    }

    #[test]
    fn anti_affinity_violations_count_pods_beside_their_group() {
        // Pods 0 and 1 (group 0) share node 3; pod 10 (group 1) may too.
        let p = placed(&[(0, 3), (1, 3), (2, 4), (10, 3)]);
        assert_eq!(violations(Workload::Affinity, &p, 5), 1);
        assert_eq!(violations(Workload::Basic, &p, 5), 0);
    }

    #[test]
    fn spread_violations_are_zone_skew_above_one() {
        // Zones are node % 3: two pods in zone 0, one in zone 1, none in 2.
        let p = placed(&[(0, 0), (1, 3), (2, 1)]);
        assert_eq!(violations(Workload::Spread, &p, 3), 1);
        let even = placed(&[(0, 0), (1, 1), (2, 2), (3, 3)]);
        assert_eq!(violations(Workload::Spread, &even, 3), 0);
    }

    #[test]
    fn workloads_build_valid_pods() {
        for w in [
            Workload::Basic,
            Workload::Affinity,
            Workload::Spread,
            Workload::Preemption,
        ] {
            let p = pod(w, 12).unwrap();
            assert_eq!(p.metadata.name.as_deref(), Some("bench-000012"));
            assert_eq!(pod_index("bench-000012"), Some(12));
        }
        let low = low_pod(9).unwrap();
        assert_eq!(
            low.spec.and_then(|s| s.node_name).as_deref(),
            Some("bench-node-00002")
        );
        node(7, 3).unwrap();
    }
}
