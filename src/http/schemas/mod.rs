//! The shapes of the API's bodies, for the OpenAPI document (`openapi.rs`) only.
//!
//! Handlers build most answers with `json!` or serialise the actors' types (an incident's
//! snapshot, a review), which live in crates without utoipa; these types mirror those answers
//! field for field. They are never built: schemathesis, run by `scripts/openapi-check.sh`
//! against a running kuzet, checks every answer against them, so a drift shows there.
//! Here: errors, free text, GeoJSON, signing in, the audit log and the record; `state.rs`:
//! what comes from kuzet's live state (the watchlist, reviews, snapshots, the map, warnings).
#![allow(dead_code)]

mod state;

pub use state::*;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// An error: what went wrong, in words (401, 403, 404, 405, 409, 429, 503).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "sign in first (POST /api/v1/session)"}))]
pub struct Error {
    error: String,
}

/// Bad input (400, and 413 for a body over its limit): `error` starts with the parameter's
/// name and a colon, `parameter` names it alone (`id` for the path's id, `body` for the body as
/// a whole, a field's name for a field of a body).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "limit: must be an integer from 1 to 1000", "parameter": "limit"}))]
pub struct BadRequest {
    error: String,
    parameter: String,
}

/// Free text: no control characters (U+0000-U+001F, U+007F-U+009F, U+2028, U+2029).
#[derive(Serialize, ToSchema)]
#[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029]*$")]
pub struct Text(String);

/// Free text that is not blank: no control characters, something besides white space.
#[derive(Serialize, ToSchema)]
#[schema(
    pattern = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029]*[^\s\u0000-\u001F\u007F-\u009F\u2028\u2029][^\u0000-\u001F\u007F-\u009F\u2028\u2029]*$"
)]
pub struct Solid(String);

/// WGS 84 degrees, named.
#[derive(Serialize, ToSchema)]
pub struct LatLon {
    #[schema(minimum = -90.0, maximum = 90.0)]
    lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    lon: f64,
}

/// `format`: the answer's format.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Geojson,
}

/// The `format` query parameter of the routes that answer GeoJSON too.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// `json` or `geojson` (`application/geo+json`). Without it, GeoJSON when the `Accept` header
    /// names `application/geo+json` with a q above 0, else JSON.
    format: Option<Format>,
}

/// A `state` filter: a state, or `open` (every state but `closed` and `cancelled`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    Open,
    Dispatching,
    Dispatched,
    Uncovered,
    EnRoute,
    OnScene,
    Closed,
    Cancelled,
}

// ---- Signing in ----

#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    user: crate::auth::User,
    /// The session, 64 hexadecimal characters: `Authorization: Bearer <token>`.
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    user: crate::auth::User,
}

#[derive(Serialize, ToSchema)]
pub struct SignedOut {
    signed_out: bool,
}

// ---- The audit log ----

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    rows: Vec<AuditRow>,
    /// Ask again with `after` set to this for the next page; null past the end.
    #[schema(required = true)]
    next_after: Option<i64>,
    /// Rows of this page left out for the reader's role (custodial cameras' alerts).
    #[schema(minimum = 0)]
    withheld: u64,
}

