//! `skiff bench`: measurements recorded in BENCHMARKS.md. Not tests: numbers
//! depend on the machine, so they are printed, never asserted.

mod api;
mod stats;
mod store;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Store throughput and watch latency, per backend.
    Store(store::StoreBenchArgs),
    /// API server throughput, list latency, watch fan-out and memory.
    Api(api::ApiBenchArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Store(args) => store::run(args).await,
        BenchCommand::Api(args) => api::run(args).await,
    }
}
