//! `kuzet-sim`: only the simulated devices of a city, against a running broker and kuzet
//! (load tests).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use kuzet::settings::parse_mqtt_url;
use kuzet_tools::cli::{init_logs, until_stopped, CityArgs};
use kuzet_tools::sim;

/// Run only the simulated devices of a city against a broker (load tests).
#[derive(Parser)]
#[command(name = "kuzet-sim", version)]
struct Cli {
    /// mqtt://host:port of the broker kuzet listens on.
    #[arg(long)]
    broker: String,
    /// Write the city's device registry here first (for the kuzet serving the sim).
    #[arg(long)]
    write_registry: Option<PathBuf>,
    #[arg(long)]
    duration: Option<u64>,
    #[command(flatten)]
    city: CityArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    actix::System::new().block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { broker, write_registry, duration, city } = cli;
    init_logs("info");
    let (host, port) = parse_mqtt_url(&broker)?;
    let plan = city.plan();
    let devices = sim::city(&plan);
    if let Some(path) = write_registry {
        std::fs::write(&path, kuzet::registry_file::to_toml(&devices)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(path = %path.display(), "device registry written");
    }
    if duration == Some(0) {
        return Ok(());
    }
    let _tasks = sim::run_city(&host, port, &devices, &plan, city.behaviour(), None).await?;
    until_stopped(duration).await;
    Ok(())
}
