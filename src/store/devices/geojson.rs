//! A GeoJSON FeatureCollection of sites and devices, checked as a whole without the database.

use std::collections::HashMap;

use kuzet_actors::ids::check_device_id;
use serde_json::{json, Value};

use super::import::ImportError;
use super::{parse_site_kind, site_kind_str};

#[derive(Debug, Clone)]
pub(super) enum Geometry {
    Point { lon: f64, lat: f64 },
    Polygon(Vec<Vec<[f64; 2]>>),
}

impl Geometry {
    pub(super) fn to_json(&self) -> Value {
        match self {
            Geometry::Point { lon, lat } => json!({"type": "Point", "coordinates": [lon, lat]}),
            Geometry::Polygon(rings) => json!({"type": "Polygon", "coordinates": rings}),
        }
    }

    pub(super) fn point(&self) -> Option<(f64, f64)> {
        match self {
            Geometry::Point { lon, lat } => Some((*lon, *lat)),
            Geometry::Polygon(_) => None,
        }
    }

    /// WKT of a polygon (Rust's float Display is shortest-round-trip and never exponential).
    pub(super) fn wkt(&self) -> Option<String> {
        let Geometry::Polygon(rings) = self else { return None };
        let rings: Vec<String> = rings
            .iter()
            .map(|r| {
                let pts: Vec<String> = r.iter().map(|[x, y]| format!("{x} {y}")).collect();
                format!("({})", pts.join(","))
            })
            .collect();
        Some(format!("POLYGON({})", rings.join(",")))
    }
}

#[derive(Debug, Clone)]
pub(super) struct SiteRow {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) geometry: Geometry,
}

#[derive(Debug, Clone)]
pub(super) struct DeviceRow {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) kind: &'static str,
    pub(super) site: Option<String>,
    pub(super) room: Option<String>,
    pub(super) callsign: Option<String>,
    pub(super) position: Option<(f64, f64)>,
    pub(super) custodial: bool,
}

impl DeviceRow {
    pub(super) fn details(&self) -> Value {
        let mut v = json!({"kind": self.kind});
        match self.kind {
            "button" => {
                v["site"] = json!(self.site);
                v["room"] = json!(self.room);
            }
            "unit" => v["callsign"] = json!(self.callsign),
            _ => {
                v["site"] = json!(self.site);
                v["custodial"] = json!(self.custodial);
            }
        }
        if let Some((lon, lat)) = self.position {
            v["geometry"] = json!({"type": "Point", "coordinates": [lon, lat]});
        }
        v
    }
}

type Reason = String;

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn position(v: &Value) -> Result<[f64; 2], Reason> {
    let Some(arr) = v.as_array() else {
        return Err(format!("a position must be an array [lon, lat], got {}", describe(v)));
    };
    if arr.len() < 2 || arr.len() > 3 {
        return Err(format!("a position must be [lon, lat] or [lon, lat, altitude], got {}", describe(v)));
    }
    let nums: Option<Vec<f64>> = arr.iter().map(Value::as_f64).collect();
    let Some(nums) = nums else {
        return Err(format!("coordinates must be numbers, got {}", describe(v)));
    };
    let (lon, lat) = (nums[0], nums[1]);
    if !lon.is_finite()
        || !lat.is_finite()
        || !(-180.0..=180.0).contains(&lon)
        || !(-90.0..=90.0).contains(&lat)
    {
        return Err(format!("coordinates [{lon:?}, {lat:?}] are out of range (lon -180..180, lat -90..90)"));
    }
    Ok([lon, lat])
}

fn geometry(v: &Value) -> Result<Option<Geometry>, Reason> {
    if v.is_null() {
        return Ok(None);
    }
    let Some(obj) = v.as_object() else {
        return Err(format!("geometry must be an object or null, got {}", describe(v)));
    };
    let ty = obj.get("type").and_then(Value::as_str).ok_or("geometry has no \"type\" string")?;
    let coords = obj.get("coordinates").ok_or_else(|| format!("{ty} geometry has no \"coordinates\""))?;
    match ty {
        "Point" => {
            let [lon, lat] = position(coords)?;
            Ok(Some(Geometry::Point { lon, lat }))
        }
        "Polygon" => {
            let rings = coords.as_array().ok_or("Polygon coordinates must be an array of rings")?;
            if rings.is_empty() {
                return Err("Polygon has no rings".into());
            }
            let mut out = Vec::with_capacity(rings.len());
            for (r, ring) in rings.iter().enumerate() {
                let pts = ring
                    .as_array()
                    .ok_or_else(|| format!("Polygon ring {r} must be an array of positions"))?;
                if pts.len() < 4 {
                    return Err(format!(
                        "Polygon ring {r} has {} positions, at least 4 are needed",
                        pts.len()
                    ));
                }
                let pts: Vec<[f64; 2]> = pts.iter().map(position).collect::<Result<_, _>>()?;
                if pts.first() != pts.last() {
                    return Err(format!(
                        "Polygon ring {r} is not closed: it starts at {:?} and ends at {:?}",
                        pts[0],
                        pts[pts.len() - 1]
                    ));
                }
                out.push(pts);
            }
            Ok(Some(Geometry::Polygon(out)))
        }
        other => Err(format!("unsupported geometry type {other:?} (Point or Polygon)")),
    }
}

fn prop_str<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Reason> {
    match props.get(key) {
        None | Some(Value::Null) => Err(format!("property \"{key}\" is missing")),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("property \"{key}\" must be a string, got {}", describe(v))),
    }
}

fn prop_opt_str<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<Option<&'a str>, Reason> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("property \"{key}\" must be a string, got {}", describe(v))),
    }
}

