//! `kuzet migrate`: the schema applied as its owner, and the grants of the role kuzet serves as.

use super::init_logs;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The owner's URL: the role that owns (and makes) the schema's tables.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The role `kuzet serve` connects as (database.url); it must exist. Without it, the
    /// migrations only.
    #[arg(long)]
    pub app_role: Option<String>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let MigrateArgs { database_url, app_role } = args;
    init_logs("info");
    kuzet::store::migrate_as_owner(&database_url, app_role.as_deref()).await?;
    match app_role {
        Some(role) => {
            println!("schema up to date; {role} may append to the audit log, not change it")
        }
        None => println!("schema up to date"),
    }
    Ok(())
}
