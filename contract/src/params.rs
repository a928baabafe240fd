//! Query-string parsing for the HTTP API, with no web framework: every parameter checked,
//! every refusal naming the parameter and the reason, and no parameter the endpoint does not
//! know. The API (`kuzet::http::params`) reads the request and turns a `ParamError` into its
//! 400; the parsers live here so they build, and are fuzzed, on their own.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A refused parameter: which one, and why (the 400's `parameter` and `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct ParamError {
    pub parameter: String,
    pub message: String,
}

impl ParamError {
    pub fn new(parameter: &str, message: String) -> Self {
        Self { parameter: parameter.to_owned(), message }
    }
}

/// The incident states kuzet writes.
pub const STATES: [&str; 7] =
    ["dispatching", "dispatched", "uncovered", "en_route", "on_scene", "closed", "cancelled"];
/// The states `state=closed` stands for; `state=open` is every other state.
pub const FINISHED: [&str; 2] = ["closed", "cancelled"];

/// Largest `radius_m` accepted with `near`.
pub const MAX_RADIUS_M: f64 = 100_000.0;
/// `limit` when none is given, and the largest accepted.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

pub use crate::text::{echo, ECHO_CHARS};

/// The decoded query string of one request.
#[derive(Debug, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes `query` (the part after '?'); refuses parameters not in `allowed`.
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Self, ParamError> {
        // The decoding actix-web's `Query` does, so refusals stay what they were.
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query).map_err(|_| {
            ParamError::new("query string", "cannot be decoded (bad percent-encoding or UTF-8)".into())
        })?;
        for (key, _) in &pairs {
            if !allowed.contains(&key.as_str()) {
                let takes = if allowed.is_empty() { "no parameters".to_owned() } else { allowed.join(", ") };
                return Err(ParamError::new(
                    key,
                    format!("unknown query parameter {} (this endpoint takes: {takes})", echo(key)),
                ));
            }
        }
        Ok(Self { pairs })
    }

    /// Every value given for `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name`, if given; refused when given more than once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ParamError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ParamError::new(name, "given more than once".into()));
        }
        Ok(first)
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ParamError> {
        self.one(name)?.map(|raw| parse_time(name, raw)).transpose()
    }

    pub fn required_time(&self, name: &str) -> Result<DateTime<Utc>, ParamError> {
        self.time(name)?.ok_or_else(|| ParamError::new(name, "is required (an RFC 3339 time)".into()))
    }

    /// `format=json|geojson`: `Some(true)` for GeoJSON, `None` when not given (the Accept
    /// header decides, `accepts_geojson`).
    pub fn format(&self) -> Result<Option<bool>, ParamError> {
        match self.one("format")? {
            Some("json") => Ok(Some(false)),
            Some("geojson") => Ok(Some(true)),
            Some(other) => {
                Err(ParamError::new("format", format!("must be json or geojson, not {}", echo(other))))
            }
            None => Ok(None),
        }
    }
}

/// Whether Accept header values name `application/geo+json` (with a non-zero q).
pub fn accepts_geojson<'a>(accept: impl IntoIterator<Item = &'a str>) -> bool {
    accept.into_iter().flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/geo+json") {
            return false;
        }
        // q=0 means "not this one".
        !parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        })
    })
}

/// An RFC 3339 time. A '+' in a query string decodes to a space, so a space where the
/// offset's sign belongs is read back as '+'.
pub fn parse_time(name: &str, raw: &str) -> Result<DateTime<Utc>, ParamError> {
    let parsed = DateTime::parse_from_rfc3339(raw).or_else(|e| match (raw.get(..19), raw.get(19..)) {
        (Some(head), Some(tail)) if tail.contains(' ') => {
            DateTime::parse_from_rfc3339(&format!("{head}{}", tail.replace(' ', "+")))
        }
        _ => Err(e),
    });
    parsed.map(|t| t.with_timezone(&Utc)).map_err(|_| {
        ParamError::new(name, format!("{} is not an RFC 3339 time such as 2026-11-25T21:40:00Z", echo(raw)))
    })
}

/// A finite number, or a refusal naming `name`.
fn number(name: &str, raw: &str) -> Result<f64, ParamError> {
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ParamError::new(name, format!("{} is not a finite number", echo(raw)))),
    }
}

pub fn latitude(name: &str, raw: &str) -> Result<f64, ParamError> {
    let v = number(name, raw)?;
    if !(-90.0..=90.0).contains(&v) {
        return Err(ParamError::new(name, format!("latitude {v} is outside -90..90")));
    }
    Ok(v)
}

