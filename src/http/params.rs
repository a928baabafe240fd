//! Query-string parsing for the API: every parameter checked, every refusal naming the
//! parameter and the reason, and no parameter the endpoint does not know. The parsers are
//! `kuzet_contract::params` (built and fuzzed without the web stack); this adapter reads the
//! request and makes their refusals 400s.

use actix_web::http::header;
use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use kuzet_contract::params as p;
use uuid::Uuid;

use super::ApiError;

pub use kuzet_contract::params::BBox;

impl From<p::ParamError> for ApiError {
    fn from(e: p::ParamError) -> Self {
        ApiError::BadRequest { parameter: e.parameter, message: e.message }
    }
}

/// The decoded query string of one request.
pub struct Params(p::Params);

impl Params {
    /// Decodes `req`'s query string; refuses parameters not in `allowed`.
    pub fn parse(req: &HttpRequest, allowed: &[&str]) -> Result<Self, ApiError> {
        Ok(Self(p::Params::parse(req.query_string(), allowed)?))
    }

    /// Every value given for `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.all(name)
    }

    /// The value of `name`, if given; refused when given more than once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        Ok(self.0.one(name)?)
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        Ok(self.0.time(name)?)
    }

    pub fn required_time(&self, name: &str) -> Result<DateTime<Utc>, ApiError> {
        Ok(self.0.required_time(name)?)
    }

    /// `format=json|geojson`, else the request's Accept header: GeoJSON when it names
    /// `application/geo+json` (with a non-zero q).
    pub fn geojson(&self, req: &HttpRequest) -> Result<bool, ApiError> {
        Ok(self.0.format()?.unwrap_or_else(|| {
            p::accepts_geojson(req.headers().get_all(header::ACCEPT).filter_map(|v| v.to_str().ok()))
        }))
    }
}

/// An RFC 3339 time; a space where the offset's sign belongs (a decoded '+') is read as '+'.
pub fn parse_time(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    Ok(p::parse_time(name, raw)?)
}

pub fn latitude(name: &str, raw: &str) -> Result<f64, ApiError> {
    Ok(p::latitude(name, raw)?)
}

pub fn longitude(name: &str, raw: &str) -> Result<f64, ApiError> {
    Ok(p::longitude(name, raw)?)
}

/// `min_lon,min_lat,max_lon,max_lat`.
pub fn bbox(raw: &str) -> Result<BBox, ApiError> {
    Ok(p::bbox(raw)?)
}

/// `lat,lon`.
pub fn near(raw: &str) -> Result<(f64, f64), ApiError> {
    Ok(p::near(raw)?)
}

pub fn radius(raw: &str) -> Result<f64, ApiError> {
    Ok(p::radius(raw)?)
}

pub fn limit(raw: Option<&str>) -> Result<i64, ApiError> {
    Ok(p::limit(raw)?)
}

/// The states named by every `state` value; `None` when no `state` was given.
pub fn states<'a>(values: impl Iterator<Item = &'a str>) -> Result<Option<Vec<String>>, ApiError> {
    Ok(p::states(values)?)
}

/// Free text from a request body: refused, naming `name`, when it holds a control character.
pub fn text(name: &str, raw: &str) -> Result<(), ApiError> {
    Ok(p::text(name, raw)?)
}

/// The `{id}` of an incident path.
pub fn incident_id(raw: &str) -> Result<Uuid, ApiError> {
    Ok(p::incident_id(raw)?)
}

/// The `{id}` of a unit path: the device id pattern ^[a-z0-9][a-z0-9-]{0,63}$.
pub fn unit_id(raw: &str) -> Result<&str, ApiError> {
    Ok(p::unit_id(raw)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The parsers' own tests are in kuzet-contract; here, only that a refusal is a 400 naming
    // the parameter with the parser's words.
    #[test]
    fn a_refusal_is_a_bad_request_with_the_parsers_words() {
        let e = text("reason", "drill\0").unwrap_err();
        assert_eq!(e.to_string(), "reason: holds a control character (U+0000 at character 5)");
        let ApiError::BadRequest { parameter, message } = bbox("1,2,3").unwrap_err() else {
            panic!("not a 400");
        };
        assert_eq!(parameter, "bbox");
        assert_eq!(message, "\"1,2,3\" must be four numbers min_lon,min_lat,max_lon,max_lat");
    }
}
