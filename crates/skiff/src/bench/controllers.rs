//! `skiff bench controllers`: a skiff server whose own controllers are off
//! and a separate `skiff controller-manager` child (so its memory and CPU
//! can be read); N Deployments of R replicas are created at once and timed
//! until every ReplicaSet exists, every pod exists, every Deployment's
//! status shows R replicas, and every Deployment shows R ready replicas.
//! Hollow nodes in this process (one per 100 pods unless `--nodes`) run
//! the pods the server's scheduler binds, so the whole chain runs:
//! Deployment → ReplicaSet → pods → scheduled → Running and Ready →
//! ReplicaSet and Deployment status.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;

use super::cluster::HollowNodes;
use super::server::{Server, client, rss_mb};
use super::stats::{cpu_seconds, spread};

#[derive(clap::Args)]
pub struct ControllersBenchArgs {
    /// Deployments created.
    #[arg(long, default_value_t = 100)]
    deployments: usize,
    /// Replicas of each.
    #[arg(long, default_value_t = 10)]
    replicas: i32,
    /// Hollow nodes running the pods (0: one per 100 pods).
    #[arg(long, default_value_t = 0)]
    nodes: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ControllerFigures {
    deployments: usize,
    replicas: i32,
    seconds_to_replicasets: f64,
    seconds_to_pods: f64,
    seconds_to_status: f64,
    seconds_to_ready: f64,
    pods_per_second: f64,
    nodes: usize,
    controller_manager_rss_idle_mb: f64,
    controller_manager_rss_mb: f64,
    controller_manager_cpu_seconds: f64,
}

/// The controller manager child; killed when dropped.
struct Manager(Child);

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn deployment(i: usize, replicas: i32) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("bench-{i}")},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": format!("bench-{i}")}},
            "template": {
                "metadata": {"labels": {"app": format!("bench-{i}")}},
                "spec": {"containers": [{"name": "c", "image": "skiff.local/busybox"}]},
            },
        },
    }))?)
}

/// Polls `done` every 100 ms until it holds, for up to 10 minutes.
async fn until<F, Fut>(what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub async fn run(args: ControllersBenchArgs) -> anyhow::Result<()> {
    // A selection without `*` that only names a controller to disable
    // enables none: the server's controller manager stays idle.
    let server = Server::start(&["--controllers=-garbage-collector-controller"])?;
    let kube = client(&server.kubeconfig).await?;
    let mut manager = Manager(
        Command::new(std::env::current_exe()?)
            .arg("controller-manager")
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .arg("--leader-elect=false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting skiff controller-manager")?,
    );
    let pid = manager.0.id();
    let stat = format!("/proc/{pid}/stat");
    let total_pods = args.deployments * usize::try_from(args.replicas.max(0))?;
    let nodes = if args.nodes == 0 {
        total_pods.div_ceil(100).max(1)
    } else {
        args.nodes
    };
    // Pod CIDRs come from the controller manager's node IPAM.
    let hollow = HollowNodes::start(kube.clone(), nodes, Duration::from_secs(1), None);
    hollow.wait_ready(&kube, nodes).await?;
    // Let it list and watch everything before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;
    anyhow::ensure!(
        manager.0.try_wait()?.is_none(),
        "the controller manager exited at start"
    );
    let rss_idle = rss_mb(pid);
    let cpu_start = cpu_seconds(&stat)?;

    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), "default");
    let start = Instant::now();
    let replicas = args.replicas;
    spread(
        &deployments,
        16,
        args.deployments,
        move |api, i| async move {
            api.create(&PostParams::default(), &deployment(i, replicas)?)
                .await?;
            Ok(())
        },
    )
    .await?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(kube.clone(), "default");
    until("every ReplicaSet", || async {
        Ok(rs_api.list(&ListParams::default()).await?.items.len() >= args.deployments)
    })
    .await?;
    let to_replicasets = start.elapsed().as_secs_f64();
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    until("every pod", || async {
        let listed = pods.list_metadata(&ListParams::default().limit(1)).await?;
        let count = listed.items.len() + listed.metadata.remaining_item_count.unwrap_or(0) as usize;
        Ok(count >= total_pods)
    })
    .await?;
    let to_pods = start.elapsed().as_secs_f64();
    until("every Deployment's status", || async {
        Ok(deployments
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .all(|d| d.status.as_ref().and_then(|s| s.replicas) == Some(replicas)))
    })
    .await?;
    let to_status = start.elapsed().as_secs_f64();
    until("every Deployment's pods Ready", || async {
        Ok(deployments
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .all(|d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(replicas)))
    })
    .await?;
    let to_ready = start.elapsed().as_secs_f64();
    let figures = ControllerFigures {
        deployments: args.deployments,
        replicas: args.replicas,
        seconds_to_replicasets: to_replicasets,
        seconds_to_pods: to_pods,
        seconds_to_status: to_status,
        seconds_to_ready: to_ready,
        nodes,
        pods_per_second: total_pods as f64 / to_pods.max(f64::EPSILON),
        controller_manager_rss_idle_mb: rss_idle,
        controller_manager_rss_mb: rss_mb(pid),
        controller_manager_cpu_seconds: cpu_seconds(&stat)? - cpu_start,
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "{} Deployments x {} replicas ({} pods)",
            figures.deployments, figures.replicas, total_pods
        );
        println!(
            "  all ReplicaSets        {:>8.2} s",
            figures.seconds_to_replicasets
        );
        println!(
            "  all pods created       {:>8.2} s  ({:.0} pods/s)",
            figures.seconds_to_pods, figures.pods_per_second
        );
        println!(
            "  all statuses current   {:>8.2} s",
            figures.seconds_to_status
        );
        println!(
            "  all pods Ready         {:>8.2} s  ({} hollow nodes)",
            figures.seconds_to_ready, figures.nodes
        );
        println!(
            "  controller manager     {:>8.1} MiB idle, {:.1} MiB after, {:.1} CPU s",
            figures.controller_manager_rss_idle_mb,
            figures.controller_manager_rss_mb,
            figures.controller_manager_cpu_seconds
        );
    }
    hollow.stop().await?;
    drop(manager);
    Ok(())
}
