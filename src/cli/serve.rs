//! `kuzet serve`: the service, until Ctrl-C or SIGTERM, with a status line every minute (and,
//! with `metrics.listen`, the same counters and more for Prometheus at any time).

use std::path::PathBuf;
use std::time::Duration;

use kuzet::registry_file;
use kuzet::settings::Settings;
use kuzet::startup::Application;

use super::init_logs;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs { config } = args;
    let settings = Settings::load(config.as_deref())?;
    init_logs(&settings.log.filter);
    // With a database, devices may live there alone (imported); the file is optional.
    let file = &settings.registry.file;
    let devices = if file.as_os_str().is_empty() { Default::default() } else { registry_file::load(file)? };
    let app = Application::build(settings, devices).await?;
    if !app.wait_ready(Duration::from_secs(10)).await {
        tracing::warn!("broker not reachable yet; retrying in the background");
    }
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut counters = app.metrics().snapshot();
                counters.extend(app.fanout().snapshot());
                if let Some(w) = app.writer() {
                    counters.extend(w.stats().snapshot());
                }
                if let Some(v) = app.watch() {
                    counters.extend(v.matcher.stats.snapshot());
                }
                tracing::info!(?counters, "status");
            }
            _ = kuzet::startup::shutdown_signal() => break,
        }
    }
    app.stop().await;
    Ok(())
}