fn prop_id<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Reason> {
    let id = prop_str(props, key)?;
    check_device_id(id).map_err(|e| format!("property \"{key}\" {id:?} is not a valid id: {e}"))?;
    Ok(id)
}

fn non_empty<'a>(props: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Reason> {
    let s = prop_str(props, key)?;
    if s.trim().is_empty() {
        return Err(format!("property \"{key}\" is empty"));
    }
    Ok(s)
}

enum Parsed {
    Site(SiteRow),
    Device(DeviceRow),
}

fn feature(index: usize, f: &Value) -> Result<Parsed, Reason> {
    let Some(obj) = f.as_object() else {
        return Err(format!("a feature must be an object, got {}", describe(f)));
    };
    match obj.get("type") {
        Some(Value::String(t)) if t == "Feature" => {}
        Some(v) => return Err(format!("\"type\" must be \"Feature\", got {}", describe(v))),
        None => return Err("\"type\": \"Feature\" is missing".into()),
    }
    let props = match obj.get("properties") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => return Err("\"properties\" is missing".into()),
        Some(v) => return Err(format!("\"properties\" must be an object, got {}", describe(v))),
    };
    let kind = prop_str(props, "kind")?;
    let geom = geometry(obj.get("geometry").unwrap_or(&Value::Null))?;
    let point_only = |what: &str, required: bool| -> Result<Option<(f64, f64)>, Reason> {
        match &geom {
            None if required => Err(format!("a {what} needs a Point geometry")),
            None => Ok(None),
            Some(Geometry::Point { lon, lat }) => Ok(Some((*lon, *lat))),
            Some(Geometry::Polygon(_)) => Err(format!("a {what}'s geometry must be a Point, not a Polygon")),
        }
    };
    let device = |kind: &'static str, id: &str| DeviceRow {
        index,
        id: id.to_owned(),
        kind,
        site: None,
        room: None,
        callsign: None,
        position: None,
        custodial: false,
    };
    match kind {
        "site" => {
            let id = prop_id(props, "id")?;
            let name = non_empty(props, "name")?;
            let sk = prop_str(props, "site_kind")?;
            let sk = parse_site_kind(sk)
                .map(site_kind_str)
                .ok_or_else(|| format!("site_kind {sk:?} is not one of school, police_station, prison"))?;
            let geometry =
                geom.ok_or("a site needs a Point (its location) or Polygon (its area) geometry")?;
            Ok(Parsed::Site(SiteRow { index, id: id.to_owned(), name: name.to_owned(), kind: sk, geometry }))
        }
        "button" => {
            let id = prop_id(props, "id")?;
            let site = prop_id(props, "site")?;
            let room = prop_opt_str(props, "room")?;
            let mut d = device("button", id);
            d.site = Some(site.to_owned());
            d.room = room.map(str::to_owned);
            d.position = point_only("button", false)?;
            Ok(Parsed::Device(d))
        }
        "unit" => {
            let id = prop_id(props, "id")?;
            let callsign = non_empty(props, "callsign")?;
            let mut d = device("unit", id);
            d.callsign = Some(callsign.to_owned());
            d.position = point_only("unit", false)?;
            Ok(Parsed::Device(d))
        }
        "camera" => {
            let id = prop_id(props, "id")?;
            let site = match props.get("site") {
                None | Some(Value::Null) => None,
                Some(_) => Some(prop_id(props, "site")?),
            };
            let custodial = match props.get("custodial") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return Err(format!("property \"custodial\" must be true or false, got {}", describe(v)))
                }
            };
            let mut d = device("camera", id);
            d.site = site.map(str::to_owned);
            d.custodial = custodial;
            d.position = point_only("camera", true)?;
            Ok(Parsed::Device(d))
        }
        other => Err(format!("unknown kind {other:?} (site, button, unit or camera)")),
    }
}

/// Checks the whole file without the database: everything but site references to sites
/// that are only in the database and polygon validity.
pub(super) fn parse_collection(text: &str) -> Result<(Vec<SiteRow>, Vec<DeviceRow>, usize), ImportError> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| ImportError::File(format!("not valid JSON: {e}")))?;
    let Some(obj) = root.as_object() else {
        return Err(ImportError::File(
            "not a GeoJSON FeatureCollection: the top level is not an object".into(),
        ));
    };
    if obj.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(ImportError::File(format!(
            "not a GeoJSON FeatureCollection: \"type\" is {}",
            obj.get("type").map(describe).unwrap_or_else(|| "missing".into())
        )));
    }
    let Some(features) = obj.get("features").and_then(Value::as_array) else {
        return Err(ImportError::File("a FeatureCollection needs a \"features\" array".into()));
    };
    let mut sites = Vec::new();
    let mut devices = Vec::new();
    let mut site_ids: HashMap<String, usize> = HashMap::new();
    let mut device_ids: HashMap<String, usize> = HashMap::new();
    for (index, f) in features.iter().enumerate() {
        let err = |reason| ImportError::Feature { index, reason };
        match feature(index, f).map_err(err)? {
            Parsed::Site(s) => {
                if let Some(first) = site_ids.insert(s.id.clone(), index) {
                    return Err(err(format!("site id {:?} is already used by feature {first}", s.id)));
                }
                sites.push(s);
            }
            Parsed::Device(d) => {
                if let Some(first) = device_ids.insert(d.id.clone(), index) {
                    return Err(err(format!("device id {:?} is already used by feature {first}", d.id)));
                }
                devices.push(d);
            }
        }
    }
    Ok((sites, devices, features.len()))
}
