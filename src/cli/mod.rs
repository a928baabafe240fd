//! The `kuzet` commands, one module per command group; `main.rs` parses the command line and
//! hands each command to its module.

pub mod audit;
pub mod broker_files;
pub mod certs;
pub mod credentials;
pub mod import;
pub mod migrate;
pub mod roads;
pub mod serve;
pub mod users;
pub mod watchlist;

/// Logs to stderr, filtered by `RUST_LOG` or else `filter`.
pub fn init_logs(filter: &str) {
    // Long work's progress lines (kuzet_progress, off a terminal) show whatever the level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{filter},kuzet::progress=info")));
    // Logs on stderr: stdout is what a command answers (an import's count, an issued password).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .compact()
        .with_writer(std::io::stderr)
        .init();
}
