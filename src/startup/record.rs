//! Opening the record at start: the database (or, while it is away, the local copy), the
//! devices it holds and what to pick up.

use super::*;

/// The record as kuzet starts: the writer, the devices and what to pick up.
pub(super) struct Record {
    pub(super) writer: WriterHandle,
    pub(super) pool: sqlx::PgPool,
    pub(super) devices: Devices,
    pub(super) restored: Restored,
    /// Cameras' open alerts: the pages start from them, and each camera from its state.
    pub(super) alerts: Vec<kuzet_actors::outbound::IntegrityAlert>,
    /// Started with the database (not from the local copy).
    pub(super) database_up: bool,
}

/// Connects to the database, writes what an earlier run left in the spool, registers the
/// registry file's devices, and reads back every device and what was going on. When the
/// database does not answer within `FIRST_CONNECT`, starts from the local copy instead.
pub(super) async fn open_record(settings: &Settings, url: &str, devices: &Devices) -> anyhow::Result<Record> {
    let pool = crate::store::lazy_pool(url, settings.database.pool_size, ACQUIRE_TIMEOUT)?;
    let config = WriterConfig {
        url: url.to_owned(),
        spool_dir: settings.database.spool_dir.clone(),
        batch_max: settings.database.batch_max,
        queue: settings.database.queue,
    };
    let actor = format!("registry:{}", settings.registry.file.display()).replace('|', "/");
    let why = match tokio::time::timeout(FIRST_CONNECT, pool.acquire()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) if tls_refused(&e) => {
            return Err(e).context(
                "cannot connect to the database over TLS: check sslmode, sslrootcert and the host name in database.url",
            )
        }
        Ok(Err(e)) if writer::unreachable(&e) => Some(e.to_string()),
        // Refused for another reason (a wrong password, no such database): a setting to fix.
        Ok(Err(e)) => return Err(e).context("cannot connect to the database"),
        Err(_) => Some(format!("no connection within {} s", FIRST_CONNECT.as_secs())),
    };
    if let Some(why) = why {
        pool.close().await;
        return open_local(settings, url, devices, config, actor, &why).await;
    }
    match settings.database.owner_url() {
        Some(owner) => crate::store::migrate_for(owner, &pool).await?,
        None => crate::store::migrate(&pool).await?,
    }
    crate::store::warn_if_audit_rewritable(&pool).await;
    let kind = if settings.demo { Kind::Demo } else { Kind::Live };
    crate::store::deployment::claim(&pool, kind).await?;
    let writer = writer::start(config).await?;
    if !devices.sites.is_empty() || !devices.units.is_empty() || !devices.cameras.is_empty() {
        let report =
            crate::store::devices::sync(&pool, devices, &actor).await.context("cannot register devices")?;
        tracing::info!(?report, "registry file written to the database");
    }
    let devices = crate::store::devices::load(&pool).await.context("cannot load devices")?;
    let (restored, written) =
        crate::store::restore::load(&pool, settings.dispatch.position_max_age()).await?;
    let alerts = crate::store::restore::open_camera_alerts(&pool, &devices).await?;
    writer.seed(written, LocalState::from_restored(&devices, &restored, &alerts)).await;
    Ok(Record { writer, pool, devices, restored, alerts, database_up: true })
}

/// TLS to the database failed for a reason waiting will not cure: the CA file is missing or
/// bad, the server speaks no TLS, or its certificate does not verify (a setting to fix, or
/// someone in the middle). kuzet then refuses to start rather than run from its local copy.
fn tls_refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_))),
        _ => false,
    }
}

/// Starts without the database: from the local copy the writer keeps in the spool folder (or
/// the registry file alone), with the spool applied on top; the writer records to the spool
/// and catches the database up when it answers.
pub(super) async fn open_local(
    settings: &Settings,
    url: &str,
    file: &Devices,
    config: WriterConfig,
    actor: String,
    why: &str,
) -> anyhow::Result<Record> {
    let dir = config.spool_dir.clone();
    let local = actix_rt::task::spawn_blocking(move || LocalState::load(&dir))
        .await
        .context("cannot read the local copy")??;
    let copy = dir_display(&config.spool_dir);
    let state = match local {
        Some(mut s) => {
            let age_s = (chrono::Utc::now() - s.saved_at).num_seconds();
            tracing::error!(error = why, local_copy = %copy, saved_at = %s.saved_at, age_s,
                incidents = s.incidents.len(), "database unreachable at start: kuzet starts from its local copy \
                 and records to the spool until the database is back");
            s.devices = state::merge_devices(&s.devices, file);
            s
        }
        None => {
            tracing::error!(error = why, local_copy = %copy,
                "database unreachable at start and no local copy: kuzet starts from the registry file alone, \
                 with nothing restored, and records to the spool until the database is back");
            LocalState::empty(file)
        }
    };
    state.devices.validate().context("devices of the local copy")?;
    let catchup = writer::Catchup { registry: file.clone(), actor };
    let (writer, state) = writer::start_offline(config, state, catchup).await?;
    let (restored, written) = state.restored(settings.dispatch.position_max_age());
    writer.seed(written, state.clone()).await;
    tracing::info!(
        incidents = restored.incidents.len(),
        orphans = restored.orphans.len(),
        positions = restored.positions.len(),
        "restored from the local copy"
    );
    // For the query API: its routes answer 503 until the database is back.
    let pool = crate::store::lazy_pool(url, settings.database.pool_size, ACQUIRE_TIMEOUT_OFFLINE)?;
    let alerts = state.open_alerts();
    Ok(Record { writer, pool, devices: state.devices.clone(), restored, alerts, database_up: false })
}

pub(super) fn dir_display(dir: &std::path::Path) -> String {
    dir.join(state::FILE).display().to_string()
}
