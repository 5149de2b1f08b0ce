//! `skiff bench store`: the store backends side by side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use skiff_store::{EtcdConfig, EtcdStore, ListOptions, SqliteConfig, SqliteStore, Store};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Etcd,
    All,
}

#[derive(clap::Args)]
pub struct StoreBenchArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Concurrent writers for the many-writer figure.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Operations per phase (creates with many writers, gets).
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Use this etcd instead of starting a throwaway one (`http://h:p`).
    #[arg(long)]
    etcd_endpoint: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The figures BENCHMARKS.md records.
#[derive(Serialize)]
pub struct StoreFigures {
    backend: &'static str,
    creates_per_second_1: f64,
    creates_per_second_64: f64,
    writers: usize,
    gets_per_second: f64,
    list_10k_ms: f64,
    watch_p50_ms: f64,
    watch_p99_ms: f64,
}

const VALUE_BYTES: usize = 1024;

pub async fn run(args: StoreBenchArgs) -> anyhow::Result<()> {
    let mut results = Vec::new();
    if matches!(args.backend, Backend::Sqlite | Backend::All) {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).await?;
        results.push(measure("sqlite", Arc::new(store), &args).await?);
    }
    if matches!(args.backend, Backend::Etcd | Backend::All) {
        // A throwaway etcd unless one is given; kept alive for the run.
        let (_etcd, endpoint) = match &args.etcd_endpoint {
            Some(endpoint) => (None, endpoint.clone()),
            None => {
                let etcd = skiff_testkit::EtcdServer::start().context("starting etcd")?;
                let url = etcd.client_url();
                (Some(etcd), url)
            }
        };
        let store = EtcdStore::connect(EtcdConfig::new(vec![endpoint])).await?;
        results.push(measure("etcd", Arc::new(store), &args).await?);
    }
    if args.json {
        match results.as_slice() {
            [one] => println!("{}", serde_json::to_string(one)?),
            many => {
                let map: serde_json::Map<String, serde_json::Value> = many
                    .iter()
                    .map(|f| Ok((f.backend.to_owned(), serde_json::to_value(f)?)))
                    .collect::<anyhow::Result<_>>()?;
                println!("{}", serde_json::Value::Object(map));
            }
        }
    } else {
        print_table(&results);
    }
    Ok(())
}

fn print_table(results: &[StoreFigures]) {
    println!(
        "{:<8} {:>12} {:>14} {:>10} {:>10} {:>10} {:>10}",
        "backend", "creates/s 1", "creates/s many", "gets/s", "list 10k", "watch p50", "watch p99"
    );
    for f in results {
        println!(
            "{:<8} {:>12.0} {:>14.0} {:>10.0} {:>8.1}ms {:>8.2}ms {:>8.2}ms",
            f.backend,
            f.creates_per_second_1,
            f.creates_per_second_64,
            f.gets_per_second,
            f.list_10k_ms,
            f.watch_p50_ms,
            f.watch_p99_ms
        );
    }
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; VALUE_BYTES])
}

async fn measure(
    backend: &'static str,
    store: Arc<dyn Store>,
    args: &StoreBenchArgs,
) -> anyhow::Result<StoreFigures> {
    eprintln!("benchmarking {backend}...");
    let single_ops = (args.ops / 10).max(100);
    let creates_per_second_1 = creates(&store, "/bench/one/", 1, single_ops).await?;
    let creates_per_second_64 =
        creates(&store, "/bench/many/", args.writers.max(1), args.ops).await?;
    let gets_per_second = gets(&store, "/bench/many/", args.ops, args.ops).await?;
    creates(&store, "/bench/list/", args.writers.max(1), 10_000).await?;
    let list_10k_ms = list_ms(&store, "/bench/list/").await?;
    let (watch_p50_ms, watch_p99_ms) = watch_latency(&store, 1_000).await?;
    Ok(StoreFigures {
        backend,
        creates_per_second_1,
        creates_per_second_64,
        writers: args.writers,
        gets_per_second,
        list_10k_ms,
        watch_p50_ms,
        watch_p99_ms,
    })
}

/// Creates `ops` keys from `writers` concurrent tasks; returns creates/s.
async fn creates(
    store: &Arc<dyn Store>,
    prefix: &str,
    writers: usize,
    ops: usize,
) -> anyhow::Result<f64> {
    let prefix = prefix.to_owned();
    super::stats::spread(store, writers, ops, move |store, i| {
        let key = format!("{prefix}{i:08}");
        async move {
            store.create(&key, value(), None).await?;
            Ok(())
        }
    })
    .await
}

/// `ops` gets of existing keys from 16 concurrent readers; returns gets/s.
async fn gets(
    store: &Arc<dyn Store>,
    prefix: &str,
    keys: usize,
    ops: usize,
) -> anyhow::Result<f64> {
    const READERS: usize = 16;
    let prefix = prefix.to_owned();
    super::stats::spread(store, READERS, ops, move |store, i| {
        let key = format!("{prefix}{:08}", (i * 7919) % keys);
        async move {
            store
                .get(&key)
                .await?
                .with_context(|| format!("{key} missing"))?;
            Ok(())
        }
    })
    .await
}

/// Median of five full lists of `prefix`, in ms.
async fn list_ms(store: &Arc<dyn Store>, prefix: &str) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let listed = store.list(prefix, ListOptions::default()).await?;
        anyhow::ensure!(
            listed.items.len() == 10_000,
            "list returned {} items",
            listed.items.len()
        );
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(super::stats::quantile(&mut times, 0.5))
}

/// Latency from the start of a write to its event reaching a watcher:
/// (p50, p99) in ms over `writes` sequential writes.
async fn watch_latency(store: &Arc<dyn Store>, writes: usize) -> anyhow::Result<(f64, f64)> {
    let prefix = "/bench/watch/";
    let from = store.current_revision().await?;
    let mut events = store.watch(prefix, from).await?;
    let mut latencies = Vec::with_capacity(writes);
    for i in 0..writes {
        let started = Instant::now();
        let key = format!("{prefix}{i:08}");
        store.create(&key, value(), None).await?;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .context("no watch event within 10s")?
                .context("watch ended")??;
            if event.kv.key == key {
                break;
            }
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((
        super::stats::quantile(&mut latencies, 0.50),
        super::stats::quantile(&mut latencies, 0.99),
    ))
}
