//! `kuzet watchlist`: a wanted person enrolled from photos, or taken off the list; audited.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use kuzet::settings::Settings;

use super::init_logs;

#[derive(Subcommand)]
pub enum WatchlistCommand {
    /// Enrol a person from photos of their face (or replace their entry). The entry is
    /// written with its legal basis, danger level and expiry, and the enrolment is audited.
    /// A running kuzet picks new entries up at its next start; to enrol into a running
    /// kuzet, use POST /api/v1/watchlist (docs/api.md).
    Enroll(EnrollArgs),
    /// Take a person off the list (audited). A running kuzet stops matching them at its next
    /// start; DELETE /api/v1/watchlist/{id} does it at once.
    Remove(RemoveArgs),
    /// Approve a high-danger entry enrolled by someone else (audited). Until approved it
    /// matches as medium: every match waits for a dispatcher's review. POST
    /// /api/v1/watchlist/{id}/approve does it in a running kuzet at once.
    Approve(ApproveArgs),
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    #[arg(long)]
    pub id: String,
    /// Who approves, for the audit log: not who enrolled the entry.
    #[arg(long)]
    pub by: String,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

#[derive(clap::Args)]
pub struct EnrollArgs {
    /// The person's id: [a-z0-9][a-z0-9-]{0,63}.
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    /// The law, warrant or court order the person is listed under.
    #[arg(long)]
    pub legal_basis: String,
    #[arg(long)]
    pub case_ref: Option<String>,
    /// low, medium or high; only high may open an incident without a dispatcher's review.
    #[arg(long)]
    pub danger: String,
    /// When the entry stops matching (RFC 3339, or a date: YYYY-MM-DD, end of day UTC).
    #[arg(long)]
    pub expires: String,
    /// Who enrols, for the audit log.
    #[arg(long)]
    pub by: String,
    /// Photos (JPEG or PNG) with the person's face; the largest face in each is used.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RemoveArgs {
    #[arg(long)]
    pub id: String,
    /// Who removes, for the audit log.
    #[arg(long)]
    pub by: String,
    /// Why: the warrant was served, the order lapsed, ...
    #[arg(long)]
    pub reason: String,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

pub async fn run(command: WatchlistCommand) -> anyhow::Result<()> {
    match command {
        WatchlistCommand::Enroll(args) => enroll(args).await,
        WatchlistCommand::Remove(args) => remove(args).await,
        WatchlistCommand::Approve(args) => approve(args).await,
    }
}

async fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let EnrollArgs { id, name, legal_basis, case_ref, danger, expires, by, photos, database_url, config } =
        args;
    init_logs("warn");
    let settings = Settings::load(config.as_deref())?;
    let expires_at = parse_expiry(&expires)?;
    anyhow::ensure!(expires_at > chrono::Utc::now(), "--expires is in the past");
    anyhow::ensure!(!legal_basis.trim().is_empty(), "--legal-basis is required");
    let danger = kuzet_actors::model::Danger::parse(&danger)
        .with_context(|| format!("--danger {danger:?}: low, medium or high"))?;
    let id = kuzet_actors::ids::PersonId::parse(&id).map_err(|e| anyhow::anyhow!("--id: {e}"))?;
    let photos = photos.iter().map(|p| kuzet::vision::read_photo(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let paths = kuzet_vision::ModelPaths::in_dir(&settings.vision.models_dir);
    let mut models = kuzet_vision::FaceModels::load(&paths, settings.vision.intra_threads)?;
    models.min_score = settings.vision.min_face_score;
    let progress = kuzet_progress::Progress::new(
        kuzet_progress::Show::auto(),
        &format!("enrolling {id}"),
        "photos",
        Some(photos.len() as u64),
    );
    let e = kuzet::vision::enrolment_shown(&mut models, &photos, &progress)?;
    progress.finish("done");
    let entry = kuzet::store::watchlist::Entry {
        id,
        name,
        legal_basis,
        case_ref,
        danger,
        expires_at,
        embedding: e.embedding.to_vec(),
        photos: photos.len() as i32,
        enrolled_by: format!("user:{by}"),
        approved_by: None,
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
    if entry.awaits_approval() {
        println!(
            "{} matches as medium (every match reviewed) until someone other than {by} approves it: \
             kuzet watchlist approve --id {} --by NAME, or POST /api/v1/watchlist/{}/approve",
            entry.id, entry.id, entry.id
        );
    }
    Ok(())
}

async fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    let ApproveArgs { id, by, database_url } = args;
    init_logs("warn");
    let pool = kuzet::store::connect(&database_url).await?;
    let e = kuzet::store::watchlist::approve(&pool, &id, &format!("user:{by}")).await?;
    println!(
        "approved {} (danger high, enrolled by {}); a running kuzet acts on it at its next start",
        e.id, e.enrolled_by
    );
    Ok(())
}

async fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let RemoveArgs { id, by, reason, database_url } = args;
    init_logs("warn");
    let pool = kuzet::store::connect(&database_url).await?;
    if kuzet::store::watchlist::remove(&pool, &id, &format!("user:{by}"), &reason).await? {
        println!("removed {id}");
    } else {
        eprintln!("{id} is not on the list");
        std::process::exit(1);
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
