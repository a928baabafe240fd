//! `kuzet import devices`: a GeoJSON file's sites and devices into the database, all or nothing.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::init_logs;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Sites, buttons, units and cameras from a GeoJSON FeatureCollection (docs/operations.md).
    /// Checked whole before anything is written: a bad feature is reported with its index and
    /// nothing is imported.
    Devices(DevicesArgs),
}

#[derive(clap::Args)]
pub struct DevicesArgs {
    pub file: PathBuf,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

pub async fn run(command: ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::Devices(args) => devices(args).await,
    }
}

async fn devices(args: DevicesArgs) -> anyhow::Result<()> {
    let DevicesArgs { file, database_url } = args;
    init_logs("warn");
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let pool = kuzet::store::connect(&database_url).await?;
    let name = file.file_name().map(|n| n.to_string_lossy().replace('|', "_")).unwrap_or_default();
    match kuzet::store::devices::import_geojson(&pool, &text, &format!("import:{name}"), true).await {
        Ok(r) => println!(
            "imported {} features: {} sites, {} buttons, {} units, {} cameras ({} new, {} updated)",
            r.features, r.sites, r.buttons, r.units, r.cameras, r.new, r.updated
        ),
        Err(e) => {
            eprintln!("{}: {e}; nothing was imported", file.display());
            std::process::exit(1);
        }
    }
    Ok(())
}
