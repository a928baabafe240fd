//! Who may use kuzet's own broker (service accounts, integrations, devices), the
//! credentials issued while it runs, and the road network kuzet ranks by.

use super::*;

/// The accounts and ACL of kuzet's own broker: the service accounts, the integrations and
/// every device (with a password from the registry file; the database holds none).
pub(super) fn broker_access(
    settings: &Settings,
    devices: &Devices,
    credentials: &HashMap<String, String>,
    issued: &std::collections::BTreeMap<String, String>,
) -> BrokerAccess {
    let m = &settings.mqtt;
    let mut accounts: Vec<(String, String)> =
        crate::brokerfiles::service_users(&m.username).map(|u| (u, m.password.expose().to_owned())).collect();
    let integrations = &settings.broker.integrations;
    accounts.extend(integrations.iter().map(|g| (g.username.clone(), g.password.expose().to_owned())));
    let mut devs: Vec<_> = credentials.iter().map(|(u, p)| (u.clone(), p.clone())).collect();
    devs.sort();
    accounts.extend(devs);
    // Only devices in the registry: a stale line for a removed device lets no one in.
    let known: std::collections::HashSet<&str> = device_ids(devices).collect();
    let hashed =
        issued.iter().filter(|(id, _)| known.contains(id.as_str())).map(|(i, h)| (i.clone(), h.clone()));
    BrokerAccess {
        accounts,
        hashed: hashed.collect(),
        acl: crate::brokerfiles::acl_with(devices, &m.username, integrations),
    }
}

pub(super) fn device_ids(devices: &Devices) -> impl Iterator<Item = &str> {
    devices
        .sites
        .iter()
        .flat_map(|s| s.buttons.iter().map(|b| b.id.as_str()))
        .chain(devices.units.iter().map(|u| u.id.as_str()))
        .chain(devices.cameras.iter().map(|c| c.id.as_str()))
}

/// How often kuzet looks for newly issued or rotated credentials.
const CREDENTIALS_POLL: Duration = Duration::from_secs(2);

/// Gives kuzet's broker every credential issued while it runs: a new device connects, and a
/// rotated password stops working, within seconds and without a restart.
pub(super) async fn watch_credentials(
    broker: Arc<ManagedBroker>,
    settings: Settings,
    devices: Devices,
    credentials: HashMap<String, String>,
) {
    let path = settings.registry.credentials_file.clone();
    let stamp = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.modified().ok(), m.len()));
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(CREDENTIALS_POLL);
    loop {
        tick.tick().await;
        if Arc::strong_count(&broker) == 1 {
            return; // kuzet stopped
        }
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match crate::credentials::read(&path) {
            Ok(issued) => {
                let mut creds = credentials.clone();
                creds.retain(|id, _| !issued.contains_key(id));
                let access = broker_access(&settings, &devices, &creds, &issued);
                match broker.reload(&access) {
                    Ok(()) => tracing::info!(issued = issued.len(), "broker credentials reloaded"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "cannot reload the broker's credentials")
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "credentials file unreadable; the broker keeps the last good one")
            }
        }
    }
}

/// No device or integration may sign in under one of kuzet's own names, nor two accounts
/// under one name: the broker's username is the identity.
pub(super) fn check_account_names(settings: &Settings, devices: &Devices) -> anyhow::Result<()> {
    let user = &settings.mqtt.username;
    let mut seen = std::collections::HashSet::new();
    for id in device_ids(devices).chain(settings.broker.integrations.iter().map(|g| g.username.as_str())) {
        anyhow::ensure!(
            !crate::brokerfiles::is_service_name(user, id),
            "account {id:?} takes a name of kuzet's own service account ({user}, {user}-...): rename it"
        );
        anyhow::ensure!(seen.insert(id), "two accounts are named {id:?}: broker usernames must be unique");
    }
    Ok(())
}

/// Loads the configured road network off the actor thread, or says once that ranking is by
/// straight line.
pub async fn load_roads(settings: &Settings) -> anyhow::Result<Option<Arc<RoadNetwork>>> {
    let Some(extract) = settings.roads.extract().map(|p| p.to_owned()) else {
        tracing::info!(
            "no road extract configured (roads.extract): units are ranked by straight-line distance"
        );
        return Ok(None);
    };
    let cache = settings.roads.cache_dir.clone();
    // A bar on a terminal, log lines in a service (kuzet_progress).
    let loaded = actix_rt::task::spawn_blocking(move || RoadNetwork::load(&extract, &cache, true))
        .await
        .context("road network loader failed")??;
    let (net, report) = loaded;
    tracing::info!(
        nodes = report.nodes,
        edges = report.edges,
        from_cache = report.from_cache,
        seconds = report.seconds,
        "road network loaded: units are ranked by drive time"
    );
    Ok(Some(Arc::new(net)))
}

/// Every device's broker credential from the registry (those that carry one).
pub fn device_credentials(devices: &Devices) -> HashMap<String, String> {
    let buttons = devices
        .sites
        .iter()
        .flat_map(|s| &s.buttons)
        .filter_map(|b| Some((b.id.to_string(), b.password.clone()?)));
    let units = devices.units.iter().filter_map(|u| Some((u.id.to_string(), u.password.clone()?)));
    let cameras = devices.cameras.iter().filter_map(|c| Some((c.id.to_string(), c.password.clone()?)));
    buttons.chain(units).chain(cameras).collect()
}
