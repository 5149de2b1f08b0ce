//! `skiff bench cluster`: the whole control plane at scale. A `skiff
//! server` child without a node agent (SQLite, or a real etcd started on
//! loopback), N hollow nodes in this process, then Deployments totalling M
//! replicas applied at once and timed until every pod is Running and Ready.
//!
//! API latency comes from the clients' side (the hollow nodes' writes and
//! the benchmark's creates): the API server exports no
//! `apiserver_request_duration_seconds` yet. Pod start-up latency is from
//! a pod's first appearance in a watch to its Ready condition in the same
//! watch (the API's view, with millisecond resolution instead of the
//! timestamps' seconds).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use skiff_hollow::Latencies;
use tokio_util::sync::CancellationToken;

use super::server::{Server, client, rss_mb};
use super::stats::{cpu_seconds, quantile, spread};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Datastore {
    Sqlite,
    Etcd,
    Both,
}

#[derive(clap::Args)]
pub struct ClusterBenchArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Pods in total (Deployments of `--replicas` each).
    #[arg(long, default_value_t = 3_000)]
    pods: usize,
    /// Replicas per Deployment.
    #[arg(long, default_value_t = 30)]
    replicas: usize,
    /// The server's store: embedded SQLite, a real etcd on loopback, or
    /// both one after the other.
    #[arg(long, value_enum, default_value = "sqlite")]
    datastore: Datastore,
    /// A hollow pod's time from accepted to Running and Ready, in ms.
    #[arg(long, default_value_t = 1000)]
    startup_delay_ms: u64,
    /// Give up after this long waiting for the pods.
    #[arg(long, default_value_t = 3600)]
    timeout_seconds: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Verb {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize)]
struct ClusterFigures {
    datastore: &'static str,
    nodes: usize,
    pods: usize,
    deployments: usize,
    seconds_to_nodes: f64,
    seconds_to_ready: f64,
    pods_per_second: f64,
    api_mutating_p50_ms: f64,
    api_mutating_p99_ms: f64,
    /// Per verb, as the clients saw it.
    api: BTreeMap<String, Verb>,
    startup_p50_ms: f64,
    startup_p99_ms: f64,
    /// The server at the end.
    rss_mb: f64,
    rss_idle_mb: f64,
    cpu_idle_percent: f64,
    cpu_seconds: f64,
    hollow_rss_mb: f64,
    hollow_kb_per_node: f64,
}

/// This process's resident memory in MiB.
pub fn own_rss_mb() -> f64 {
    rss_mb(std::process::id())
}

/// Hollow nodes run in this process until the token is cancelled.
pub struct HollowNodes {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), skiff_hollow::Error>>,
}

impl HollowNodes {
    /// Starts `count` hollow nodes; more than the node IPAM controller's
    /// 256 /24s claim their pod CIDRs from 10.64.0.0/10 themselves.
    pub fn start(
        kube: kube::Client,
        count: usize,
        startup_delay: Duration,
        latencies: Option<Arc<Latencies>>,
    ) -> HollowNodes {
        let mut config = skiff_hollow::Config::new(kube, count);
        config.startup_delay = startup_delay;
        config.latencies = latencies;
        if count > 256 {
            config.claim_pod_cidrs = Some("10.64.0.0/10".into());
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(skiff_hollow::run(config, stop.clone()));
        HollowNodes { stop, task }
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await??;
        Ok(())
    }

    /// Waits until `count` hollow nodes are Ready with a pod CIDR.
    pub async fn wait_ready(&self, kube: &kube::Client, count: usize) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(kube.clone());
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            anyhow::ensure!(!self.task.is_finished(), "the hollow nodes stopped");
            let listed = nodes
                .list(
                    &ListParams::default().labels(&format!("{}=true", skiff_hollow::HOLLOW_LABEL)),
                )
                .await?;
            let ready = listed
                .items
                .iter()
                .filter(|n| {
                    n.spec.as_ref().is_some_and(|s| s.pod_cidr.is_some())
                        && n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                })
                .count();
            if ready >= count {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {ready} of {count} hollow nodes became Ready"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A Deployment of `replicas` busybox pods (never pulled: hollow nodes
/// run nothing).
pub fn deployment(name: &str, replicas: usize) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "bench": "cluster"}},
                "spec": {"containers": [{"name": "c", "image": "skiff.local/busybox"}]},
            },
        },
    }))?)
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Watches the benchmark's pods: when each first appeared and when it
/// became Ready; returns the start-up latencies (ms) once `total` are Ready.
async fn watch_startup(
    kube: kube::Client,
    total: usize,
    ready_tx: tokio::sync::watch::Sender<usize>,
) -> Vec<f64> {
    let pods: Api<Pod> = Api::namespaced(kube, "default");
    let events = watcher::watcher(pods, watcher::Config::default().labels("bench=cluster"))
        .default_backoff();
    let mut events = std::pin::pin!(events);
    let mut seen: HashMap<String, (Instant, bool)> = HashMap::new();
    let mut latencies = Vec::with_capacity(total);
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watching the benchmark's pods");
                continue;
            }
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        let entry = seen.entry(uid).or_insert((Instant::now(), false));
        if !entry.1 && ready(&pod) {
            entry.1 = true;
            latencies.push(entry.0.elapsed().as_secs_f64() * 1000.0);
            ready_tx.send_replace(latencies.len());
            if latencies.len() >= total {
                break;
            }
        }
    }
    latencies
}