#[derive(Serialize, ToSchema)]
pub struct AuditRow {
    seq: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    #[schema(required = true)]
    subject: Option<String>,
    details: Value,
    /// The row's SHA-256 in hex.
    hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditVerify {
    #[schema(minimum = 0)]
    rows: u64,
    intact: bool,
    /// Present when `intact` is false: the first row edited, removed or inserted out of order.
    first_break: Option<ChainBreak>,
}

#[derive(Serialize, ToSchema)]
pub struct ChainBreak {
    seq: i64,
    reason: String,
}

// ---- GeoJSON ----

#[derive(Serialize, ToSchema)]
pub enum FeatureCollectionType {
    FeatureCollection,
}

#[derive(Serialize, ToSchema)]
pub enum FeatureType {
    Feature,
}

#[derive(Serialize, ToSchema)]
pub enum PointType {
    Point,
}

#[derive(Serialize, ToSchema)]
pub enum LineStringType {
    LineString,
}

#[derive(Serialize, ToSchema)]
pub enum PolygonType {
    Polygon,
}

/// A GeoJSON Point: `[lon, lat]`.
#[derive(Serialize, ToSchema)]
pub struct Point {
    r#type: PointType,
    #[schema(min_items = 2, max_items = 2)]
    coordinates: Vec<f64>,
}

/// A GeoJSON LineString: `[[lon, lat], ...]`, two positions or more.
#[derive(Serialize, ToSchema)]
pub struct LineString {
    r#type: LineStringType,
    #[schema(min_items = 2)]
    coordinates: Vec<[f64; 2]>,
}

/// A GeoJSON Polygon: rings of `[lon, lat]` positions, the first the outer one.
#[derive(Serialize, ToSchema)]
pub struct Polygon {
    r#type: PolygonType,
    coordinates: Vec<Vec<[f64; 2]>>,
}

// ---- Incidents ----

/// An incident as a GeoJSON Point feature; every field of the incident in `properties`.
#[derive(Serialize, ToSchema)]
pub struct IncidentFeature {
    r#type: FeatureType,
    id: Uuid,
    geometry: Point,
    properties: super::handlers::Incident,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentFeatureCollection {
    r#type: FeatureCollectionType,
    features: Vec<IncidentFeature>,
}

/// One incident with the snapshot kuzet last stored.
#[derive(Serialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    incident: super::handlers::Incident,
    /// When kuzet last wrote the row.
    #[schema(required = true)]
    updated_at: Option<DateTime<Utc>>,
    /// The incident's snapshot as stored (as published on `kuzet/v1/incidents/{id}`), or null.
    #[schema(required = true, value_type = Option<Object>)]
    snapshot: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentDetailProperties {
    #[serde(flatten)]
    incident: super::handlers::Incident,
    #[schema(required = true)]
    updated_at: Option<DateTime<Utc>>,
    #[schema(required = true, value_type = Option<Object>)]
    snapshot: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentDetailFeature {
    r#type: FeatureType,
    id: Uuid,
    geometry: Point,
    properties: IncidentDetailProperties,
}

// ---- Tracks ----

#[derive(Serialize, ToSchema)]
pub struct Track {
    unit_id: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[schema(minimum = 0)]
    count: u64,
    /// More fixes than one answer holds (100 000): ask again from the last `at`.
    truncated: bool,
    points: Vec<super::handlers::TrackPoint>,
}

/// The geometry of a track: a LineString through two fixes or more, a Point for one.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TrackGeometry {
    LineString(LineString),
    Point(Point),
}

#[derive(Serialize, ToSchema)]
pub struct TrackProperties {
    unit_id: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[schema(minimum = 0)]
    count: u64,
    truncated: bool,
    /// The fixes' times, in the order of the coordinates.
    times: Vec<DateTime<Utc>>,
    speeds_mps: Vec<Option<f32>>,
    headings_deg: Vec<Option<f32>>,
}

/// A track as one GeoJSON feature; `geometry` is null without fixes.
#[derive(Serialize, ToSchema)]
pub struct TrackFeature {
    r#type: FeatureType,
    #[schema(required = true)]
    geometry: Option<TrackGeometry>,
    properties: TrackProperties,
}

// ---- Sites ----

#[derive(Serialize, ToSchema)]
pub struct Site {
    id: String,
    name: String,
    /// `school`, `police_station` or `prison`.
    kind: String,
    /// The site's point.
    location: LatLon,
    area: Polygon,
    area_m2: f64,
}

#[derive(Serialize, ToSchema)]
pub struct SiteProperties {
    id: String,
    name: String,
    kind: String,
    location: LatLon,
    area_m2: f64,
}

/// A site as a GeoJSON feature: its area as the geometry.
#[derive(Serialize, ToSchema)]
pub struct SiteFeature {
    r#type: FeatureType,
    id: String,
    geometry: Polygon,
    properties: SiteProperties,
}
