//! `skiff bench`: measurements recorded in BENCHMARKS.md. Not tests: numbers
//! depend on the machine, so they are printed, never asserted.

mod api;
mod cluster;
mod controllers;
mod dns;
mod pod_startup;
mod proxy;
mod scheduler;
mod server;
mod stats;
mod store;
mod streaming;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Store throughput and watch latency, per backend.
    Store(store::StoreBenchArgs),
    /// API server throughput, list latency, watch fan-out and memory.
    Api(api::ApiBenchArgs),
    /// Pod start-up latency on a real node (needs root, containerd, runc,
    /// CNI plugins) and the node's memory.
    PodStartup(pod_startup::PodStartupBenchArgs),
    /// `kubectl exec` round trips and `kubectl port-forward` throughput on
    /// a real node (needs root).
    Streaming(streaming::StreamingBenchArgs),
    /// Time for the controller manager to create every ReplicaSet and pod
    /// of N Deployments, and its memory and CPU.
    Controllers(controllers::ControllersBenchArgs),
    /// The whole control plane with N hollow nodes: time until M pods are
    /// Ready, API and pod start-up latency, the server's memory and CPU.
    Cluster(cluster::ClusterBenchArgs),
    /// Cluster DNS queries/s and latency with many Services, and the DNS
    /// server's CPU time (queries/s per core).
    Dns(dns::DnsBenchArgs),
    /// kube-proxy sync cost with N Services x M endpoints (as root, also
    /// `nft -f` in a private network namespace).
    Proxy(proxy::ProxyBenchArgs),
    /// Scheduling throughput and latency: a `skiff scheduler` child, N
    /// fake nodes, M pods (basic, affinity, spread or preemption), and the
    /// scheduler's memory and CPU.
    Scheduler(scheduler::SchedulerBenchArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Store(args) => store::run(args).await,
        BenchCommand::Api(args) => api::run(args).await,
        BenchCommand::PodStartup(args) => pod_startup::run(args).await,
        BenchCommand::Streaming(args) => streaming::run(args).await,
        BenchCommand::Dns(args) => dns::run(args).await,
        BenchCommand::Controllers(args) => controllers::run(args).await,
        BenchCommand::Proxy(args) => proxy::run(args).await,
        BenchCommand::Cluster(args) => cluster::run(args).await,
        BenchCommand::Scheduler(args) => scheduler::run(args).await,
    }
}