async fn measure(
    args: &ClusterBenchArgs,
    datastore: &'static str,
) -> anyhow::Result<ClusterFigures> {
    let etcd = if datastore == "etcd" {
        Some(skiff_testkit::EtcdServer::start().context("starting etcd")?)
    } else {
        None
    };
    let endpoint = etcd.as_ref().map(|e| e.client_url());
    let extra: Vec<&str> = match &endpoint {
        Some(url) => vec!["--datastore-endpoint", url],
        None => vec![],
    };
    let server = Server::start(&extra)?;
    let kube = client(&server.kubeconfig).await?;
    let pid = server.pid().context("the server is not running")?;
    let stat = format!("/proc/{pid}/stat");
    let latencies = Arc::new(Latencies::default());
    let baseline_mb = own_rss_mb();

    eprintln!("[{datastore}] starting {} hollow nodes", args.nodes);
    let started = Instant::now();
    let hollow = HollowNodes::start(
        kube.clone(),
        args.nodes,
        Duration::from_millis(args.startup_delay_ms),
        Some(latencies.clone()),
    );
    hollow.wait_ready(&kube, args.nodes).await?;
    let seconds_to_nodes = started.elapsed().as_secs_f64();

    // Idle with N nodes: leases renewed, nothing else.
    eprintln!(
        "[{datastore}] {} nodes Ready after {seconds_to_nodes:.1} s; idle for 20 s",
        args.nodes
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu_start = cpu_seconds(&stat)?;
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu_idle_percent =
        (cpu_seconds(&stat)? - idle_cpu_start) / idle_started.elapsed().as_secs_f64() * 100.0;
    let rss_idle_mb = server.rss_mb();
    let hollow_kb_per_node = if args.nodes == 0 {
        0.0
    } else {
        (own_rss_mb() - baseline_mb) * 1024.0 / args.nodes as f64
    };

    latencies.clear();
    let replicas = args.replicas.max(1);
    let deployments = args.pods.div_ceil(replicas);
    let (ready_tx, mut ready_rx) = tokio::sync::watch::channel(0usize);
    let watching = tokio::spawn(watch_startup(kube.clone(), args.pods, ready_tx));
    // Let the watch establish before the first pod exists.
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "[{datastore}] creating {deployments} Deployments, {} pods",
        args.pods
    );
    let cpu_start = cpu_seconds(&stat)?;
    let start = Instant::now();
    let api: Api<Deployment> = Api::namespaced(kube.clone(), "default");
    let total = args.pods;
    let recorder = latencies.clone();
    spread(&api, 8, deployments, move |api, i| {
        let recorder = recorder.clone();
        async move {
            // The last Deployment takes the remainder.
            let n = replicas.min(total - i * replicas);
            let d = deployment(&format!("bench-{i}"), n)?;
            let t = Instant::now();
            api.create(&PostParams::default(), &d).await?;
            recorder.record("create", t.elapsed());
            Ok(())
        }
    })
    .await?;
    let deadline = start + Duration::from_secs(args.timeout_seconds);
    let mut last_report = Instant::now();
    loop {
        let ready_now = *ready_rx.borrow_and_update();
        if ready_now >= total {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {ready_now} of {total} pods Ready after {} s\n{}",
            args.timeout_seconds,
            server.log_tail(20)
        );
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "[{datastore}] {ready_now}/{total} Ready after {:.0} s",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx.changed()).await;
    }
    let seconds_to_ready = start.elapsed().as_secs_f64();
    let cpu_run = cpu_seconds(&stat)? - cpu_start;
    let mut startup = watching.await?;
    let mutating = latencies.mutating_summary();
    let figures = ClusterFigures {
        datastore,
        nodes: args.nodes,
        pods: total,
        deployments,
        seconds_to_nodes,
        seconds_to_ready,
        pods_per_second: total as f64 / seconds_to_ready.max(f64::EPSILON),
        api_mutating_p50_ms: mutating.p50_ms,
        api_mutating_p99_ms: mutating.p99_ms,
        api: latencies
            .summary()
            .into_iter()
            .map(|(verb, s)| {
                (
                    verb,
                    Verb {
                        count: s.count,
                        p50_ms: s.p50_ms,
                        p99_ms: s.p99_ms,
                    },
                )
            })
            .collect(),
        startup_p50_ms: quantile(&mut startup, 0.5),
        startup_p99_ms: quantile(&mut startup, 0.99),
        rss_mb: server.rss_mb(),
        rss_idle_mb,
        cpu_idle_percent,
        cpu_seconds: cpu_run,
        hollow_rss_mb: own_rss_mb(),
        hollow_kb_per_node,
    };
    hollow.stop().await?;
    drop(server);
    drop(etcd);
    Ok(figures)
}

