//! `skiff bench pod-startup`: a real node (`skiff server` with its agent:
//! containerd, kubelet; needs root) is sent N pods at once, and each pod is
//! timed from its create call to the pod watch showing it scheduled, with
//! an IP, Running and Ready. Also reports the memory of the server and of
//! its containerd with the pods running. The pods are deleted (and the
//! runtime emptied) before the server is stopped, so nothing is left.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, ExecAction, Node, Pod, PodSpec, PodStatus, Probe};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::watcher;
use serde::Serialize;
use tokio::sync::mpsc;

use super::server::{Server, client, rss_mb};
use super::stats::quantile;

const NAMESPACE: &str = "default";
pub(super) const LABEL: &str = "skiff-bench";
const IMAGE: &str = "skiff.local/busybox";

#[derive(clap::Args)]
pub struct PodStartupBenchArgs {
    /// Pods created at once.
    #[arg(long, default_value_t = 30)]
    pods: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Copy the server's and containerd's logs into this directory at the
    /// end (for profiling; `RUST_LOG` sets the server's level).
    #[arg(long)]
    keep_logs: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct PodStartupFigures {
    pods: usize,
    running_p50_ms: f64,
    running_p99_ms: f64,
    ready_p50_ms: f64,
    ready_p99_ms: f64,
    /// Create call to `spec.nodeName` set.
    scheduled_p50_ms: f64,
    scheduled_p99_ms: f64,
    /// Create call to `status.podIP` set (the sandbox is up).
    ip_p50_ms: f64,
    ip_p99_ms: f64,
    /// Create of the first pod to the last one Ready.
    all_ready_ms: f64,
    /// The warm-up pod (first on this node) to Ready.
    warmup_ready_ms: f64,
    /// With the pods running.
    server_rss_mb: f64,
    containerd_rss_mb: f64,
    /// The pods' shims (containerd-shim-runc-v2), together.
    shims: usize,
    shims_rss_mb: f64,
}

/// What the pod watch saw of one pod, and when.
struct Seen {
    at: Instant,
    name: String,
    scheduled: bool,
    ip: bool,
    running: bool,
    ready: bool,
}

enum Watched {
    /// The watch has listed and is watching.
    Synced,
    Pod(Seen),
}

fn seen(pod: &Pod, at: Instant) -> Seen {
    let status = pod.status.as_ref();
    Seen {
        at,
        name: pod.metadata.name.clone().unwrap_or_default(),
        scheduled: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some(),
        ip: status.and_then(|s| s.pod_ip.as_ref()).is_some(),
        running: status.and_then(|s| s.phase.as_deref()) == Some("Running"),
        ready: status.is_some_and(ready),
    }
}

fn ready(status: &PodStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Watches the benchmark's pods, sending what it sees with the time it saw it.
fn watch_pods(client: &kube::Client) -> mpsc::UnboundedReceiver<Watched> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let config = watcher::Config::default().labels(LABEL);
        let mut events = watcher(api, config).boxed();
        while let Some(event) = events.next().await {
            let message = match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    Watched::Pod(seen(&pod, Instant::now()))
                }
                Ok(watcher::Event::InitDone) => Watched::Synced,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "watching the benchmark's pods");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    rx
}

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([(LABEL.to_owned(), "pod-startup".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            // `sleep` as PID 1 ignores SIGTERM: deleting waits this long.
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "main".into(),
                image: Some(IMAGE.into()),
                command: Some(vec!["sleep".into(), "3600".into()]),
                readiness_probe: Some(Probe {
                    exec: Some(ExecAction {
                        command: Some(vec!["true".into()]),
                    }),
                    period_seconds: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Per pod: when each milestone was first seen.
#[derive(Default)]
struct Milestones {
    scheduled: Option<Instant>,
    ip: Option<Instant>,
    running: Option<Instant>,
    ready: Option<Instant>,
}

impl Milestones {
    fn record(&mut self, seen: &Seen) {
        for (reached, at) in [
            (seen.scheduled, &mut self.scheduled),
            (seen.ip, &mut self.ip),
            (seen.running, &mut self.running),
            (seen.ready, &mut self.ready),
        ] {
            if reached && at.is_none() {
                *at = Some(seen.at);
            }
        }
    }

    /// Running and Ready.
    fn done(&self) -> bool {
        self.running.is_some() && self.ready.is_some()
    }
}

/// Reads the watch until every pod in `milestones` is Running and Ready.
async fn until_started(
    events: &mut mpsc::UnboundedReceiver<Watched>,
    milestones: &mut HashMap<String, Milestones>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !milestones.values().all(Milestones::done) {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| {
                let waiting: Vec<&String> = milestones
                    .iter()
                    .filter(|(_, m)| !m.done())
                    .map(|(name, _)| name)
                    .collect();
                anyhow::anyhow!(
                    "{} pods were not Running and Ready within {}s: {waiting:?}",
                    waiting.len(),
                    timeout.as_secs()
                )
            })?
            .context("the pod watch ended")?;
        if let Watched::Pod(seen) = event
            && let Some(m) = milestones.get_mut(&seen.name)
        {
            m.record(&seen);
        }
    }
    Ok(())
}

async fn create(api: &Api<Pod>, name: &str) -> anyhow::Result<Instant> {
    let started = Instant::now();
    api.create(&PostParams::default(), &pod(name))
        .await
        .with_context(|| format!("creating pod {name}"))?;
    Ok(started)
}

pub(super) async fn wait_node_ready(client: &kube::Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = nodes.list(&ListParams::default()).await.is_ok_and(|list| {
            list.items.iter().any(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
        });
        if ready {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "no Node was Ready within 120s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn wait_readyz(client: &kube::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = kube::core::Request::new("").get("readyz", &Default::default());
        if let Ok(request) = request
            && client.request_text(request).await.is_ok()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "/readyz did not answer within 60s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server's containerd: its child process named `containerd`.
fn containerd_pid(server: u32) -> Option<u32> {
    processes().into_iter().find_map(|(pid, stat, _)| {
        // `pid (comm) state ppid ...`; comm has no spaces here.
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
        let ppid: u32 = fields.nth(1)?.parse().ok()?;
        (ppid == server && stat.contains("(containerd)")).then_some(pid)
    })
}

/// The pods' shims: `containerd-shim-runc-v2 ... -address <socket under
/// the data dir>`; each one serves a pod while it has containers.
fn shims(data_dir: &str) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, _, cmdline)| cmdline.contains("containerd-shim") && cmdline.contains(data_dir))
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Waits (10 s at most) for the shims of deleted pods to exit.
async fn shims_gone(data_dir: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = shims(data_dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every process: pid, `/proc/<pid>/stat`, command line (NULs as spaces).
fn processes() -> Vec<(u32, String, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            Some((pid, stat, cmdline))
        })
        .collect()
}

pub(super) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.duration_since(from).as_secs_f64() * 1000.0
}

/// p50 and p99 of the time from each pod's create to a milestone.
fn percentiles(
    starts: &HashMap<String, Instant>,
    milestones: &HashMap<String, Milestones>,
    pick: impl Fn(&Milestones) -> Option<Instant>,
) -> (f64, f64) {
    let mut samples: Vec<f64> = milestones
        .iter()
        .filter_map(|(name, m)| Some(ms(*starts.get(name)?, pick(m)?)))
        .collect();
    (quantile(&mut samples, 0.5), quantile(&mut samples, 0.99))
}

async fn measure(server: &Server, args: &PodStartupBenchArgs) -> anyhow::Result<PodStartupFigures> {
    let client = client(&server.kubeconfig).await?;
    wait_readyz(&client).await?;
    wait_node_ready(&client).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let mut events = watch_pods(&client);
    while !matches!(events.recv().await, Some(Watched::Synced)) {}

    // Warm-up: the first pod imports nothing (the agent did) but unpacks
    // the sandbox and busybox images and sets up the CNI bridge.
    eprintln!("node Ready; warm-up pod...");
    let deadline = Instant::now() + Duration::from_secs(60);
    let warmup_started = loop {
        // The namespace's default ServiceAccount may not exist yet.
        match create(&api, "warmup").await {
            Ok(started) => break started,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "creating the warm-up pod; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let mut warmup = HashMap::from([("warmup".to_owned(), Milestones::default())]);
    until_started(&mut events, &mut warmup, Duration::from_secs(180)).await?;
    let warmup_ready_ms = ms(
        warmup_started,
        warmup["warmup"].ready.unwrap_or(warmup_started),
    );
    delete_all(&api).await?;
    let data_dir = server.data_dir().display().to_string();
    shims_gone(&data_dir).await;

    eprintln!("creating {} pods at once...", args.pods);
    let names: Vec<String> = (0..args.pods).map(|i| format!("bench-{i:03}")).collect();
    let mut milestones: HashMap<String, Milestones> = names
        .iter()
        .map(|n| (n.clone(), Milestones::default()))
        .collect();
    let creates = futures::future::join_all(names.iter().map(|name| {
        let api = api.clone();
        let name = name.clone();
        tokio::spawn(async move { create(&api, &name).await.map(|at| (name, at)) })
    }));
    let (created, watched) = tokio::join!(
        creates,
        until_started(
            &mut events,
            &mut milestones,
            Duration::from_secs(120 + 2 * args.pods as u64)
        )
    );
    let mut starts = HashMap::new();
    for result in created {
        let (name, at) = result??;
        starts.insert(name, at);
    }
    watched?;
    let first = starts.values().min().copied().unwrap_or_else(Instant::now);
    let last_ready = milestones
        .values()
        .filter_map(|m| m.ready)
        .max()
        .unwrap_or(first);

    // Memory with the pods running.
    let server_pid = server.pid().context("the server is not running")?;
    let containerd_rss_mb = containerd_pid(server_pid).map_or(0.0, rss_mb);
    let shims = shims(&data_dir);
    let (running_p50_ms, running_p99_ms) = percentiles(&starts, &milestones, |m| m.running);
    let (ready_p50_ms, ready_p99_ms) = percentiles(&starts, &milestones, |m| m.ready);
    let (scheduled_p50_ms, scheduled_p99_ms) = percentiles(&starts, &milestones, |m| m.scheduled);
    let (ip_p50_ms, ip_p99_ms) = percentiles(&starts, &milestones, |m| m.ip);
    Ok(PodStartupFigures {
        pods: args.pods,
        running_p50_ms,
        running_p99_ms,
        ready_p50_ms,
        ready_p99_ms,
        scheduled_p50_ms,
        scheduled_p99_ms,
        ip_p50_ms,
        ip_p99_ms,
        all_ready_ms: ms(first, last_ready),
        warmup_ready_ms,
        server_rss_mb: server.rss_mb(),
        containerd_rss_mb,
        shims: shims.len(),
        shims_rss_mb: shims.iter().map(|pid| rss_mb(*pid)).sum(),
    })
}

/// Deletes the benchmark's pods and waits until the kubelet has stopped
/// their containers, removed their sandboxes and let the API forget them.
async fn delete_all(api: &Api<Pod>) -> anyhow::Result<()> {
    let selector = ListParams::default().labels(LABEL);
    api.delete_collection(&DeleteParams::default(), &selector)
        .await
        .context("deleting the pods")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = api.list(&selector).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} pods were still there 120s after being deleted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes the pods (when the server answers) and stops the server.
pub(super) async fn tear_down(server: &mut Server) -> anyhow::Result<()> {
    let deleted = match client(&server.kubeconfig).await {
        Ok(client) => delete_all(&Api::namespaced(client, NAMESPACE)).await,
        Err(e) => Err(e),
    };
    let data_dir = server.data_dir().display().to_string();
    // A shim left would be a pod's containers left running: shims outlive
    // containerd.
    let left = shims_gone(&data_dir).await;
    let status = server.stop();
    deleted.context("cleaning up the benchmark's pods")?;
    anyhow::ensure!(
        left.is_empty(),
        "containerd shims of the benchmark's pods are still running: {left:?}"
    );
    anyhow::ensure!(
        status.is_some_and(|s| s.success()),
        "the server did not stop cleanly: {status:?}"
    );
    Ok(())
}

pub async fn run(args: PodStartupBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_root(),
        "the pod start-up benchmark runs a real node: it needs root (and containerd, runc, the CNI plugins)"
    );
    anyhow::ensure!(args.pods > 0, "--pods must be at least 1");
    let mut server = Server::start_node(&[])?;
    let figures = tokio::select! {
        figures = measure(&server, &args) => figures,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let figures =
        figures.map_err(|e| e.context(format!("server log (tail):\n{}", server.log_tail(30))));
    eprintln!("deleting the pods and stopping the server...");
    let cleaned = tear_down(&mut server).await;
    if let Some(dir) = &args.keep_logs {
        std::fs::create_dir_all(dir)?;
        for (from, name) in server.logs() {
            std::fs::copy(&from, dir.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    let figures = figures?;
    cleaned?;
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        let f = &figures;
        println!(
            "{} pods created at once (warm-up pod Ready in {:.0} ms)",
            f.pods, f.warmup_ready_ms
        );
        println!("{:<12} {:>10} {:>10}", "milestone", "p50 ms", "p99 ms");
        for (name, p50, p99) in [
            ("scheduled", f.scheduled_p50_ms, f.scheduled_p99_ms),
            ("pod IP", f.ip_p50_ms, f.ip_p99_ms),
            ("Running", f.running_p50_ms, f.running_p99_ms),
            ("Ready", f.ready_p50_ms, f.ready_p99_ms),
        ] {
            println!("{name:<12} {p50:>10.0} {p99:>10.0}");
        }
        println!("all Ready after {:.0} ms", f.all_ready_ms);
        println!(
            "RSS: server {:.1} MiB, containerd {:.1} MiB, {} shims {:.1} MiB",
            f.server_rss_mb, f.containerd_rss_mb, f.shims, f.shims_rss_mb
        );
    }
    Ok(())
}
