//! `skiff hollow-nodes`: N simulated nodes in one process (like kubemark
//! and kwok) against any API server, for scale tests and benchmarks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::server::wait_for_signal;

#[derive(clap::Args)]
pub struct HollowNodesArgs {
    /// How many nodes to simulate.
    #[arg(long)]
    pub count: usize,
    /// The API server's URL (default: the kubeconfig's).
    #[arg(long)]
    pub server: Option<String>,
    /// Credentials (default: `$KUBECONFIG`, `~/.kube/config`, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// `status.capacity.pods` of each node.
    #[arg(long, default_value_t = 110)]
    pub pods_per_node: u32,
    /// From a pod accepted to Running and Ready (`1s`, `500ms`, `0`).
    #[arg(long, default_value = "1s", value_parser = parse_delay)]
    pub startup_delay: Duration,
    /// Nodes are named `<prefix>-<i>`.
    #[arg(long, default_value = "hollow-node")]
    pub name_prefix: String,
    /// Nodes are spread over this many zones (`topology.kubernetes.io/zone`).
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    /// Claim pod CIDRs (node i takes the i-th /24 of this range) instead of
    /// waiting for the node IPAM controller, whose 10.42.0.0/16 holds only
    /// 256 nodes.
    #[arg(long)]
    pub claim_pod_cidrs: Option<String>,
    /// API writes in flight at once, across all nodes.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// `500ms`, `1s`, `2m` or `0`.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (examples: 500ms, 1s, 2m, 0)");
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let number: f64 = text[..split].parse().map_err(|_| bad())?;
    let unit = match &text[split..] {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs_f64(number * unit))
}

/// A client from `kubeconfig` (or the usual inference), pointed at
/// `server` when given.
pub async fn client(
    kubeconfig: Option<&Path>,
    server: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let mut config = crate::server::config_from(kubeconfig).await?;
    if let Some(server) = server {
        config.cluster_url = server
            .parse()
            .with_context(|| format!("invalid --server {server:?}"))?;
    }
    kube::Client::try_from(config).context("building the API client")
}

impl HollowNodesArgs {
    pub fn config(&self, client: kube::Client) -> skiff_hollow::Config {
        let mut config = skiff_hollow::Config::new(client, self.count);
        config.pods_per_node = self.pods_per_node;
        config.startup_delay = self.startup_delay;
        config.name_prefix = self.name_prefix.clone();
        config.zones = self.zones;
        config.claim_pod_cidrs = self.claim_pod_cidrs.clone();
        config.concurrency = self.concurrency;
        config
    }
}

pub async fn run(args: HollowNodesArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_deref(), args.server.as_deref()).await?;
    let shutdown = CancellationToken::new();
    let mut running = tokio::spawn(skiff_hollow::run(args.config(client), shutdown.clone()));
    tokio::select! {
        () = wait_for_signal() => {
            tracing::info!("shutting down");
            shutdown.cancel();
            (&mut running).await??;
        }
        result = &mut running => result??,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert_eq!(parse_delay("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_delay("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_delay("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_delay("fast").is_err());
        assert!(parse_delay("3h").is_err());
    }
}
