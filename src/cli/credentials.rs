//! `kuzet credentials issue`: devices' broker passwords, printed once and kept as hashes.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use kuzet::registry_file;
use kuzet::settings::Settings;

use super::init_logs;

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Issue a new broker password (128 random bits) to devices, or rotate one: printed once
    /// as `id password` lines, kept only as a hash in registry.credentials_file. A running
    /// kuzet's broker takes it within seconds; the device's earlier password stops working.
    Issue(IssueArgs),
}

#[derive(clap::Args)]
pub struct IssueArgs {
    /// Devices to issue to (repeat the option).
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// Every device of the registry (file, and database when given) with no password yet.
    #[arg(long)]
    pub missing: bool,
    /// Who issues them, for the audit log (with --database-url).
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn run(command: CredentialsCommand) -> anyhow::Result<()> {
    match command {
        CredentialsCommand::Issue(args) => issue(args).await,
    }
}

async fn issue(args: IssueArgs) -> anyhow::Result<()> {
    let IssueArgs { ids, missing, by, database_url, config } = args;
    init_logs("warn");
    let settings = Settings::load(config.as_deref())?;
    let file = &settings.registry.file;
    let mut devices =
        if file.as_os_str().is_empty() { Default::default() } else { registry_file::load(file)? };
    let pool = match &database_url {
        Some(url) => Some(kuzet::store::connect(url).await?),
        None => None,
    };
    if let Some(pool) = &pool {
        let stored = kuzet::store::devices::load(pool).await?;
        devices.sites.extend(stored.sites);
        devices.units.extend(stored.units);
        devices.cameras.extend(stored.cameras);
    }
    let all: std::collections::BTreeMap<String, bool> = devices
        .sites
        .iter()
        .flat_map(|s| s.buttons.iter().map(|b| (b.id.to_string(), b.password.is_some())))
        .chain(devices.units.iter().map(|u| (u.id.to_string(), u.password.is_some())))
        .chain(devices.cameras.iter().map(|c| (c.id.to_string(), c.password.is_some())))
        .collect();
    let path = &settings.registry.credentials_file;
    let issued = kuzet::credentials::read(path)?;
    let mut wanted = Vec::new();
    for id in &ids {
        anyhow::ensure!(all.contains_key(id), "no device {id} in the registry (file or --database-url)");
        wanted.push(id.clone());
    }
    if missing {
        wanted.extend(
            all.iter().filter(|(id, has)| !**has && !issued.contains_key(*id)).map(|(id, _)| id.clone()),
        );
    }
    wanted.sort();
    wanted.dedup();
    anyhow::ensure!(!wanted.is_empty() || missing, "name devices with --id, or use --missing");
    let out = kuzet::credentials::issue(path, &wanted)?;
    if let Some(pool) = &pool {
        let by = by.as_deref().context("--by is required with --database-url (for the audit log)")?;
        for (id, _) in &out {
            kuzet::store::audit::append(
                pool,
                &format!("user:{by}"),
                "credentials.issue",
                Some(id),
                &serde_json::json!({"file": path.display().to_string()}),
            )
            .await?;
        }
    }
    for (id, password) in &out {
        println!("{id} {password}");
    }
    eprintln!(
        "issued {} credential(s) into {}; each password is shown only now: give it to its device",
        out.len(),
        path.display()
    );
    Ok(())
}
