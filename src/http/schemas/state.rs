//! The bodies of the routes over kuzet's live state: the watchlist, reviews and incident
//! snapshots (the actors' types, as serialised), area warnings, the map and the tablet.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::LatLon;

// ---- The watchlist ----

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Danger {
    Low,
    Medium,
    High,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Pending,
    Approved,
}

#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    id: String,
    /// False when an entry with this id was replaced.
    created: bool,
    /// `pending` for a high-danger entry (a second supervisor approves it), else null.
    #[schema(required = true)]
    approval: Option<Approval>,
}

#[derive(Serialize, ToSchema)]
pub struct WatchlistEntry {
    id: String,
    name: String,
    legal_basis: String,
    #[schema(required = true)]
    case_ref: Option<String>,
    danger: Danger,
    expires_at: DateTime<Utc>,
    /// `expires_at` has passed: the entry no longer matches.
    expired: bool,
    /// How many photos it was enrolled from.
    #[schema(minimum = 0)]
    photos: u64,
    enrolled_by: String,
    /// For a high-danger entry; null for the others.
    #[schema(required = true)]
    approval: Option<Approval>,
    #[schema(required = true)]
    approved_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Removed {
    id: String,
    removed: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Approved {
    id: String,
    danger: Danger,
    approval: Approval,
    enrolled_by: String,
    approved_by: String,
}

// ---- Reviews and snapshots (the actors' types, as serialised) ----

#[derive(Serialize, ToSchema)]
pub struct WantedRef {
    person_id: String,
    name: String,
    danger: Danger,
    legal_basis: String,
}

#[derive(Serialize, ToSchema)]
pub struct SightingRef {
    sighting_id: Uuid,
    camera: String,
    at: DateTime<Utc>,
    location: LatLon,
    score: f32,
    /// Whether the face and frame were kept (`/api/v1/sightings/{id}/face.jpg`).
    evidence: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Pending,
    Confirmed,
    Rejected,
}

/// A face match waiting for a dispatcher's decision, or decided.
#[derive(Serialize, ToSchema)]
pub struct Review {
    review_id: Uuid,
    person: WantedRef,
    state: ReviewState,
    opened_at: DateTime<Utc>,
    /// Every sighting of the review, oldest first.
    sightings: Vec<SightingRef>,
    /// Once decided.
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    /// Once confirmed: the incident opened (or moved) for the person.
    incident_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    SchoolAlarm,
    WantedPerson,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Dispatching,
    Dispatched,
    Uncovered,
    EnRoute,
    OnScene,
    Closed,
    Cancelled,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    Intruder,
    Medical,
    Fire,
    Other,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    Accepted,
    EnRoute,
    OnScene,
    Cleared,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    NoUnitsLeft,
    OfferLimitReached,
}

#[derive(Serialize, ToSchema)]
pub struct SiteRef {
    id: String,
    name: String,
    #[schema(required = true)]
    room: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Raiser {
    button: String,
    alarm_id: Uuid,
    #[schema(required = true)]
    room: Option<String>,
    kind: AlarmKind,
    withdrawn: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Assignment {
    unit: String,
    progress: Progress,
    distance_m: f64,
    #[schema(minimum = 0)]
    eta_s: u32,
    offer_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct PendingOffer {
    offer_id: Uuid,
    unit: String,
    distance_m: f64,
    #[schema(minimum = 0)]
    eta_s: u32,
}

#[derive(Serialize, ToSchema)]
pub struct TimelineEntry {
    at: DateTime<Utc>,
    /// Microseconds since the incident opened, on kuzet's monotonic clock.
    #[schema(minimum = 0)]
    t_us: u64,
    event: String,
    unit: Option<String>,
    button: Option<String>,
    detail: Option<String>,
}

/// An incident as kuzet holds it live: the JSON of `kuzet/v1/incidents/{id}` (docs/mqtt.md),
/// with every timeline entry.
#[derive(Serialize, ToSchema)]
pub struct IncidentSnapshot {
    incident_id: Uuid,
    kind: IncidentKind,
    /// 1 is the most urgent.
    #[schema(minimum = 0, maximum = 255)]
    priority: u8,
    state: IncidentState,
    location: LatLon,
    /// The site it is at; null when it is about a person.
    #[schema(required = true)]
    site: Option<SiteRef>,
    /// The person it is about (absent otherwise).
    wanted: Option<WantedRef>,
    raised_by: Vec<Raiser>,
    opened_at: DateTime<Utc>,
    units: Vec<Assignment>,
    offers: Vec<PendingOffer>,
    escalated: Option<EscalationReason>,
    timeline: Vec<TimelineEntry>,
    /// The person's sightings, oldest first (absent when none).
    sightings: Option<Vec<SightingRef>>,
}

// ---- Area warnings ----

#[derive(Serialize, ToSchema)]
pub struct WarningCircle {
    lat: f64,
    lon: f64,
    radius_m: f64,
}

/// The area: a circle or a polygon of `[lat, lon]` pairs (latitude first, closed).
#[derive(Serialize, ToSchema)]
pub struct WarningArea {
    description: String,
    circle: Option<WarningCircle>,
    polygon: Option<Vec<[f64; 2]>>,
}

/// An area warning, as its latest CAP message has it.
#[derive(Serialize, ToSchema)]
pub struct Warning {
    warning_id: Uuid,
    /// The CAP message's identifier (`urn:uuid:...`).
    identifier: String,
    /// `Alert`, `Update` or `Cancel`.
    msg_type: String,
    sent: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    in_force: bool,
    event: String,
    headline: String,
    description: String,
    #[schema(required = true)]
    instruction: Option<String>,
    severity: String,
    urgency: String,
    area: WarningArea,
    /// The identifiers of the messages this one changes.
    references: Vec<String>,
    issued_by: String,
    /// How many messages the warning has had (in the list; null as issued).
    #[schema(required = true)]
    messages: Option<i64>,
}

// ---- The map and the tablet ----

#[derive(Serialize, ToSchema)]
pub struct MapSite {
    site_id: String,
    name: String,
    kind: String,
    lat: f64,
    lon: f64,
}

#[derive(Serialize, ToSchema)]
pub struct MapCamera {
    camera_id: String,
    lat: f64,
    lon: f64,
    custodial: bool,
    #[schema(required = true)]
    site_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MapUnit {
    unit_id: String,
    callsign: String,
}

/// What the pages draw their maps from.
#[derive(Serialize, ToSchema)]
pub struct Map {
    /// `[[south, west], [north, east]]`, latitude first; null when there is nothing to bound.
    #[schema(required = true, value_type = Option<Vec<Vec<f64>>>)]
    bounds: Option<[[f64; 2]; 2]>,
    #[schema(required = true)]
    tile_url: Option<String>,
    #[schema(required = true)]
    tile_attribution: Option<String>,
    /// Polylines, each a flat array `[lat, lon, lat, lon, ...]`.
    roads: Vec<Vec<f64>>,
    sites: Vec<MapSite>,
    cameras: Vec<MapCamera>,
    units: Vec<MapUnit>,
}

#[derive(Serialize, ToSchema)]
pub struct TabletMqtt {
    /// MQTT over WebSockets: `ws://...` or `wss://...`.
    url: String,
    username: String,
    /// The unit's broker password when kuzet may hand it out, else null.
    #[schema(required = true)]
    password: Option<String>,
    client_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct Tablet {
    unit_id: String,
    #[schema(required = true)]
    callsign: Option<String>,
    mqtt: TabletMqtt,
}
