//! The demo: kuzet with its own broker and a simulated city around it, one unit and one button
//! left for a person to drive by hand, a user per role, and cameras when their files are there.

use std::path::PathBuf;
use std::time::Duration;

use kuzet::auth::Role;
use kuzet::settings::{Integration, Secret, Settings};
use kuzet::startup::Application;
use kuzet_actors::geo::GeoPoint;
use kuzet_actors::ids::{ButtonId, UnitId};
use kuzet_actors::spec::{ButtonSpec, UnitSpec};

use crate::cli::{init_logs, until_stopped, CityArgs};
use crate::{demo_cameras, sim};

/// The unit the demo's officer signs in to on the tablet page.
const DEMO_TABLET_UNIT: &str = "unit-tablet";
/// Every demo user's password (the demo database only).
const DEMO_PASSWORD: &str = "kuzet-demo-password";
/// The demo's button pressed by hand.
const DEMO_BUTTON: &str = "btn-demo";
const DEMO_BUTTON_PASSWORD: &str = "kuzet-demo-button";
/// The demo broker's read-only account for watching its traffic.
const DEMO_WATCHER: &str = "watcher";
const DEMO_WATCHER_PASSWORD: &str = "kuzet-demo-watcher";

/// Run kuzet with its own broker and a simulated city around it.
#[derive(clap::Parser, Debug)]
#[command(name = "kuzet-demo", version)]
pub struct DemoArgs {
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    #[command(flatten)]
    pub city: CityArgs,
}

/// Runs the demo until `--duration` or a shutdown signal.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs { config, duration, city } = args;
    let settings = Settings::load(config.as_deref())?;
    init_logs(&settings.log.filter);
    let roads = kuzet::startup::load_roads(&settings).await?;
    let plan = city.plan_on(roads.as_deref());
    let mut devices = sim::city_on(&plan, roads.as_deref());
    let mut settings = settings;
    settings.demo = true;
    // A read-only account to watch the demo's traffic with mosquitto_sub.
    settings.broker.integrations.push(Integration {
        username: DEMO_WATCHER.into(),
        password: Secret::new(DEMO_WATCHER_PASSWORD),
        read: vec!["kuzet/v1/#".into()],
        write: Vec::new(),
    });
    // Cameras when the models, the photos and kuzet-camsim are there; the rest of the
    // demo runs without them.
    let cameras = if settings.vision.enabled {
        let near: Vec<GeoPoint> = devices.sites.iter().map(|s| s.location).collect();
        match demo_cameras::start(&near) {
            Ok(c) => {
                devices.cameras.extend(c.cameras.iter().cloned());
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "demo without cameras");
                settings.vision.enabled = false;
                None
            }
        }
    } else {
        None
    };
    // One unit more than the simulation drives: the officer's tablet page in a browser.
    let mut served = devices.clone();
    served.units.push(UnitSpec {
        id: UnitId::parse(DEMO_TABLET_UNIT)?,
        callsign: "TABLET-1".into(),
        password: Some("kuzet-demo-tablet".into()),
    });
    // And one button no simulated device presses, at the first school, to press by hand
    // (the broker ties a client id to its username: a driven device's account would be
    // taken back by the simulation).
    if let Some(site) = served.sites.first_mut() {
        site.buttons.push(ButtonSpec {
            id: ButtonId::parse(DEMO_BUTTON)?,
            room: Some("by hand".into()),
            password: Some(DEMO_BUTTON_PASSWORD.into()),
        });
    }
    let app = Application::build_with_roads(settings, served, roads.clone()).await?;
    demo_users(&app).await?;
    if cameras.is_some() {
        match demo_cameras::enrol(&app).await {
            Ok(()) => tracing::info!(
                "cameras: cam-demo-1 sees a person on the watchlist, cam-demo-2 a passer-by, \
                 cam-demo-3 (custodial) gets its lens covered"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "watchlist not enrolled: cameras find no one")
            }
        }
    }
    anyhow::ensure!(app.wait_ready(Duration::from_secs(10)).await, "kuzet did not connect to its broker");
    let (host, port) = app.broker();
    tracing::info!(schools = plan.schools, units = plan.units, broker = %format!("{host}:{port}"),
        "demo city starting: watch the incident steps below; Ctrl-C to stop");
    tracing::info!(
        "the demo's MQTT traffic: mosquitto_sub -h {host} -p {port} -u {DEMO_WATCHER} -P {DEMO_WATCHER_PASSWORD} -v -t 'kuzet/v1/#'"
    );
    let _tasks = sim::run_city(host, port, &devices, &plan, city.behaviour(), roads).await?;
    until_stopped(duration).await;
    tracing::info!(counters = ?app.metrics().snapshot(), "demo finished");
    app.stop().await;
    drop(cameras);
    Ok(())
}

/// Users for the demo's pages, one per role; the officer is bound to the tablet unit.
async fn demo_users(app: &Application) -> anyhow::Result<()> {
    let Some(pool) = app.pool() else {
        tracing::warn!("no database: the demo's pages have no users to sign in with");
        return Ok(());
    };
    for (name, role) in [
        ("dispatcher", Role::Dispatcher),
        ("supervisor", Role::Supervisor),
        ("oversight", Role::Oversight),
        ("officer", Role::Officer),
    ] {
        let unit = (role == Role::Officer).then_some(DEMO_TABLET_UNIT);
        kuzet::auth::add_user(pool, name, role, unit, DEMO_PASSWORD, "demo").await?;
    }
    let base = app.http_addr().map(|a| format!("http://localhost:{}", a.port())).unwrap_or_default();
    tracing::info!(
        "console {base}/console/ (dispatcher), oversight {base}/oversight/ (oversight), tablet {base}/tablet/ \
         (officer, unit {DEMO_TABLET_UNIT}; allow the location): password {DEMO_PASSWORD}"
    );
    Ok(())
}
