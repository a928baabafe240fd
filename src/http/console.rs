//! What the console and the tablet page need beyond the record: the map's base layer and
//! devices, a dispatcher's orders to an incident (assign, reassign, cancel), and a tablet's
//! broker settings for its officer's unit.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use kuzet_actors::ids::{IncidentId, UnitId};
use kuzet_actors::incident::{DispatcherOrder, Order};
use kuzet_actors::registry::IncidentAddr;
use kuzet_actors::spec::Devices;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::live::LiveState;
use super::{params, session, ApiError};
use crate::roads::RoadNetwork;

/// Built once at start: the map never changes while kuzet runs.
pub struct MapInfo {
    json: bytes::Bytes,
}

impl MapInfo {
    /// Roads come from the loaded network (the offline base layer), as polylines of flat
    /// `[lat, lon, lat, lon, ...]` rounded to ~1 m.
    pub fn new(devices: &Devices, roads: Option<&RoadNetwork>, tile_url: &str, attribution: &str) -> Self {
        let lines = roads.map(road_lines).unwrap_or_default();
        let mut lat = (f64::INFINITY, f64::NEG_INFINITY);
        let mut lon = (f64::INFINITY, f64::NEG_INFINITY);
        let mut widen = |la: f64, lo: f64| {
            lat = (lat.0.min(la), lat.1.max(la));
            lon = (lon.0.min(lo), lon.1.max(lo));
        };
        for l in &lines {
            for p in l.chunks_exact(2) {
                widen(p[0], p[1]);
            }
        }
        let sites: Vec<_> = devices
            .sites
            .iter()
            .map(|s| {
                widen(s.location.lat(), s.location.lon());
                json!({"site_id": s.id, "name": s.name, "kind": s.kind, "lat": s.location.lat(), "lon": s.location.lon()})
            })
            .collect();
        let cameras: Vec<_> = devices
            .cameras
            .iter()
            .map(|c| {
                widen(c.location.lat(), c.location.lon());
                json!({"camera_id": c.id, "lat": c.location.lat(), "lon": c.location.lon(),
                       "custodial": c.custodial, "site_id": c.site})
            })
            .collect();
        let units: Vec<_> =
            devices.units.iter().map(|u| json!({"unit_id": u.id, "callsign": u.callsign})).collect();
        let bounds = lat.0.is_finite().then_some([[lat.0, lon.0], [lat.1, lon.1]]);
        let blank = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let v = json!({
            "bounds": bounds, "tile_url": blank(tile_url), "tile_attribution": blank(attribution),
            "roads": lines, "sites": sites, "cameras": cameras, "units": units,
        });
        Self { json: serde_json::to_vec(&v).unwrap_or_default().into() }
    }

    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

/// The network's edges joined into polylines: each road segment once (not once per
/// direction), consecutive segments of one way in one line.
fn road_lines(net: &RoadNetwork) -> Vec<Vec<f64>> {
    let g = net.graph();
    let round = |x: f64| (x * 1e5).round() / 1e5;
    let mut seen = std::collections::HashSet::with_capacity(g.edges.len());
    let mut lines: Vec<Vec<f64>> = Vec::new();
    let mut last: Option<(u32, i64)> = None;
    for e in &g.edges {
        if !seen.insert((e.from.min(e.to), e.from.max(e.to))) {
            continue;
        }
        let (la, lo) = g.coords[e.to as usize];
        match (last, lines.last_mut()) {
            (Some((node, way)), Some(line)) if node == e.from && way == e.way_id => {
                line.extend([round(la), round(lo)]);
            }
            _ => {
                let (fa, fo) = g.coords[e.from as usize];
                lines.push(vec![round(fa), round(fo), round(la), round(lo)]);
            }
        }
        last = Some((e.to, e.way_id));
    }
    lines
}

/// How a tablet reaches the broker: a fixed address from settings, or kuzet's own broker's
/// WebSocket listener on the host the page came from.
pub struct TabletAccess {
    pub url: Option<String>,
    pub ws_port: Option<u16>,
    /// Broker passwords the registry file carries (demo and test registries); production
    /// keeps them in the broker's password file, and the tablet is provisioned with its own.
    pub credentials: HashMap<String, String>,
    pub callsigns: HashMap<String, String>,
}

fn state(s: &Option<web::Data<LiveState>>) -> Result<&LiveState, ApiError> {
    s.as_ref().map(|d| d.get_ref()).ok_or_else(|| ApiError::NotFound("no dispatch in this process".into()))
}

/// GET /api/v1/map
#[utoipa::path(
    get, path = "/api/v1/map", tag = "console", operation_id = "get_map",
    summary = "What the pages draw their maps from",
    description = "The road network kuzet loaded, the sites, the cameras and the units' call signs, \
        built once at start; `Cache-Control: private, max-age=300`.",
    responses(
        (status = 200, description = "The map", body = super::schemas::Map),
        (status = 404, description = "No dispatch in this process", body = super::schemas::Error),
    )
)]
pub async fn map(s: Option<web::Data<LiveState>>) -> Result<HttpResponse, ApiError> {
    let s = state(&s)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "private, max-age=300"))
        .body(s.map.json.clone()))
}