pub fn longitude(name: &str, raw: &str) -> Result<f64, ParamError> {
    let v = number(name, raw)?;
    if !(-180.0..=180.0).contains(&v) {
        return Err(ParamError::new(name, format!("longitude {v} is outside -180..180")));
    }
    Ok(v)
}

/// A lon/lat rectangle, edges included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

/// `min_lon,min_lat,max_lon,max_lat`.
pub fn bbox(raw: &str) -> Result<BBox, ParamError> {
    let parts: Vec<&str> = raw.split(',').collect();
    if parts.len() != 4 {
        return Err(ParamError::new(
            "bbox",
            format!("{} must be four numbers min_lon,min_lat,max_lon,max_lat", echo(raw)),
        ));
    }
    let b = BBox {
        min_lon: longitude("bbox", parts[0])?,
        min_lat: latitude("bbox", parts[1])?,
        max_lon: longitude("bbox", parts[2])?,
        max_lat: latitude("bbox", parts[3])?,
    };
    if b.min_lon > b.max_lon {
        return Err(ParamError::new(
            "bbox",
            format!("min_lon {} is greater than max_lon {}", b.min_lon, b.max_lon),
        ));
    }
    if b.min_lat > b.max_lat {
        return Err(ParamError::new(
            "bbox",
            format!("min_lat {} is greater than max_lat {}", b.min_lat, b.max_lat),
        ));
    }
    Ok(b)
}

/// `lat,lon`.
pub fn near(raw: &str) -> Result<(f64, f64), ParamError> {
    let Some((lat, lon)) = raw.split_once(',') else {
        return Err(ParamError::new("near", format!("{} must be lat,lon", echo(raw))));
    };
    if lon.contains(',') {
        return Err(ParamError::new("near", format!("{} must be lat,lon", echo(raw))));
    }
    Ok((latitude("near", lat)?, longitude("near", lon)?))
}

pub fn radius(raw: &str) -> Result<f64, ParamError> {
    let r = number("radius_m", raw)?;
    if !(0.0..=MAX_RADIUS_M).contains(&r) {
        return Err(ParamError::new("radius_m", format!("{r} is outside 0..{MAX_RADIUS_M} metres")));
    }
    Ok(r)
}

pub fn limit(raw: Option<&str>) -> Result<i64, ParamError> {
    let Some(raw) = raw else { return Ok(DEFAULT_LIMIT) };
    match raw.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ParamError::new(
            "limit",
            format!("{} is not a whole number from 1 to {MAX_LIMIT}", echo(raw)),
        )),
    }
}

/// The states named by every `state` value (repeated and/or comma-separated); `None` when no
/// `state` was given.
pub fn states<'a>(values: impl Iterator<Item = &'a str>) -> Result<Option<Vec<String>>, ParamError> {
    let mut any = false;
    let mut set = BTreeSet::new();
    for value in values {
        any = true;
        for name in value.split(',') {
            let name = name.trim();
            match name {
                "open" => set.extend(STATES.iter().filter(|s| !FINISHED.contains(s))),
                "closed" => set.extend(FINISHED.iter()),
                s if STATES.contains(&s) => {
                    set.insert(STATES.iter().find(|x| **x == s).expect("listed"));
                }
                "" => return Err(ParamError::new("state", "is empty".into())),
                other => {
                    return Err(ParamError::new(
                        "state",
                        format!("unknown state {} (one of open, closed, {})", echo(other), STATES.join(", ")),
                    ))
                }
            }
        }
    }
    Ok(any.then(|| set.into_iter().map(|s| (*s).to_owned()).collect()))
}

/// Free text from a request body (a reason, a name): refused, naming `name`, when it holds a
/// control character (`crate::text`), which the record could not hold or would show garbled.
pub fn text(name: &str, raw: &str) -> Result<(), ParamError> {
    crate::text::check_text(raw).map_err(|e| ParamError::new(name, e.to_string()))
}

/// The `{id}` of an incident path.
pub fn incident_id(raw: &str) -> Result<Uuid, ParamError> {
    Uuid::parse_str(raw).map_err(|_| ParamError::new("id", format!("{} is not a UUID", echo(raw))))
}

/// The `{id}` of a unit path: the device id pattern ^[a-z0-9][a-z0-9-]{0,63}$.
pub fn unit_id(raw: &str) -> Result<&str, ParamError> {
    kuzet_actors::ids::check_device_id(raw)
        .map(|()| raw)
        .map_err(|e| ParamError::new("id", format!("{} is not a device id: {e}", echo(raw))))
}

#[cfg(test)]
mod tests;
