//! Query-string parsing for the API: every parameter checked, every refusal naming the
//! parameter and the reason, and no parameter the endpoint does not know.

use std::collections::BTreeSet;

use actix_web::http::header;
use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ApiError;

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

/// How much of a refused value an error message repeats.
const ECHO_CHARS: usize = 40;

/// A refused value, quoted and shortened, for an error message.
pub fn echo(raw: &str) -> String {
    if raw.chars().count() <= ECHO_CHARS {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(ECHO_CHARS).collect();
        format!("{head:?}...")
    }
}

/// The decoded query string of one request.
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes `req`'s query string; refuses parameters not in `allowed`.
    pub fn parse(req: &HttpRequest, allowed: &[&str]) -> Result<Self, ApiError> {
        let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|_| {
                ApiError::bad("query string", "cannot be decoded (bad percent-encoding or UTF-8)".into())
            })?
            .into_inner();
        for (key, _) in &pairs {
            if !allowed.contains(&key.as_str()) {
                let takes = if allowed.is_empty() { "no parameters".to_owned() } else { allowed.join(", ") };
                return Err(ApiError::bad(
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
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad(name, "given more than once".into()));
        }
        Ok(first)
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.one(name)?.map(|raw| parse_time(name, raw)).transpose()
    }

    pub fn required_time(&self, name: &str) -> Result<DateTime<Utc>, ApiError> {
        self.time(name)?.ok_or_else(|| ApiError::bad(name, "is required (an RFC 3339 time)".into()))
    }

    /// `format=json|geojson`, else the request's Accept header: GeoJSON when it names
    /// `application/geo+json` (with a non-zero q).
    pub fn geojson(&self, req: &HttpRequest) -> Result<bool, ApiError> {
        match self.one("format")? {
            Some("json") => Ok(false),
            Some("geojson") => Ok(true),
            Some(other) => {
                Err(ApiError::bad("format", format!("must be json or geojson, not {}", echo(other))))
            }
            None => Ok(accepts_geojson(req)),
        }
    }
}

fn accepts_geojson(req: &HttpRequest) -> bool {
    req.headers().get_all(header::ACCEPT).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
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
        },
    )
}

/// An RFC 3339 time. A '+' in a query string decodes to a space, so a space where the
/// offset's sign belongs is read back as '+'.
pub fn parse_time(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(raw).or_else(|e| match (raw.get(..19), raw.get(19..)) {
        (Some(head), Some(tail)) if tail.contains(' ') => {
            DateTime::parse_from_rfc3339(&format!("{head}{}", tail.replace(' ', "+")))
        }
        _ => Err(e),
    });
    parsed.map(|t| t.with_timezone(&Utc)).map_err(|_| {
        ApiError::bad(name, format!("{} is not an RFC 3339 time such as 2026-11-25T21:40:00Z", echo(raw)))
    })
}

/// A finite number, or a refusal naming `name`.
fn number(name: &str, raw: &str) -> Result<f64, ApiError> {
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ApiError::bad(name, format!("{} is not a finite number", echo(raw)))),
    }
}

pub fn latitude(name: &str, raw: &str) -> Result<f64, ApiError> {
    let v = number(name, raw)?;
    if !(-90.0..=90.0).contains(&v) {
        return Err(ApiError::bad(name, format!("latitude {v} is outside -90..90")));
    }
    Ok(v)
}

