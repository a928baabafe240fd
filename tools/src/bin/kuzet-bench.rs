//! `kuzet-bench`: the benchmarks (BENCHMARKS.md), each with a private broker of its own.

use clap::Parser;
use kuzet_tools::bench::{self, BenchArgs};
use kuzet_tools::cli::init_logs;

/// Measure alarm -> offer latency through a broker beside the raw broker round trip.
#[derive(Parser)]
#[command(name = "kuzet-bench", version)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs("warn");
    // The position load generator the mqtt suite starts: its own runtime, no actors.
    if let Some(spec) = &cli.args.load_child {
        return bench::load::run_child(spec);
    }
    actix::System::new().block_on(bench::run(cli.args))
}
