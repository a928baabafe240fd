//! The route handlers: parameters checked first, then one parameterised query each.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::{QueryBuilder, Row};

use super::params::{self, Params};
use super::ApiError;

/// Points one track answer holds at most.
pub const MAX_TRACK_POINTS: usize = 100_000;
/// The longest track window asked for at once.
pub const MAX_TRACK_SPAN: chrono::TimeDelta = chrono::TimeDelta::days(7);

const GEOJSON: &str = "application/geo+json";

fn geojson_response(v: &Value) -> HttpResponse {
    HttpResponse::Ok().content_type(GEOJSON).body(v.to_string())
}

fn path_id(req: &HttpRequest) -> &str {
    req.match_info().get("id").unwrap_or("")
}

/// An incident as recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Incident {
    id: uuid::Uuid,
    /// `school_alarm` or `wanted_person`.
    kind: String,
    /// 1 is the most urgent.
    priority: i16,
    /// `dispatching`, `dispatched`, `uncovered`, `en_route`, `on_scene`, `closed` or `cancelled`.
    state: String,
    #[schema(required = true)]
    site_id: Option<String>,
    /// What the incident is about: `site` or `person`, and that site's or person's id.
    #[schema(required = true)]
    subject_kind: Option<String>,
    #[schema(required = true)]
    subject_id: Option<String>,
    lat: f64,
    lon: f64,
    opened_at: DateTime<Utc>,
    /// Null while open.
    #[schema(required = true)]
    closed_at: Option<DateTime<Utc>>,
    /// Why it was escalated to the console as uncovered (`no_units_left`, ...), or null.
    #[schema(required = true)]
    escalated: Option<String>,
}

const INCIDENT_COLUMNS: &str = "SELECT id, kind, priority, state, site_id, subject_kind, subject_id, \
     ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon, \
     opened_at, closed_at, escalated";

impl Incident {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            priority: row.try_get("priority")?,
            state: row.try_get("state")?,
            site_id: row.try_get("site_id")?,
            subject_kind: row.try_get("subject_kind")?,
            subject_id: row.try_get("subject_id")?,
            lat: row.try_get("lat")?,
            lon: row.try_get("lon")?,
            opened_at: row.try_get("opened_at")?,
            closed_at: row.try_get("closed_at")?,
            escalated: row.try_get("escalated")?,
        })
    }

    /// A GeoJSON Point feature, every field (lat and lon too) in its properties.
    fn feature(&self, extra: Option<(&str, Value)>) -> Value {
        let mut properties = serde_json::to_value(self).expect("an incident serialises");
        if let (Some((k, v)), Some(map)) = (extra, properties.as_object_mut()) {
            map.insert(k.to_owned(), v);
        }
        json!({
            "type": "Feature",
            "id": self.id,
            "geometry": {"type": "Point", "coordinates": [self.lon, self.lat]},
            "properties": properties,
        })
    }
}

