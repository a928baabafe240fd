//! What the tools' command lines share: the simulated city's options, logging, and when to
//! stop (Ctrl-C, SIGTERM or `--duration`).

use std::time::Duration;

use kuzet::roads::RoadNetwork;
use kuzet_actors::geo::GeoPoint;

use crate::sim::{Behaviour, CityPlan};

#[derive(clap::Args, Clone, Debug)]
pub struct CityArgs {
    #[arg(long, default_value_t = 12)]
    pub schools: usize,
    #[arg(long, default_value_t = 30)]
    pub units: usize,
    /// Mean seconds between presses, per school.
    #[arg(long, default_value_t = 180.0)]
    pub press_every: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl CityArgs {
    pub fn plan(&self) -> CityPlan {
        CityPlan {
            // Almaty city centre.
            centre: GeoPoint::new(43.2389, 76.8897).expect("constant point is valid"),
            radius_m: 6_000.0,
            schools: self.schools,
            units: self.units,
            seed: self.seed,
        }
    }

    /// The plan, centred on the road network when there is one.
    pub fn plan_on(&self, roads: Option<&RoadNetwork>) -> CityPlan {
        let mut plan = self.plan();
        if let Some((centre, radius_m)) = roads.and_then(|n| n.extent()) {
            plan.centre = centre;
            plan.radius_m = radius_m;
        }
        plan
    }

    pub fn behaviour(&self) -> Behaviour {
        Behaviour { press_every_s: self.press_every, ..Behaviour::default() }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` or else `filter`.
pub fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).compact().init();
}

pub use kuzet::startup::shutdown_signal;

/// After `duration` seconds, or at a shutdown signal, whichever comes first.
pub async fn until_stopped(duration: Option<u64>) {
    match duration {
        Some(s) => tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(s)) => {}
            _ = shutdown_signal() => {}
        },
        None => shutdown_signal().await,
    }
}
