//! The kuzet command line. Thin: parses arguments and hands each command to its module in
//! `cli/`, which calls the library.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kuzet", version, about = "Real-time alerting and dispatch for a city's police")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run kuzet with the settings file and the device registry it names.
    Serve(cli::serve::ServeArgs),
    /// Write Mosquitto credentials and ACL for the devices of a registry.
    BrokerFiles(cli::broker_files::BrokerFilesArgs),
    /// The road network: export it, or compute travel times between its nodes.
    #[command(subcommand)]
    Roads(cli::roads::RoadsCommand),
    /// Apply the schema migrations as the database's owner and grant the role `kuzet serve`
    /// connects as what it needs: it may append to the audit log, never change or delete it.
    Migrate(cli::migrate::MigrateArgs),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// The watchlist of wanted persons.
    #[command(subcommand)]
    Watchlist(cli::watchlist::WatchlistCommand),
    /// The people who sign in to the console, the oversight view and the tablets.
    #[command(subcommand)]
    User(cli::users::UserCommand),
    /// Import into the database.
    #[command(subcommand)]
    Import(cli::import::ImportCommand),
    /// Devices' broker passwords.
    #[command(subcommand)]
    Credentials(cli::credentials::CredentialsCommand),
    /// A private CA (made once, kept) and a server certificate it signs, for kuzet's broker,
    /// HTTPS or PostgreSQL: DIR/ca.crt for clients, DIR/NAME.crt and DIR/NAME.key for the server.
    Certs(cli::certs::CertsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    actix::System::new().block_on(async move {
        match cli.command {
            Command::Serve(args) => cli::serve::run(args).await,
            Command::BrokerFiles(args) => cli::broker_files::run(args),
            Command::Roads(command) => cli::roads::run(command).await,
            Command::Migrate(args) => cli::migrate::run(args).await,
            Command::Audit(command) => cli::audit::run(command).await,
            Command::Watchlist(command) => cli::watchlist::run(command).await,
            Command::User(command) => cli::users::run(command).await,
            Command::Import(command) => cli::import::run(command).await,
            Command::Credentials(command) => cli::credentials::run(command).await,
            Command::Certs(args) => cli::certs::run(args),
        }
    })
}