/// GET /api/v1/incidents
#[utoipa::path(
    get, path = "/api/v1/incidents", tag = "record", operation_id = "list_incidents",
    summary = "Incidents, newest first",
    description = "Every filter is optional; they combine with AND. `bbox` and `near` are alternatives. \
        Unknown parameters are refused (400). JSON, or GeoJSON (a FeatureCollection of Points) with \
        `format=geojson` or `Accept: application/geo+json`.",
    params(
        ("from" = Option<DateTime<Utc>>, Query, description = "Opened at or after (RFC 3339 with an offset)"),
        ("to" = Option<DateTime<Utc>>, Query, description = "Opened at or before; not before `from`"),
        ("state" = Option<Vec<super::schemas::StateFilter>>, Query, style = Form, explode,
            description = "Any of these states (repeat it, or separate with commas); `open` is every state but `closed` and `cancelled`"),
        ("bbox" = Option<String>, Query, description = "`min_lon,min_lat,max_lon,max_lat` (longitude first)", example = "76.9,43.2,76.92,43.22"),
        ("near" = Option<String>, Query, description = "`lat,lon` (latitude first); needs `radius_m`", example = "43.207,76.907"),
        ("radius_m" = Option<f64>, Query, minimum = 0, maximum = 100000, description = "Metres around `near`; only with it"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)"),
        super::schemas::FormatParam,
    ),
    responses(
        (status = 200, description = "The incidents", content(
            (Vec<Incident> = "application/json"),
            (super::schemas::IncidentFeatureCollection = "application/geo+json"),
        )),
        (status = 400, description = "A parameter missing, unparsable, out of range, unknown or repeated", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn incidents(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(&req, &["from", "to", "state", "bbox", "near", "radius_m", "limit", "format"])?;
    let from = p.time("from")?;
    let to = p.time("to")?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::bad("to", format!("{t:?} is before from {f:?}")));
        }
    }
    let states = params::states(p.all("state"))?;
    let bbox = p.one("bbox")?.map(params::bbox).transpose()?;
    let near = p.one("near")?.map(params::near).transpose()?;
    let radius = p.one("radius_m")?.map(params::radius).transpose()?;
    let near = match (near, radius) {
        (Some(point), Some(r)) => Some((point, r)),
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::bad("radius_m", "is required with near".into())),
        (None, Some(_)) => return Err(ApiError::bad("near", "is required with radius_m".into())),
    };
    if bbox.is_some() && near.is_some() {
        return Err(ApiError::bad("bbox", "and near are alternatives: give one area filter".into()));
    }
    let limit = params::limit(p.one("limit")?)?;
    let geojson = p.geojson(&req)?;

    let mut q = QueryBuilder::<Postgres>::new(INCIDENT_COLUMNS);
    q.push(" FROM incidents WHERE true");
    if let Some(f) = from {
        q.push(" AND opened_at >= ").push_bind(f);
    }
    if let Some(t) = to {
        q.push(" AND opened_at <= ").push_bind(t);
    }
    if let Some(states) = states {
        q.push(" AND state = ANY(").push_bind(states).push(")");
    }
    if let Some(b) = bbox {
        // A lon/lat rectangle (edges along meridians and parallels), edges included.
        q.push(" AND ST_X(location::geometry) BETWEEN ")
            .push_bind(b.min_lon)
            .push(" AND ")
            .push_bind(b.max_lon);
        q.push(" AND ST_Y(location::geometry) BETWEEN ")
            .push_bind(b.min_lat)
            .push(" AND ")
            .push_bind(b.max_lat);
    }
    if let Some(((lat, lon), r)) = near {
        q.push(" AND ST_DWithin(location, ST_SetSRID(ST_MakePoint(")
            .push_bind(lon)
            .push(", ")
            .push_bind(lat)
            .push("), 4326)::geography, ")
            .push_bind(r)
            .push(")");
    }
    q.push(" ORDER BY opened_at DESC, id DESC LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(pool.get_ref()).await?;
    let list = rows.iter().map(Incident::from_row).collect::<Result<Vec<_>, _>>()?;

    if geojson {
        let features: Vec<Value> = list.iter().map(|i| i.feature(None)).collect();
        Ok(geojson_response(&json!({"type": "FeatureCollection", "features": features})))
    } else {
        Ok(HttpResponse::Ok().json(list))
    }
}

/// GET /api/v1/incidents/{id}
#[utoipa::path(
    get, path = "/api/v1/incidents/{id}", tag = "record", operation_id = "get_incident",
    summary = "One incident, with its stored snapshot",
    params(
        ("id" = uuid::Uuid, Path, description = "The incident's id"),
        super::schemas::FormatParam,
    ),
    responses(
        (status = 200, description = "The incident", content(
            (super::schemas::IncidentDetail = "application/json"),
            (super::schemas::IncidentDetailFeature = "application/geo+json"),
        )),
        (status = 400, description = "`id` not a UUID, or a bad or unknown parameter", body = super::schemas::BadRequest),
        (status = 404, description = "No such incident", body = super::schemas::Error),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn incident(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let id = params::incident_id(path_id(&req))?;
    let p = Params::parse(&req, &["format"])?;
    let geojson = p.geojson(&req)?;
    let mut q = QueryBuilder::<Postgres>::new(INCIDENT_COLUMNS);
    q.push(", snapshot, updated_at FROM incidents WHERE id = ").push_bind(id);
    let row = q.build().fetch_optional(pool.get_ref()).await?;
    let Some(row) = row else {
        return Err(ApiError::NotFound(format!("no incident {id}")));
    };
    let incident = Incident::from_row(&row)?;
    let snapshot: Option<Value> = row.try_get("snapshot")?;
    let updated_at: Option<DateTime<Utc>> = row.try_get("updated_at")?;
    if geojson {
        let mut f = incident.feature(Some(("snapshot", snapshot.unwrap_or(Value::Null))));
        f["properties"]["updated_at"] = json!(updated_at);
        return Ok(geojson_response(&f));
    }
    let mut v = serde_json::to_value(&incident).expect("an incident serialises");
    v["updated_at"] = json!(updated_at);
    v["snapshot"] = snapshot.unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(v))
}

