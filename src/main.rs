//! The kuzet command line. Thin: parses arguments and calls the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kuzet::settings::Settings;
use kuzet::startup::Application;
use kuzet::{brokerfiles, devices};

#[derive(Parser)]
#[command(name = "kuzet", version, about = "Real-time alerting and dispatch for a city's police")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run kuzet with the settings file and the device registry it names.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write Mosquitto credentials and ACL for the devices of a registry.
    BrokerFiles {
        #[arg(long, default_value = "config/registry.toml")]
        registry: PathBuf,
        /// Directory to write `acl` and `passwd` (hashed) into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The road network: export it, or compute travel times between its nodes.
    #[command(subcommand)]
    Roads(RoadsCommand),
    /// Apply the schema migrations as the database's owner and grant the role `kuzet serve`
    /// connects as what it needs: it may append to the audit log, never change or delete it.
    Migrate {
        /// The owner's URL: the role that owns (and makes) the schema's tables.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The role `kuzet serve` connects as (database.url); it must exist. Without it, the
        /// migrations only.
        #[arg(long)]
        app_role: Option<String>,
    },
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The watchlist of wanted persons.
    #[command(subcommand)]
    Watchlist(WatchlistCommand),
    /// The people who sign in to the console, the oversight view and the tablets.
    #[command(subcommand)]
    User(UserCommand),
    /// Import into the database.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Devices' broker passwords.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Issue a new broker password (128 random bits) to devices, or rotate one: printed once
    /// as `id password` lines, kept only as a hash in registry.credentials_file. A running
    /// kuzet's broker takes it within seconds; the device's earlier password stops working.
    Issue {
        /// Devices to issue to (repeat the option).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Every device of the registry (file, and database when given) with no password yet.
        #[arg(long)]
        missing: bool,
        /// Who issues them, for the audit log (with --database-url).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Sites, buttons, units and cameras from a GeoJSON FeatureCollection (docs/operations.md).
    /// Checked whole before anything is written: a bad feature is reported with its index and
    /// nothing is imported.
    Devices {
        file: PathBuf,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

#[derive(Subcommand)]
enum WatchlistCommand {
    /// Enrol a person from photos of their face (or replace their entry). The entry is
    /// written with its legal basis, danger level and expiry, and the enrolment is audited.
    /// A running kuzet picks new entries up at its next start; to enrol into a running
    /// kuzet, use POST /api/v1/watchlist (docs/api.md).
    Enroll {
        /// The person's id: [a-z0-9][a-z0-9-]{0,63}.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The law, warrant or court order the person is listed under.
        #[arg(long)]
        legal_basis: String,
        #[arg(long)]
        case_ref: Option<String>,
        /// low, medium or high; only high may open an incident without a dispatcher's review.
        #[arg(long)]
        danger: String,
        /// When the entry stops matching (RFC 3339, or a date: YYYY-MM-DD, end of day UTC).
        #[arg(long)]
        expires: String,
        /// Who enrols, for the audit log.
        #[arg(long)]
        by: String,
        /// Photos (JPEG or PNG) with the person's face; the largest face in each is used.
        #[arg(required = true)]
        photos: Vec<PathBuf>,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Take a person off the list (audited). A running kuzet stops matching them at its next
    /// start; DELETE /api/v1/watchlist/{id} does it at once.
    Remove {
        #[arg(long)]
        id: String,
        /// Who removes, for the audit log.
        #[arg(long)]
        by: String,
        /// Why: the warrant was served, the order lapsed, ...
        #[arg(long)]
        reason: String,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or give an existing one a new password and role (their sessions end). The
    /// password is read from standard input (one line, 12 characters or more), so it never
    /// shows in the process list: `printf '%s\n' "$PW" | kuzet user add ...`. Audited.
    Add {
        #[arg(long)]
        username: String,
        /// dispatcher, supervisor, oversight or officer.
        #[arg(long)]
        role: String,
        /// The unit an officer signs in as (officers only).
        #[arg(long)]
        unit: Option<String>,
        /// Who adds the user, for the audit log.
        #[arg(long)]
        by: String,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit log's hash chain; exit 1 naming the first row that was edited,
    /// removed or inserted out of order. With the checkpoints kuzet signed (audit.checkpoint_file)
    /// and their public key, also a log rewritten and rehashed by a database superuser, or cut
    /// short, is found: exit 1 naming the first checkpoint it no longer matches.
    Verify {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The checkpoint file (one signed JSON line each).
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// The checkpoints' Ed25519 public key, PEM (the key file's `.pub`, from a copy kept
        /// away from the database's host).
        #[arg(long, requires = "checkpoints")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RoadsCommand {
    /// Write nodes.csv, edges.csv and ways.csv of the car graph built from an extract.
    Export {
        #[arg(long)]
        extract: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Travel times between node pairs (CSV `from,to` of node indices) as CSV on stdout.
    Times {
        #[arg(long)]
        extract: PathBuf,
        #[arg(long)]
        pairs: PathBuf,
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).compact().init();
}

/// Ctrl-C or SIGTERM (what `docker stop` and systemd send).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let system = actix::System::new();
    system.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let settings = Settings::load(config.as_deref())?;
            init_logs(&settings.log.filter);
            // With a database, devices may live there alone (imported); the file is optional.
            let file = &settings.registry.file;
            let devices = if file.as_os_str().is_empty() { Default::default() } else { devices::load(file)? };
            let app = Application::build(settings, devices).await?;
            if !app.wait_ready(Duration::from_secs(10)).await {
                tracing::warn!("broker not reachable yet; retrying in the background");
            }
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let mut counters = app.metrics().snapshot();
                        if let Some(w) = app.writer() {
                            counters.extend(w.stats().snapshot());
                        }
                        if let Some(v) = app.watch() {
                            counters.extend(v.matcher.stats.snapshot());
                        }
                        tracing::info!(?counters, "status");
                    }
                    _ = shutdown_signal() => break,
                }
            }
            app.stop().await;
        }
        Command::BrokerFiles { registry, out, config } => {
            let settings = Settings::load(config.as_deref())?;
            let devices = devices::load(&registry)?;
            let user = &settings.mqtt.username;
            kuzet::settings::strong_password(
                "mqtt.password (KUZET_MQTT__PASSWORD)",
                settings.mqtt.password.expose(),
            )?;
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let integrations = &settings.broker.integrations;
            std::fs::write(out.join("acl"), brokerfiles::acl_with(&devices, user, integrations))?;
            let issued = kuzet::credentials::read(&settings.registry.credentials_file)?;
            let mut accounts =
                brokerfiles::accounts(&devices, user, settings.mqtt.password.expose(), integrations);
            // An issued credential replaces a password the registry file gives the same device.
            accounts.retain(|(u, _)| !issued.contains_key(u));
            // Hashes only, as mosquitto_passwd writes them: no plain text reaches the disk.
            let mut text = brokerfiles::hashed_passwords(&accounts);
            for (id, hash) in &issued {
                text.push_str(&format!("{id}:{hash}\n"));
            }
            let passwd = out.join("passwd");
            std::fs::write(&passwd, text)?;
            std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            eprintln!(
                "wrote {0}/acl and {0}/passwd ({1} accounts)",
                out.display(),
                accounts.len() + issued.len()
            );
        }
        Command::Roads(RoadsCommand::Export { extract, out }) => {
            let (nodes, edges) = kuzet::roads::export(&extract, &out)?;
            eprintln!("wrote {}: {nodes} nodes, {edges} edges", out.display());
        }
        Command::Roads(RoadsCommand::Times { extract, pairs, cache_dir }) => {
            init_logs("warn");
            let cache = cache_dir.unwrap_or_else(kuzet::roads::default_cache_dir);
            let (net, _) = kuzet::roads::RoadNetwork::load(&extract, &cache, false)?;
            let text = std::fs::read_to_string(&pairs)
                .with_context(|| format!("cannot read {}", pairs.display()))?;
            let mut out = String::from("from,to,time_ms\n");
            for (n, line) in text.lines().enumerate().skip(1) {
                let parsed = line
                    .split_once(',')
                    .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
                let (from, to) =
                    parsed.with_context(|| format!("{}:{}: expected from,to", pairs.display(), n + 1))?;
                anyhow::ensure!(
                    (from.max(to) as usize) < net.graph().node_count(),
                    "{}:{}: node out of range",
                    pairs.display(),
                    n + 1
                );
                let time = net.node_time(from, to).map(|(ms, _)| ms.to_string()).unwrap_or_default();
                out.push_str(&format!("{from},{to},{time}\n"));
            }
            print!("{out}");
        }
        Command::Migrate { database_url, app_role } => {
            init_logs("info");
            kuzet::store::migrate_as_owner(&database_url, app_role.as_deref()).await?;
            match app_role {
                Some(role) => {
                    println!("schema up to date; {role} may append to the audit log, not change it")
                }
                None => println!("schema up to date"),
            }
        }
        Command::Audit(AuditCommand::Verify { database_url, checkpoints, public_key }) => {
            init_logs("warn");
            // Read first: a missing file is an operator's mistake, not a verdict on the log.
            let anchors = match (checkpoints, public_key) {
                (Some(file), Some(key)) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
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
                    None => println!(
                        "checkpoints: {} signed checkpoints hold, the last at row {}",
                        r.held, r.last_seq
                    ),
                }
            }
            if broken {
                std::process::exit(1);
            }
        }
        Command::Import(ImportCommand::Devices { file, database_url }) => {
            init_logs("warn");
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let pool = kuzet::store::connect(&database_url).await?;
            let name = file.file_name().map(|n| n.to_string_lossy().replace('|', "_")).unwrap_or_default();
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            match kuzet::store::devices::import_geojson(&pool, &text, &format!("import:{name}"), progress)
                .await
            {
                Ok(r) => println!(
                    "imported {} features: {} sites, {} buttons, {} units, {} cameras ({} new, {} updated)",
                    r.features, r.sites, r.buttons, r.units, r.cameras, r.new, r.updated
                ),
                Err(e) => {
                    eprintln!("{}: {e}; nothing was imported", file.display());
                    std::process::exit(1);
                }
            }
        }
        Command::Watchlist(WatchlistCommand::Enroll {
            id,
            name,
            legal_basis,
            case_ref,
            danger,
            expires,
            by,
            photos,
            database_url,
            config,
        }) => {
            init_logs("warn");
            let settings = Settings::load(config.as_deref())?;
            let expires_at = parse_expiry(&expires)?;
            anyhow::ensure!(expires_at > chrono::Utc::now(), "--expires is in the past");
            anyhow::ensure!(!legal_basis.trim().is_empty(), "--legal-basis is required");
            let danger = kuzet_actors::model::Danger::parse(&danger)
                .with_context(|| format!("--danger {danger:?}: low, medium or high"))?;
            let id = kuzet_actors::ids::PersonId::parse(&id).map_err(|e| anyhow::anyhow!("--id: {e}"))?;
            let photos =
                photos.iter().map(|p| kuzet::vision::read_photo(p)).collect::<anyhow::Result<Vec<_>>>()?;
            let paths = kuzet_vision::ModelPaths::in_dir(&settings.vision.models_dir);
            let mut models = kuzet_vision::FaceModels::load(&paths, settings.vision.intra_threads)?;
            models.min_score = settings.vision.min_face_score;
            let e = kuzet::vision::enrolment(&mut models, &photos)?;
            let entry = kuzet::store::watchlist::Entry {
                id,
                name,
                legal_basis,
                case_ref,
                danger,
                expires_at,
                embedding: e.embedding.to_vec(),
                photos: photos.len() as i32,
            };
            let pool = kuzet::store::connect(&database_url).await?;
            let created = kuzet::store::watchlist::enroll(
                &pool,
                &entry,
                Some(&e.face_jpeg),
                &e.photo_sha256,
                &format!("user:{by}"),
            )
            .await?;
            println!(
                "{} {} ({} photos, danger {}, expires {})",
                if created { "enrolled" } else { "re-enrolled" },
                entry.id,
                entry.photos,
                danger.as_str(),
                expires_at.to_rfc3339()
            );
        }
        Command::Watchlist(WatchlistCommand::Remove { id, by, reason, database_url }) => {
            init_logs("warn");
            let pool = kuzet::store::connect(&database_url).await?;
            if kuzet::store::watchlist::remove(&pool, &id, &format!("user:{by}"), &reason).await? {
                println!("removed {id}");
            } else {
                eprintln!("{id} is not on the list");
                std::process::exit(1);
            }
        }
        Command::User(UserCommand::Add { username, role, unit, by, database_url }) => {
            init_logs("warn");
            let role = kuzet::auth::Role::parse(&role)
                .with_context(|| format!("--role {role:?}: dispatcher, supervisor, oversight or officer"))?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(
                !kuzet::settings::is_published(password),
                "that password is published (kuzet's demo uses it): choose another"
            );
            let pool = kuzet::store::connect(&database_url).await?;
            let created = kuzet::auth::add_user(
                &pool,
                &username,
                role,
                unit.as_deref(),
                password,
                &format!("user:{by}"),
            )
            .await?;
            println!("{} {username} ({})", if created { "added" } else { "updated" }, role.as_str());
        }
        Command::Credentials(CredentialsCommand::Issue { ids, missing, by, database_url, config }) => {
            init_logs("warn");
            let settings = Settings::load(config.as_deref())?;
            let file = &settings.registry.file;
            let mut devices =
                if file.as_os_str().is_empty() { Default::default() } else { devices::load(file)? };
            let pool = match &database_url {
                Some(url) => Some(kuzet::store::connect(url).await?),
                None => None,
            };
            if let Some(pool) = &pool {
                let stored = kuzet::store::devices::load(pool).await?;
                devices.sites.extend(stored.sites);
                devices.units.extend(stored.units);
                devices.cameras.extend(stored.cameras);
            }
            let all: std::collections::BTreeMap<String, bool> = devices
                .sites
                .iter()
                .flat_map(|s| s.buttons.iter().map(|b| (b.id.to_string(), b.password.is_some())))
                .chain(devices.units.iter().map(|u| (u.id.to_string(), u.password.is_some())))
                .chain(devices.cameras.iter().map(|c| (c.id.to_string(), c.password.is_some())))
                .collect();
            let path = &settings.registry.credentials_file;
            let issued = kuzet::credentials::read(path)?;
            let mut wanted = Vec::new();
            for id in &ids {
                anyhow::ensure!(
                    all.contains_key(id),
                    "no device {id} in the registry (file or --database-url)"
                );
                wanted.push(id.clone());
            }
            if missing {
                wanted.extend(
                    all.iter()
                        .filter(|(id, has)| !**has && !issued.contains_key(*id))
                        .map(|(id, _)| id.clone()),
                );
            }
            wanted.sort();
            wanted.dedup();
            anyhow::ensure!(!wanted.is_empty() || missing, "name devices with --id, or use --missing");
            let out = kuzet::credentials::issue(path, &wanted)?;
            if let Some(pool) = &pool {
                let by = by.as_deref().context("--by is required with --database-url (for the audit log)")?;
                for (id, _) in &out {
                    kuzet::store::audit::append(
                        pool,
                        &format!("user:{by}"),
                        "credentials.issue",
                        Some(id),
                        &serde_json::json!({"file": path.display().to_string()}),
                    )
                    .await?;
                }
            }
            for (id, password) in &out {
                println!("{id} {password}");
            }
            eprintln!(
                "issued {} credential(s) into {}; each password is shown only now: give it to its device",
                out.len(),
                path.display()
            );
        }
    }
    Ok(())
}

/// RFC 3339, or a bare date meaning the end of that day (UTC).
fn parse_expiry(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("--expires {s:?}: RFC 3339 or YYYY-MM-DD"))?;
    Ok(d.and_hms_opt(23, 59, 59).expect("a valid time").and_utc())
}
