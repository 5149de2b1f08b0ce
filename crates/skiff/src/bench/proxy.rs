//! `skiff bench proxy`: the cost of one kube-proxy sync with N Services of
//! M endpoints each — turning the API objects into the proxy's state,
//! generating the nftables ruleset and the `nft` transaction — for a full
//! sync and for a sync after one Service changed, with the size of what is
//! written. As root it also applies the ruleset with `nft -f` inside a
//! private network namespace (created and removed here) and times that.

use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;
use serde_json::json;
use skiff_proxy::model::State;
use skiff_proxy::nft::{Applier, NftApplier, partial_transaction, transaction};
use skiff_proxy::ruleset;

use super::stats::quantile;

/// Every this many Services is a NodePort one (the rest ClusterIP).
const NODE_PORT_EVERY: usize = 10;

#[derive(clap::Args)]
pub struct ProxyBenchArgs {
    /// Services (one TCP port each).
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// Ready endpoints per Service (one EndpointSlice each).
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Timed repetitions of each step (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Timed `nft -f` applies (each full then one-Service); one is long
    /// with 10,000 Services.
    #[arg(long, default_value_t = 1)]
    apply_rounds: usize,
    /// Do not apply with nft even as root.
    #[arg(long)]
    no_apply: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ProxyFigures {
    services: usize,
    endpoints_per_service: usize,
    rounds: usize,
    /// Whether this binary was built with optimisations.
    release_build: bool,
    rules: usize,
    map_and_set_elements: usize,
    ruleset_bytes: usize,
    /// API objects → state (`State::from_objects`), median.
    state_ms: f64,
    /// State → ruleset text, median.
    generate_ms: f64,
    /// A whole full sync's computation (state + ruleset + transaction).
    full_sync_compute_ms: f64,
    full_transaction_bytes: usize,
    /// One Service lost an endpoint: state + ruleset + the transaction of
    /// what changed.
    partial_sync_compute_ms: f64,
    partial_transaction_bytes: usize,
    apply_rounds: usize,
    /// `nft -f` in a private network namespace (`None`: not applied).
    apply_full_ms: Option<f64>,
    apply_partial_ms: Option<f64>,
    apply_note: String,
}

fn service_ip(i: usize) -> Ipv4Addr {
    let n = u32::try_from(i + 100).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 43, 0, 0)) + n)
}

fn endpoint_ip(i: usize) -> Ipv4Addr {
    let n = u32::try_from(i + 2).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + n)
}

fn objects(
    services: usize,
    endpoints: usize,
) -> anyhow::Result<(Vec<Service>, Vec<EndpointSlice>)> {
    let mut svcs = Vec::with_capacity(services);
    let mut slices = Vec::with_capacity(services);
    for i in 0..services {
        let ns = format!("bench-{}", i % 10);
        let name = format!("svc-{i}");
        let ip = service_ip(i).to_string();
        let node_port = i % NODE_PORT_EVERY == 0;
        let mut port = json!({"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080});
        if node_port {
            port["nodePort"] = json!(30000 + (i / NODE_PORT_EVERY) % 2768);
        }
        svcs.push(serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "type": if node_port { "NodePort" } else { "ClusterIP" },
                "clusterIP": ip, "clusterIPs": [ip],
                "ports": [port],
            },
        }))?);
        let eps: Vec<_> = (0..endpoints)
            .map(|e| {
                json!({
                    "addresses": [endpoint_ip(i * endpoints + e).to_string()],
                    "conditions": {"ready": true},
                    "nodeName": format!("node-{}", e % 3),
                })
            })
            .collect();
        slices.push(serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-abcde"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps,
        }))?);
    }
    Ok((svcs, slices))
}

fn state(services: &[Service], slices: &[EndpointSlice]) -> State {
    State::from_objects(
        "node-0",
        None,
        &["10.42.0.0/16".to_owned()],
        false,
        services,
        slices,
    )
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<f64>) -> f64 {
    quantile(&mut samples, 0.5)
}