/// One event of an incident's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Event {
    seq: i32,
    /// Wall clock.
    at: DateTime<Utc>,
    /// Microseconds since the incident opened, on kuzet's monotonic clock.
    t_us: i64,
    event: String,
    #[schema(required = true)]
    unit_id: Option<String>,
    #[schema(required = true)]
    button_id: Option<String>,
    #[schema(required = true)]
    detail: Option<String>,
}

/// GET /api/v1/incidents/{id}/timeline
#[utoipa::path(
    get, path = "/api/v1/incidents/{id}/timeline", tag = "record", operation_id = "get_timeline",
    summary = "An incident's events in order",
    description = "Every event, `seq` 0, 1, 2, ...; no parameters; always JSON.",
    params(("id" = uuid::Uuid, Path, description = "The incident's id")),
    responses(
        (status = 200, description = "The events", body = Vec<Event>),
        (status = 400, description = "`id` not a UUID, or any query parameter", body = super::schemas::BadRequest),
        (status = 404, description = "No such incident", body = super::schemas::Error),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn timeline(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let id = params::incident_id(path_id(&req))?;
    Params::parse(&req, &[])?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM incidents WHERE id = $1)")
        .bind(id)
        .fetch_one(pool.get_ref())
        .await?;
    if !exists {
        return Err(ApiError::NotFound(format!("no incident {id}")));
    }
    let rows = sqlx::query(
        "SELECT seq, at, t_us, event, unit_id, button_id, detail \
         FROM incident_events WHERE incident_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool.get_ref())
    .await?;
    let events = rows
        .iter()
        .map(|r| {
            Ok(Event {
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                t_us: r.try_get("t_us")?,
                event: r.try_get("event")?,
                unit_id: r.try_get("unit_id")?,
                button_id: r.try_get("button_id")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(HttpResponse::Ok().json(events))
}

/// A unit's fix.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TrackPoint {
    /// The fix's own time.
    at: DateTime<Utc>,
    /// When kuzet got it.
    received_at: DateTime<Utc>,
    lat: f64,
    lon: f64,
    #[schema(required = true)]
    speed_mps: Option<f32>,
    #[schema(required = true)]
    heading_deg: Option<f32>,
}

/// GET /api/v1/units/{id}/track
#[utoipa::path(
    get, path = "/api/v1/units/{id}/track", tag = "record", operation_id = "get_track",
    summary = "Where a unit reported itself between two times",
    description = "Ordered by the fix's own time; at most 100 000 fixes, the earliest (`truncated`). \
        A unit without fixes in the window, or unknown, gives an empty track. JSON, or GeoJSON (one \
        Feature: a LineString, a Point for one fix, null for none).",
    params(
        ("id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "The unit's id"),
        ("from" = DateTime<Utc>, Query, description = "Fixes at or after (RFC 3339 with an offset)"),
        ("to" = DateTime<Utc>, Query, description = "Fixes at or before; after `from`, at most 7 days after it"),
        super::schemas::FormatParam,
    ),
    responses(
        (status = 200, description = "The track", content(
            (super::schemas::Track = "application/json"),
            (super::schemas::TrackFeature = "application/geo+json"),
        )),
        (status = 400, description = "`id` not a device id, `from` or `to` missing or out of range, an unknown parameter", body = super::schemas::BadRequest),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn track(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let unit = params::unit_id(path_id(&req))?.to_owned();
    let p = Params::parse(&req, &["from", "to", "format"])?;
    let from = p.required_time("from")?;
    let to = p.required_time("to")?;
    if to <= from {
        return Err(ApiError::bad("to", format!("must be after from ({to:?} is not after {from:?})")));
    }
    if to - from > MAX_TRACK_SPAN {
        return Err(ApiError::bad(
            "to",
            "is more than 7 days after from: ask for the track in pieces".into(),
        ));
    }
    let geojson = p.geojson(&req)?;
    let rows = sqlx::query(
        "SELECT at, received_at, ST_Y(position::geometry) AS lat, ST_X(position::geometry) AS lon, \
                speed_mps, heading_deg \
         FROM unit_positions WHERE unit_id = $1 AND at >= $2 AND at <= $3 ORDER BY at LIMIT $4",
    )
    .bind(&unit)
    .bind(from)
    .bind(to)
    .bind(MAX_TRACK_POINTS as i64 + 1)
    .fetch_all(pool.get_ref())
    .await?;
    let truncated = rows.len() > MAX_TRACK_POINTS;
    let points = rows
        .iter()
        .take(MAX_TRACK_POINTS)
        .map(|r| {
            Ok(TrackPoint {
                at: r.try_get("at")?,
                received_at: r.try_get("received_at")?,
                lat: r.try_get("lat")?,
                lon: r.try_get("lon")?,
                speed_mps: r.try_get("speed_mps")?,
                heading_deg: r.try_get("heading_deg")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;

    if geojson {
        let coordinates: Vec<[f64; 2]> = points.iter().map(|p| [p.lon, p.lat]).collect();
        // A LineString needs two positions: one point is a Point, none is no geometry.
        let geometry = match coordinates.len() {
            0 => Value::Null,
            1 => json!({"type": "Point", "coordinates": coordinates[0]}),
            _ => json!({"type": "LineString", "coordinates": coordinates}),
        };
        let times: Vec<DateTime<Utc>> = points.iter().map(|p| p.at).collect();
        let speeds: Vec<Option<f32>> = points.iter().map(|p| p.speed_mps).collect();
        let headings: Vec<Option<f32>> = points.iter().map(|p| p.heading_deg).collect();
        return Ok(geojson_response(&json!({
            "type": "Feature",
            "geometry": geometry,
            "properties": {
                "unit_id": unit,
                "from": from,
                "to": to,
                "count": points.len(),
                "truncated": truncated,
                "times": times,
                "speeds_mps": speeds,
                "headings_deg": headings,
            },
        })));
    }
    Ok(HttpResponse::Ok().json(json!({
        "unit_id": unit,
        "from": from,
        "to": to,
        "count": points.len(),
        "truncated": truncated,
        "points": points,
    })))
}

/// GET /api/v1/sites/containing
#[utoipa::path(
    get, path = "/api/v1/sites/containing", tag = "record", operation_id = "site_containing",
    summary = "The site whose area covers a point",
    description = "The smallest area covering it (boundary included); sites without an area are never \
        returned. JSON, or GeoJSON (a Feature with the area as its geometry).",
    params(
        ("lat" = f64, Query, minimum = -90, maximum = 90),
        ("lon" = f64, Query, minimum = -180, maximum = 180),
        super::schemas::FormatParam,
    ),
    responses(
        (status = 200, description = "The site", content(
            (super::schemas::Site = "application/json"),
            (super::schemas::SiteFeature = "application/geo+json"),
        )),
        (status = 400, description = "`lat` or `lon` missing or out of range, an unknown parameter", body = super::schemas::BadRequest),
        (status = 404, description = "No site's area covers the point", body = super::schemas::Error),
        (status = 503, description = "The database failed", body = super::schemas::Error),
    )
)]
pub async fn site_containing(req: HttpRequest, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    let p = Params::parse(&req, &["lat", "lon", "format"])?;
    let lat = p.one("lat")?.ok_or_else(|| ApiError::bad("lat", "is required".into()))?;
    let lat = params::latitude("lat", lat)?;
    let lon = p.one("lon")?.ok_or_else(|| ApiError::bad("lon", "is required".into()))?;
    let lon = params::longitude("lon", lon)?;
    let geojson = p.geojson(&req)?;
    let row = sqlx::query(
        "SELECT id, name, kind, ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon, \
                ST_AsGeoJSON(area)::jsonb AS area, ST_Area(area) AS area_m2 \
         FROM sites \
         WHERE area IS NOT NULL AND ST_Covers(area, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography) \
         ORDER BY ST_Area(area), id LIMIT 1",
    )
    .bind(lon)
    .bind(lat)
    .fetch_optional(pool.get_ref())
    .await?;
    let Some(row) = row else {
        return Err(ApiError::NotFound(format!("no site's area contains lat {lat}, lon {lon}")));
    };
    let id: String = row.try_get("id")?;
    let name: String = row.try_get("name")?;
    let kind: String = row.try_get("kind")?;
    let site_lat: f64 = row.try_get("lat")?;
    let site_lon: f64 = row.try_get("lon")?;
    let area: Value = row.try_get("area")?;
    let area_m2: f64 = row.try_get("area_m2")?;
    let location = json!({"lat": site_lat, "lon": site_lon});
    if geojson {
        return Ok(geojson_response(&json!({
            "type": "Feature",
            "id": id,
            "geometry": area,
            "properties": {"id": id, "name": name, "kind": kind, "location": location, "area_m2": area_m2},
        })));
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "name": name,
        "kind": kind,
        "location": location,
        "area": area,
        "area_m2": area_m2,
    })))
}
