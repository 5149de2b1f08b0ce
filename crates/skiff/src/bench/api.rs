//! `skiff bench api`: a skiff server (started as a child process, so its
//! memory can be read) measured through the `kube` client: creates/s and
//! gets/s from many clients, a 10k-object list, watch delivery latency to
//! many concurrent watchers, and the server's RSS.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchParams};
use serde::Serialize;

use super::server::{Server, client};
use super::stats::{quantile, spread};

#[derive(clap::Args)]
pub struct ApiBenchArgs {
    /// Concurrent clients for creates and gets.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// ConfigMaps created (and listed).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent watchers for the delivery latency.
    #[arg(long, default_value_t = 1_000)]
    watchers: usize,
    /// Changes each watcher must receive.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ApiFigures {
    creates_per_second: f64,
    gets_per_second: f64,
    list_10k_ms: f64,
    watch_p50_ms: f64,
    watch_p99_ms: f64,
    /// With the objects stored, after the allocator settled (10 s).
    rss_mb: f64,
    rss_before_mb: f64,
    rss_with_watchers_mb: f64,
    clients: usize,
    objects: usize,
    watchers: usize,
}

fn config_map(name: String, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

async fn namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// The `seq` of a MODIFIED watch line (`..."seq":"17"...`).
fn seq_of(line: &str) -> Option<usize> {
    if !line.contains("\"MODIFIED\"") {
        return None;
    }
    let rest = &line[line.find("\"seq\":\"")? + 7..];
    rest[..rest.find('"')?].parse().ok()
}

async fn watch_latency(
    client: &kube::Client,
    watchers: usize,
    changes: usize,
) -> anyhow::Result<(f64, f64)> {
    namespace(client, "bench-watch").await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-watch");
    let probe = api
        .create(
            &PostParams::default(),
            &config_map("probe".into(), BTreeMap::new()),
        )
        .await?;
    let from = probe.metadata.resource_version.clone().unwrap_or_default();
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; changes]));
    let samples: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers.max(1));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (client, from, sent, samples, ready) = (
            client.clone(),
            from.clone(),
            sent.clone(),
            samples.clone(),
            ready_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Raw lines, not typed decoding: the figure is the server's
            // delivery time, so the client does as little as it can.
            let request = kube::core::Request::new("/api/v1/namespaces/bench-watch/configmaps")
                .watch(&WatchParams::default().timeout(120), &from)?;
            let body = client.request_stream(request).await?;
            let _ = ready.send(()).await;
            let mut lines = std::pin::pin!(futures::io::AsyncBufReadExt::lines(body));
            let mut seen = 0;
            while seen < changes {
                let Some(line) = lines.next().await else {
                    break;
                };
                let Some(seq) = seq_of(&line?) else {
                    continue;
                };
                let at = sent.lock().ok().and_then(|s| s.get(seq).copied().flatten());
                if let (Some(at), Ok(mut samples)) = (at, samples.lock()) {
                    samples.push(at.elapsed().as_secs_f64() * 1000.0);
                }
                seen += 1;
            }
            anyhow::Ok(())
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        ready_rx.recv().await.context("a watcher failed to start")?;
    }
    // Let the server finish setting up the watches (their responses have
    // started, their cache subscriptions may still be settling) so the
    // figure is steady-state delivery, not connection setup.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut current = probe;
    for seq in 0..changes {
        current.data = Some(BTreeMap::from([("seq".to_owned(), seq.to_string())]));
        // The clock starts when the write is sent.
        if let Ok(mut s) = sent.lock() {
            s[seq] = Some(Instant::now());
        }
        current = api
            .replace("probe", &PostParams::default(), &current)
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.await??;
    }
    let mut samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    anyhow::ensure!(
        samples.len() == watchers * changes,
        "watchers received {} of {} events",
        samples.len(),
        watchers * changes
    );
    Ok((quantile(&mut samples, 0.5), quantile(&mut samples, 0.99)))
}

pub async fn run(args: ApiBenchArgs) -> anyhow::Result<()> {
    let server = Server::start(&["--controllers=-garbage-collector-controller"])?;
    let client = client(&server.kubeconfig).await?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rss_before_mb = server.rss_mb();
    eprintln!(
        "server up (RSS {rss_before_mb:.1} MiB); creating {} ConfigMaps with {} clients...",
        args.objects, args.clients
    );
    namespace(&client, "bench").await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");
    let value = "x".repeat(256);
    let creates_per_second = spread(&api, args.clients, args.objects, move |api, i| {
        let data = BTreeMap::from([("value".to_owned(), value.clone())]);
        async move {
            api.create(
                &PostParams::default(),
                &config_map(format!("cm-{i:06}"), data),
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    eprintln!("gets...");
    let objects = args.objects;
    let gets_per_second = spread(&api, args.clients, args.objects, move |api, i| async move {
        api.get(&format!("cm-{:06}", (i * 7919) % objects)).await?;
        Ok(())
    })
    .await?;
    eprintln!("lists...");
    let mut lists = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let listed = api.list(&ListParams::default()).await?;
        anyhow::ensure!(
            listed.items.len() == args.objects,
            "listed {} objects",
            listed.items.len()
        );
        lists.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let list_10k_ms = quantile(&mut lists, 0.5);
    // Freed memory is handed back to the system after a short decay.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rss_mb = server.rss_mb();
    eprintln!("{} watchers...", args.watchers);
    let (watch_p50_ms, watch_p99_ms) = watch_latency(&client, args.watchers, args.changes).await?;
    let figures = ApiFigures {
        creates_per_second,
        gets_per_second,
        list_10k_ms,
        watch_p50_ms,
        watch_p99_ms,
        rss_mb,
        rss_before_mb,
        rss_with_watchers_mb: server.rss_mb(),
        clients: args.clients,
        objects: args.objects,
        watchers: args.watchers,
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "creates/s {:.0} ({} clients) | gets/s {:.0} | list {} objects {:.1} ms | watch p50 {:.2} ms p99 {:.2} ms ({} watchers) | RSS {:.1} MiB with the objects (idle {:.1} MiB, {:.1} MiB with the watchers)",
            figures.creates_per_second,
            figures.clients,
            figures.gets_per_second,
            figures.objects,
            figures.list_10k_ms,
            figures.watch_p50_ms,
            figures.watch_p99_ms,
            figures.watchers,
            figures.rss_mb,
            figures.rss_before_mb,
            figures.rss_with_watchers_mb
        );
    }
    Ok(())
}