/// A network namespace of our own, deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> anyhow::Result<Netns> {
        let name = format!("skiff-bench-proxy-{}", std::process::id());
        let status = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .context("running ip netns add")?;
        anyhow::ensure!(status.success(), "ip netns add {name} failed");
        Ok(Netns(name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

pub async fn run(args: ProxyBenchArgs) -> anyhow::Result<()> {
    let rounds = args.rounds.max(1);
    let (services, slices) = objects(args.services, args.endpoints)?;
    // The partial sync: the first Service's slice loses its last endpoint.
    let mut changed_slices = slices.clone();
    if let Some(first) = changed_slices.first_mut() {
        first.endpoints.pop();
    }

    let (mut state_t, mut gen_t, mut full_t, mut partial_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut full_bytes = 0;
    let mut partial_bytes = 0;
    let before = ruleset::build(&state(&services, &slices));
    for _ in 0..rounds {
        let t = Instant::now();
        let s = state(&services, &slices);
        state_t.push(ms(t));
        let g = Instant::now();
        let rules = ruleset::build(&s);
        let text = rules.to_string();
        gen_t.push(ms(g));
        full_bytes = transaction(&rules, None).len();
        full_t.push(ms(t));
        drop(text);

        let t = Instant::now();
        let s = state(&services, &changed_slices);
        let rules = ruleset::build(&s);
        let text = rules.to_string();
        partial_bytes = partial_transaction(&rules, &before).len();
        partial_t.push(ms(t));
        drop(text);
    }
    let (rules, elements) = before.counts();

    let (apply_full_ms, apply_partial_ms, apply_note) = if args.no_apply {
        (None, None, "not applied (--no-apply)".to_owned())
    } else if !is_root() {
        (None, None, "not applied (needs root)".to_owned())
    } else {
        let after = ruleset::build(&state(&services, &changed_slices));
        let ns = Netns::create()?;
        let mut full = Vec::new();
        let mut partial = Vec::new();
        for round in 0..args.apply_rounds.max(1) {
            // A fresh applier: its first transaction recreates the table.
            let applier = NftApplier::in_netns(&ns.0);
            let t = Instant::now();
            applier.apply(&before).await?;
            full.push(ms(t));
            eprintln!("apply round {round}: full {:.0} ms", ms(t));
            let t = Instant::now();
            applier.apply(&after).await?;
            partial.push(ms(t));
            eprintln!("apply round {round}: after one change {:.0} ms", ms(t));
        }
        NftApplier::in_netns(&ns.0).cleanup().await?;
        (
            Some(median(full)),
            Some(median(partial)),
            format!("nft -f in network namespace {}", ns.0),
        )
    };

    let f = ProxyFigures {
        services: args.services,
        endpoints_per_service: args.endpoints,
        rounds,
        release_build: !cfg!(debug_assertions),
        rules,
        map_and_set_elements: elements,
        ruleset_bytes: before.to_string().len(),
        state_ms: median(state_t),
        generate_ms: median(gen_t),
        full_sync_compute_ms: median(full_t),
        full_transaction_bytes: full_bytes,
        partial_sync_compute_ms: median(partial_t),
        partial_transaction_bytes: partial_bytes,
        apply_rounds: args.apply_rounds.max(1),
        apply_full_ms,
        apply_partial_ms,
        apply_note,
    };
    if args.json {
        println!("{}", serde_json::to_string(&f)?);
        return Ok(());
    }
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
    let rows = [
        (
            "cluster",
            format!(
                "{} Services x {} endpoints ({} build, median of {})",
                f.services,
                f.endpoints_per_service,
                if f.release_build { "release" } else { "debug" },
                f.rounds
            ),
        ),
        (
            "ruleset",
            format!(
                "{} rules, {} map/set elements, {} bytes",
                f.rules, f.map_and_set_elements, f.ruleset_bytes
            ),
        ),
        (
            "full sync",
            format!(
                "{:.1} ms compute (state {:.1} ms, ruleset {:.1} ms), {} bytes to nft",
                f.full_sync_compute_ms, f.state_ms, f.generate_ms, f.full_transaction_bytes
            ),
        ),
        (
            "one-Service sync",
            format!(
                "{:.1} ms compute, {} bytes to nft",
                f.partial_sync_compute_ms, f.partial_transaction_bytes
            ),
        ),
        (
            "nft apply",
            format!(
                "full {}, after one change {} (median of {}; {})",
                opt(f.apply_full_ms),
                opt(f.apply_partial_ms),
                f.apply_rounds,
                f.apply_note
            ),
        ),
    ];
    for (name, value) in rows {
        println!("{name:<17} {value}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn objects_become_one_port_per_service() {
        let Ok((svcs, slices)) = objects(20, 3) else {
            panic!("building objects");
        };
        let s = state(&svcs, &slices);
        assert_eq!(s.services.len(), 20);
        assert!(s.services.iter().all(|p| p.endpoints.len() == 3));
        assert_eq!(
            s.services.iter().filter(|p| p.node_port.is_some()).count(),
            2
        );
        let ips: std::collections::BTreeSet<IpAddr> =
            s.services.iter().map(|p| p.cluster_ips[0]).collect();
        assert_eq!(ips.len(), 20);
    }
}