pub fn longitude(name: &str, raw: &str) -> Result<f64, ApiError> {
    let v = number(name, raw)?;
    if !(-180.0..=180.0).contains(&v) {
        return Err(ApiError::bad(name, format!("longitude {v} is outside -180..180")));
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
pub fn bbox(raw: &str) -> Result<BBox, ApiError> {
    let parts: Vec<&str> = raw.split(',').collect();
    if parts.len() != 4 {
        return Err(ApiError::bad(
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
        return Err(ApiError::bad(
            "bbox",
            format!("min_lon {} is greater than max_lon {}", b.min_lon, b.max_lon),
        ));
    }
    if b.min_lat > b.max_lat {
        return Err(ApiError::bad(
            "bbox",
            format!("min_lat {} is greater than max_lat {}", b.min_lat, b.max_lat),
        ));
    }
    Ok(b)
}

/// `lat,lon`.
pub fn near(raw: &str) -> Result<(f64, f64), ApiError> {
    let Some((lat, lon)) = raw.split_once(',') else {
        return Err(ApiError::bad("near", format!("{} must be lat,lon", echo(raw))));
    };
    if lon.contains(',') {
        return Err(ApiError::bad("near", format!("{} must be lat,lon", echo(raw))));
    }
    Ok((latitude("near", lat)?, longitude("near", lon)?))
}

pub fn radius(raw: &str) -> Result<f64, ApiError> {
    let r = number("radius_m", raw)?;
    if !(0.0..=MAX_RADIUS_M).contains(&r) {
        return Err(ApiError::bad("radius_m", format!("{r} is outside 0..{MAX_RADIUS_M} metres")));
    }
    Ok(r)
}

pub fn limit(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else { return Ok(DEFAULT_LIMIT) };
    match raw.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => {
            Err(ApiError::bad("limit", format!("{} is not a whole number from 1 to {MAX_LIMIT}", echo(raw))))
        }
    }
}

/// The states named by every `state` value (repeated and/or comma-separated); `None` when no
/// `state` was given.
pub fn states<'a>(values: impl Iterator<Item = &'a str>) -> Result<Option<Vec<String>>, ApiError> {
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
                "" => return Err(ApiError::bad("state", "is empty".into())),
                other => {
                    return Err(ApiError::bad(
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
pub fn text(name: &str, raw: &str) -> Result<(), ApiError> {
    crate::text::check_text(raw).map_err(|e| ApiError::bad(name, e.to_string()))
}

/// The `{id}` of an incident path.
pub fn incident_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::bad("id", format!("{} is not a UUID", echo(raw))))
}

/// The `{id}` of a unit path: the device id pattern ^[a-z0-9][a-z0-9-]{0,63}$.
pub fn unit_id(raw: &str) -> Result<&str, ApiError> {
    kuzet_actors::ids::check_device_id(raw)
        .map(|()| raw)
        .map_err(|e| ApiError::bad("id", format!("{} is not a device id: {e}", echo(raw))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(e: ApiError) -> String {
        match e {
            ApiError::BadRequest { parameter, .. } => parameter,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn times_with_a_decoded_plus_are_read_back() {
        let t = parse_time("from", "2026-11-25T21:40:00 05:00").unwrap();
        assert_eq!(t, parse_time("from", "2026-11-25T16:40:00Z").unwrap());
        assert_eq!(parameter(parse_time("from", "yesterday").unwrap_err()), "from");
        assert_eq!(parameter(parse_time("to", "2026-11-25 21:40").unwrap_err()), "to");
        // No panic on a multi-byte character where the offset would be.
        assert!(parse_time("from", "2026-11-25T21:40:0\u{e9} 05:00").is_err());
        assert!(parse_time("from", "2026-11-25T21:40:00\u{e9}05:00").is_err());
    }

    #[test]
    fn coordinates_must_be_finite_and_in_range() {
        for bad in ["NaN", "inf", "-infinity", "91", "", "1e400"] {
            assert!(latitude("lat", bad).is_err(), "{bad}");
        }
        assert!(longitude("lon", "180.0001").is_err());
        assert_eq!(longitude("lon", " -180 ").unwrap(), -180.0);
    }

    #[test]
    fn bbox_order_and_count() {
        assert!(bbox("1,2,3,4").is_ok());
        assert!(bbox("3,2,1,4").is_err());
        assert!(bbox("1,4,3,2").is_err());
        assert!(bbox("1,2,3").is_err());
        assert!(bbox("1,2,3,4,5").is_err());
    }

    #[test]
    fn states_expand_open_and_closed() {
        let s = states(["open", "closed"].into_iter()).unwrap().unwrap();
        assert_eq!(s.len(), STATES.len());
        let s = states(["closed,en_route"].into_iter()).unwrap().unwrap();
        assert_eq!(s, vec!["cancelled", "closed", "en_route"]);
        assert!(states(std::iter::empty()).unwrap().is_none());
        assert!(states(["closing"].into_iter()).is_err());
        assert!(states(["open,"].into_iter()).is_err());
    }

    #[test]
    fn text_with_control_characters_is_refused_by_name() {
        assert!(text("reason", "caller confirmed a drill").is_ok());
        let e = text("reason", "drill\0").unwrap_err();
        assert_eq!(e.to_string(), "reason: holds a control character (U+0000 at character 5)");
        assert_eq!(parameter(text("name", "a\u{2028}b").unwrap_err()), "name");
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "-1", "1001", "ten", "1.5"] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
