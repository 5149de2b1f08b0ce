//! The `skiff` binary: parses flags and composes the components.

mod agent;
mod bench;
mod dns;
mod hollow;
mod identity;
mod images;
mod server;
mod token;

use clap::{Parser, Subcommand};

/// jemalloc with background purging hands freed memory back to the system
/// (glibc keeps the peak of startup and of bursts), which keeps the
/// server's resident memory close to what it really holds.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "A Kubernetes-compatible cluster in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a server: the store, the API server and, as they exist, the
    /// other components.
    Server(server::ServerArgs),
    /// Run the API server alone (same flags as `server`).
    Apiserver(server::ServerArgs),
    /// Run the controller manager alone against an API server.
    ControllerManager(server::ControllerManagerArgs),
    /// Run the scheduler alone against an API server.
    Scheduler(server::SchedulerArgs),
    /// Run a node agent (containerd + kubelet + kube-proxy) against an API server.
    Agent(agent::AgentArgs),
    /// Run kube-proxy (nftables) alone, or remove its rules (`--cleanup`).
    Proxy(agent::ProxyArgs),
    /// Simulate N nodes (kubemark/kwok-like) against an API server.
    HollowNodes(hollow::HollowNodesArgs),
    /// Measure the speed of a component.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Import image archives into the node's containerd; build the
    /// built-in offline images.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// Manage bootstrap tokens that let nodes join (`skiff agent --token`).
    #[command(subcommand)]
    Token(token::TokenCommand),
}

fn main() -> anyhow::Result<()> {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    // hickory-server logs every DNS query at info: quiet unless asked for.
    let directives = if directives.contains("hickory") {
        directives
    } else {
        format!("{directives},hickory_server=warn")
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %e, "jemalloc background purging unavailable");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Commands::Server(args) => server::run(args, server::Role::Server).await,
            Commands::Apiserver(args) => server::run(args, server::Role::ApiServer).await,
            Commands::ControllerManager(args) => server::run_controller_manager(args).await,
            Commands::Scheduler(args) => server::run_scheduler(args).await,
            Commands::Agent(args) => agent::run(args).await,
            Commands::Proxy(args) => agent::run_proxy(args).await,
            Commands::HollowNodes(args) => hollow::run(args).await,
            Commands::Bench(command) => bench::run(command).await,
            Commands::Images(command) => images::run(command).await,
            Commands::Token(command) => token::run(command).await,
        }
    })
}
