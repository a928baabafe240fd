//! `kuzet roads`: the car graph of an extract as CSV, and drive times between its nodes.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::init_logs;

#[derive(Subcommand)]
pub enum RoadsCommand {
    /// Write nodes.csv, edges.csv and ways.csv of the car graph built from an extract.
    Export(ExportArgs),
    /// Travel times between node pairs (CSV `from,to` of node indices) as CSV on stdout.
    Times(TimesArgs),
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub extract: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct TimesArgs {
    #[arg(long)]
    pub extract: PathBuf,
    #[arg(long)]
    pub pairs: PathBuf,
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

pub async fn run(command: RoadsCommand) -> anyhow::Result<()> {
    match command {
        RoadsCommand::Export(args) => export(args).await,
        RoadsCommand::Times(args) => times(args).await,
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs { extract, out } = args;
    let (nodes, edges) = kuzet::roads::export(&extract, &out)?;
    eprintln!("wrote {}: {nodes} nodes, {edges} edges", out.display());
    Ok(())
}

async fn times(args: TimesArgs) -> anyhow::Result<()> {
    let TimesArgs { extract, pairs, cache_dir } = args;
    init_logs("warn");
    let cache = cache_dir.unwrap_or_else(kuzet::roads::default_cache_dir);
    let (net, _) = kuzet::roads::RoadNetwork::load(&extract, &cache, false)?;
    let text = std::fs::read_to_string(&pairs).with_context(|| format!("cannot read {}", pairs.display()))?;
    let mut out = String::from("from,to,time_ms\n");
    for (n, line) in text.lines().enumerate().skip(1) {
        let parsed = line
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
        let (from, to) =
            parsed.with_context(|| format!("{}:{}: expected from,to", pairs.display(), n + 1))?;
        anyhow::ensure!(
            (from.max(to) as usize) < net.graph().node_count(),
            "{}:{}: node out of range",
            pairs.display(),
            n + 1
        );
        let time = net.node_time(from, to).map(|(ms, _)| ms.to_string()).unwrap_or_default();
        out.push_str(&format!("{from},{to},{time}\n"));
    }
    print!("{out}");
    Ok(())
}