fn print(f: &ClusterFigures) {
    println!(
        "{}: {} hollow nodes, {} pods in {} Deployments",
        f.datastore, f.nodes, f.pods, f.deployments
    );
    println!("  nodes Ready            {:>9.1} s", f.seconds_to_nodes);
    println!(
        "  all pods Ready         {:>9.1} s  ({:.0} pods/s)",
        f.seconds_to_ready, f.pods_per_second
    );
    println!(
        "  pod startup            {:>9.0} ms p50, {:.0} ms p99",
        f.startup_p50_ms, f.startup_p99_ms
    );
    println!(
        "  API mutating (client)  {:>9.1} ms p50, {:.1} ms p99",
        f.api_mutating_p50_ms, f.api_mutating_p99_ms
    );
    for (verb, v) in &f.api {
        println!(
            "    {verb:<8} {:>8} calls {:>9.1} ms p50, {:.1} ms p99",
            v.count, v.p50_ms, v.p99_ms
        );
    }
    println!(
        "  server                 {:>9.1} MiB idle, {:.1} MiB at end; {:.1} % CPU idle, {:.1} CPU s for the run",
        f.rss_idle_mb, f.rss_mb, f.cpu_idle_percent, f.cpu_seconds
    );
    println!(
        "  hollow nodes           {:>9.1} KiB per node idle, {:.1} MiB process RSS at end",
        f.hollow_kb_per_node, f.hollow_rss_mb
    );
}

pub async fn run(args: ClusterBenchArgs) -> anyhow::Result<()> {
    let stores: &[&'static str] = match args.datastore {
        Datastore::Sqlite => &["sqlite"],
        Datastore::Etcd => &["etcd"],
        Datastore::Both => &["sqlite", "etcd"],
    };
    let mut results = Vec::new();
    for store in stores {
        results.push(measure(&args, store).await?);
    }
    if args.json {
        if let [only] = results.as_slice() {
            println!("{}", serde_json::to_string(only)?);
        } else {
            let all: BTreeMap<&str, &ClusterFigures> =
                results.iter().map(|f| (f.datastore, f)).collect();
            println!("{}", serde_json::to_string(&all)?);
        }
    } else {
        for f in &results {
            print(f);
        }
    }
    Ok(())
}
