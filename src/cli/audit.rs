//! `kuzet audit verify`: the audit log's hash chain, and the signed checkpoints when given.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::init_logs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain; exit 1 naming the first row that was edited,
    /// removed or inserted out of order. With the checkpoints kuzet signed (audit.checkpoint_file)
    /// and their public key, also a log rewritten and rehashed by a database superuser, or cut
    /// short, is found: exit 1 naming the first checkpoint it no longer matches.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The checkpoint file (one signed JSON line each).
    #[arg(long, requires = "public_key")]
    pub checkpoints: Option<PathBuf>,
    /// The checkpoints' Ed25519 public key, PEM (the key file's `.pub`, from a copy kept
    /// away from the database's host).
    #[arg(long, requires = "checkpoints")]
    pub public_key: Option<PathBuf>,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let VerifyArgs { database_url, checkpoints, public_key } = args;
    init_logs("warn");
    // Read first: a missing file is an operator's mistake, not a verdict on the log.
    let anchors = match (checkpoints, public_key) {
        (Some(file), Some(key)) => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            Some((file, text, kuzet::store::checkpoint::read_public_key(&key)?))
        }
        _ => None,
    };
    let pool = kuzet::store::connect(&database_url).await?;
    let v = kuzet::store::audit::verify(&pool).await?;
    let mut broken = false;
    match v.first_break {
        None => println!("audit log: {} rows, chain intact", v.rows),
        Some(b) => {
            println!("audit log: chain broken at row {}: {b}", b.seq);
            broken = true;
        }
    }
    if let Some((file, text, key)) = anchors {
        let r = kuzet::store::checkpoint::verify(&pool, &text, &key).await?;
        match r.first_failure {
            Some(f) => {
                println!("checkpoints: {}: {f}", file.display());
                broken = true;
            }
            None if r.held == 0 => {
                println!("checkpoints: {} holds no checkpoint", file.display());
                broken = true;
            }
            None => {
                println!("checkpoints: {} signed checkpoints hold, the last at row {}", r.held, r.last_seq)
            }
        }
    }
    if broken {
        std::process::exit(1);
    }
    Ok(())
}
