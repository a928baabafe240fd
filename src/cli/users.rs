//! `kuzet user add` and `disable`: the users of the console, the oversight view and the
//! tablets; audited.

use anyhow::Context as _;
use clap::Subcommand;

use super::init_logs;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user, or give an existing one a new password and role (their sessions end). The
    /// password is read from standard input (one line, 12 characters or more), so it never
    /// shows in the process list: `printf '%s\n' "$PW" | kuzet user add ...`. Audited.
    Add(AddArgs),
    /// Disable a user: their sessions end (an open console or oversight view closes within a
    /// few seconds) and they cannot sign in until given a password again with `user add`.
    /// Audited.
    Disable(DisableArgs),
}

#[derive(clap::Args)]
pub struct DisableArgs {
    #[arg(long)]
    pub username: String,
    /// Who disables the user, for the audit log.
    #[arg(long)]
    pub by: String,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[arg(long)]
    pub username: String,
    /// dispatcher, supervisor, oversight or officer.
    #[arg(long)]
    pub role: String,
    /// The unit an officer signs in as (officers only).
    #[arg(long)]
    pub unit: Option<String>,
    /// Who adds the user, for the audit log.
    #[arg(long)]
    pub by: String,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => add(args).await,
        UserCommand::Disable(args) => disable(args).await,
    }
}

async fn disable(args: DisableArgs) -> anyhow::Result<()> {
    let DisableArgs { username, by, database_url } = args;
    init_logs("warn");
    let pool = kuzet::store::connect(&database_url).await?;
    if kuzet::auth::disable_user(&pool, &username, &format!("user:{by}")).await? {
        println!("disabled {username}");
        Ok(())
    } else {
        anyhow::bail!("no user {username}")
    }
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    let AddArgs { username, role, unit, by, database_url } = args;
    init_logs("warn");
    let role = kuzet::auth::Role::parse(&role)
        .with_context(|| format!("--role {role:?}: dispatcher, supervisor, oversight or officer"))?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !kuzet::settings::is_published(password),
        "that password is published (kuzet's demo uses it): choose another"
    );
    let pool = kuzet::store::connect(&database_url).await?;
    let created =
        kuzet::auth::add_user(&pool, &username, role, unit.as_deref(), password, &format!("user:{by}"))
            .await?;
    println!("{} {username} ({})", if created { "added" } else { "updated" }, role.as_str());
    Ok(())
}