/// GET /api/v1/tablet: the signed-in officer's unit and how its tablet connects.
#[utoipa::path(
    get, path = "/api/v1/tablet", tag = "console", operation_id = "get_tablet",
    summary = "An officer's unit and how its tablet reaches the broker",
    description = "MQTT over WebSockets for the officer's unit; `Cache-Control: no-store`.",
    responses(
        (status = 200, description = "The tablet's settings", body = super::schemas::Tablet),
        (status = 404, description = "No dispatch in this process, or the user has no unit", body = super::schemas::Error),
        (status = 503, description = "No broker WebSocket for tablets (neither `http.tablet_mqtt_url` nor `broker.ws_listen`)", body = super::schemas::Error),
    )
)]
pub async fn tablet(req: HttpRequest, s: Option<web::Data<LiveState>>) -> Result<HttpResponse, ApiError> {
    let s = state(&s)?;
    let user = session::user(&req);
    let unit = user.unit_id.clone().ok_or_else(|| ApiError::NotFound("this user has no unit".into()))?;
    let t = &s.tablets;
    let url = match (&t.url, t.ws_port) {
        (Some(u), _) => u.clone(),
        (None, Some(port)) => {
            let host = req.connection_info().host().to_owned();
            let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_owned();
            format!("ws://{name}:{port}/mqtt")
        }
        (None, None) => {
            return Err(ApiError::Unavailable(
                "no broker WebSocket for tablets: set http.tablet_mqtt_url or broker.ws_listen".into(),
            ))
        }
    };
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({
        "unit_id": unit,
        "callsign": t.callsigns.get(&unit),
        // Only a unit's password: an officer bound by mistake to a button's or camera's id
        // gets none.
        "mqtt": {"url": url, "username": unit, "password": t.callsigns.get(&unit).and(t.credentials.get(&unit)),
                 "client_id": unit},
    })))
}

/// A dispatcher's order to send a unit, or to send it in place of another.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// The unit to send.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    unit_id: String,
    /// The unit on the incident it replaces.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    replace: Option<String>,
}

/// A dispatcher's order to cancel an incident.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why: not blank, at most 500 bytes, no control characters.
    #[schema(value_type = super::schemas::Solid)]
    reason: String,
}

