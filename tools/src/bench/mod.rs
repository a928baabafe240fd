//! `kuzet-bench`: alarm -> offer latency end to end through a private broker while units
//! report positions, beside the raw broker round trip measured in the same run with the
//! same client library and payload size; and the nearest-unit query over 100k units beside
//! a brute-force scan. With a database: the same alarm path while the writer records 20k
//! positions a second, the writer's throughput beside single-row inserts, and 100k devices
//! loaded from PostGIS with their actors spawned. Prints a Markdown report.

use std::time::Duration;

mod city;
mod flood;
mod index;
mod ingest;
pub mod load;
mod mqtt;
pub mod reconnect;
mod roads;
mod soak;
mod store;
mod vision;

use flood::flood_bench;
use index::index_bench;
use mqtt::{lanes_bench, mqtt_bench};
use roads::roads_bench;
use store::{fresh_database, load_bench, writer_bench};

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Alarms to measure end to end (more are raised until the run has lasted `min_run_s`).
    #[arg(long, default_value_t = 10_000)]
    pub alarms: usize,
    /// Seconds an alarm run lasts at least, so that the load is measured over whole seconds.
    #[arg(long, default_value_t = 10)]
    pub min_run_s: u64,
    /// Units reporting a position once a second during the run.
    #[arg(long, default_value_t = 1_000)]
    pub units: usize,
    /// Broker to run through: mosquitto (a private, plain instance), embedded (kuzet's own:
    /// Mosquitto with passwords, ACL and persistence) or both (the mqtt suite, one run each).
    #[arg(long, default_value = "mosquitto")]
    pub broker: String,
    /// Units in the nearest-unit query benchmark.
    #[arg(long, default_value_t = 100_000)]
    pub index_units: usize,
    /// What to run: all, index, mqtt, lanes (the alarm suite at 1,000 and 10,000 units, 1 and
    /// 2 Hz, with and without recording), ingest, flood, roads, store, vision, reconnect or
    /// soak (an hour at city load; lanes, reconnect and soak are not part of all).
    #[arg(long, default_value = "all")]
    pub suite: String,
    /// A PostgreSQL + PostGIS server for the store benchmarks; each run makes fresh databases
    /// on it. Without it they are skipped.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Position reports per unit and second while alarms are measured with the writer on.
    #[arg(long, default_value_t = 2.0)]
    pub position_hz: f64,
    /// The nice value the load generator (a child process) runs at: on two cores it competes
    /// with kuzet and the broker.
    #[arg(long, default_value_t = 10)]
    pub load_nice: i32,
    /// The nice value given to the PostgreSQL server written to (0: left as it is).
    #[arg(long, default_value_t = 10)]
    pub db_nice: i32,
    /// Positions through the ingest benchmark.
    #[arg(long, default_value_t = 500_000)]
    pub ingest_positions: usize,
    /// Runs as the position load generator (host:port:units:hz) instead; for the mqtt suite.
    #[arg(long, hide = true)]
    pub load_child: Option<String>,
    /// Devices in the load benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    pub load_devices: usize,
    /// The OpenStreetMap extract for the road benchmark.
    #[arg(long, default_value = "target/osm/Helsinki.osm.pbf")]
    pub extract: std::path::PathBuf,
    /// The face models and ONNX Runtime for the vision benchmark (scripts/models.sh).
    #[arg(long, default_value = "target/models")]
    pub models_dir: std::path::PathBuf,
    /// Other alarms a second while alarms are measured, each accepted and worked to cleared
    /// by a tablet (a reply and three progress reports, acknowledged once recorded).
    #[arg(long, default_value_t = 10.0)]
    pub busy_hz: f64,
    #[command(flatten)]
    pub reconnect: reconnect::ReconnectArgs,
    #[command(flatten)]
    pub roads: roads::RoadsArgs,
    #[command(flatten)]
    pub vision: vision::VisionArgs,
    #[command(flatten)]
    pub soak: soak::SoakArgs,
    /// The flood suite: alarms measured in each phase (without, then with the flood).
    #[arg(long, default_value_t = 1_000)]
    pub flood_alarms: usize,
    /// The flood suite: messages a second the flooding button and tablet each try to send;
    /// 0: as fast as their clients go.
    #[arg(long, default_value_t = 0.0)]
    pub flood_hz: f64,
}

pub struct Percentiles {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

pub fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles { n: v.len(), p50: at(0.50), p99: at(0.99), p999: at(0.999), max: v[v.len() - 1] }
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn row(name: &str, p: &Percentiles) -> String {
    format!("| {name} | {} | {} | {} | {} | {} |", p.n, us(p.p50), us(p.p99), us(p.p999), us(p.max))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!("## kuzet-bench\n");
    println!(
        "machine: {}, {} cores\n",
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let all = args.suite == "all";
    anyhow::ensure!(
        ["all", "index", "mqtt", "lanes", "ingest", "flood", "roads", "store", "vision", "reconnect", "soak"]
            .contains(&args.suite.as_str()),
        "--suite must be all, index, mqtt, lanes, ingest, flood, roads, store, vision, reconnect or soak"
    );
    if let Some(base) = &args.database_url {
        if args.db_nice > 0 && args.suite != "vision" && args.suite != "index" && args.suite != "roads" {
            store::renice(base, args.db_nice).await?;
        }
    }
    if args.suite == "soak" {
        let db = match &args.database_url {
            Some(base) => Some(fresh_database(base).await?),
            None => None,
        };
        return soak::soak_bench(&args, db).await;
    }
    if args.suite == "lanes" {
        return lanes_bench(&args, args.database_url.as_deref()).await;
    }
    if all || args.suite == "ingest" {
        match &args.database_url {
            Some(base) => ingest::ingest_bench(base, args.ingest_positions).await?,
            None => println!("(ingest benchmark skipped: no --database-url / DATABASE_URL)\n"),
        }
    }
    // Not in `all`: its storms take minutes.
    if args.suite == "reconnect" {
        return reconnect::reconnect_bench(&args.reconnect).await;
    }
    if all || args.suite == "vision" {
        vision::vision_bench(&args.models_dir, &args.vision)?;
    }
    if all || args.suite == "index" {
        index_bench(args.index_units);
    }
    if all || args.suite == "roads" {
        roads_bench(&args.extract, &args.roads)?;
    }
    if all || args.suite == "mqtt" {
        mqtt_bench(&args, None, args.position_hz).await?;
    }
    if all || args.suite == "flood" {
        flood_bench(&args, args.database_url.as_deref()).await?;
    }
    let (store, mqtt) = (all || args.suite == "store", all || args.suite == "mqtt");
    match &args.database_url {
        Some(base) => {
            if store {
                writer_bench(base).await?;
                load_bench(base, args.load_devices).await?;
            }
            if mqtt {
                // The same, everything recorded.
                mqtt_bench(&args, Some(fresh_database(base).await?), args.position_hz).await?;
            }
        }
        None if store || mqtt => println!("(store benchmarks skipped: no --database-url / DATABASE_URL)\n"),
        None => {}
    }
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let p = percentiles(v);
        assert_eq!(
            (p.p50, p.p99, p.p999, p.max),
            (
                Duration::from_micros(500),
                Duration::from_micros(990),
                Duration::from_micros(999),
                Duration::from_micros(1000)
            )
        );
    }
}