/// POST /api/v1/incidents/{id}/assign
#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/assign", tag = "console", operation_id = "assign_unit",
    summary = "Send a unit to an open incident, or in place of a unit on it",
    description = "The unit gets an offer like any other (the officer still accepts). Answered once \
        the order is in kuzet's record.",
    params(("id" = uuid::Uuid, Path, description = "The incident's id")),
    request_body = AssignBody,
    responses(
        (status = 200, description = "The incident just after the order", body = super::schemas::IncidentSnapshot),
        (status = 400, description = "`id` not a UUID; `unit_id` or `replace` not a device id; `body` not JSON, no `unit_id`, another field", body = super::schemas::BadRequest),
        (status = 404, description = "No open incident with this id", body = super::schemas::Error),
        (status = 409, description = "The unit cannot take it now, is already on it, `replace` is not on it, or the incident ended meanwhile", body = super::schemas::Error),
        (status = 413, description = "A body over 4 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The order was carried out but could not be recorded, or the database failed", body = super::schemas::Error),
    )
)]
pub async fn assign(
    req: HttpRequest,
    s: Option<web::Data<LiveState>>,
    pool: web::Data<PgPool>,
    body: web::Json<AssignBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let unit = UnitId::parse(&body.unit_id).map_err(|e| ApiError::bad("unit_id", e.to_string()))?;
    let replace = body
        .replace
        .as_deref()
        .map(UnitId::parse)
        .transpose()
        .map_err(|e| ApiError::bad("replace", e.to_string()))?;
    let detail = json!({"unit_id": unit, "replace": replace});
    order(&req, s, &pool, Order::Assign { unit, replace }, "incident.assign", detail).await
}

/// POST /api/v1/incidents/{id}/cancel
#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/cancel", tag = "console", operation_id = "cancel_incident",
    summary = "Close an open incident as cancelled",
    description = "As when a button withdraws the last alarm: units and buttons are told. Answered once \
        the order is in kuzet's record.",
    params(("id" = uuid::Uuid, Path, description = "The incident's id")),
    request_body = CancelBody,
    responses(
        (status = 200, description = "The final snapshot (state `cancelled`)", body = super::schemas::IncidentSnapshot),
        (status = 400, description = "`id` not a UUID; `reason` blank, over 500 bytes or holding a control character; `body` not JSON, no `reason`, another field", body = super::schemas::BadRequest),
        (status = 404, description = "No open incident with this id", body = super::schemas::Error),
        (status = 409, description = "The incident cannot be cancelled as things stand", body = super::schemas::Error),
        (status = 413, description = "A body over 4 KiB", body = super::schemas::BadRequest),
        (status = 503, description = "The order was carried out but could not be recorded, or the database failed", body = super::schemas::Error),
    )
)]
pub async fn cancel(
    req: HttpRequest,
    s: Option<web::Data<LiveState>>,
    pool: web::Data<PgPool>,
    body: web::Json<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason.trim().to_owned();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::bad("reason", "required, at most 500 bytes".into()));
    }
    params::text("reason", &reason)?;
    let detail = json!({"reason": reason});
    order(&req, s, &pool, Order::Cancel { reason }, "incident.cancel", detail).await
}

async fn order(
    req: &HttpRequest,
    s: Option<web::Data<LiveState>>,
    pool: &PgPool,
    order: Order,
    action: &str,
    detail: serde_json::Value,
) -> Result<HttpResponse, ApiError> {
    let s = state(&s)?;
    let raw = req.match_info().get("id").unwrap_or_default();
    let id = raw
        .parse::<uuid::Uuid>()
        .map(IncidentId)
        .map_err(|_| ApiError::bad("id", format!("{raw:?} is not an incident id")))?;
    let by = session::user(req).username;
    let gone = || ApiError::NotFound(format!("no open incident {id}"));
    let incident = s.registry.send(IncidentAddr(id)).await.ok().flatten().ok_or_else(gone)?;
    let (snapshot, recorded) = match incident.send(DispatcherOrder { order, by: by.clone() }).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(ApiError::Conflict(e.to_string())),
        // The incident ended (and its actor stopped) while the order was on its way.
        Err(_) => return Err(gone()),
    };
    sqlx::query("SELECT audit_append($1, $2, $3, $4)")
        .bind(format!("user:{by}"))
        .bind(action)
        .bind(id.to_string())
        .bind(detail)
        .execute(pool)
        .await?;
    // Answered only once the order's effect is in the record: a 200 survives a restart.
    if !recorded.wait().await {
        return Err(ApiError::Unavailable("the order was carried out but could not be recorded".into()));
    }
    Ok(HttpResponse::Ok().json(snapshot))
}
