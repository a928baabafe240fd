//! Signing in and out, and who is signed in; the guard every other route sits behind.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::auth::{Auth, Role, SignInError, User, COOKIE, SESSION_TTL};

/// Who may use a route: (method, path pattern, roles). Every route but signing in is here;
/// a route missing from it answers 403 to everyone (tests walk this table).
pub struct Rule {
    pub method: Method,
    pub path: &'static str,
    pub roles: &'static [Role],
}

const READERS: &[Role] = &[Role::Dispatcher, Role::Supervisor, Role::Oversight];
const CONSOLE: &[Role] = &[Role::Dispatcher, Role::Supervisor];
const KEEPERS: &[Role] = &[Role::Supervisor];
const PICTURES: &[Role] = &[Role::Dispatcher, Role::Supervisor, Role::Officer];
const ANYONE: &[Role] = &Role::ALL;
/// Every map: the console's, the oversight view's and the tablet's.
const MAP: &[Role] = &Role::ALL;
const OFFICERS: &[Role] = &[Role::Officer];
/// Who reads the audit log: oversight, and supervisors who answer to it.
const AUDITORS: &[Role] = &[Role::Oversight, Role::Supervisor];
/// The console and the oversight view (which sees custodial cameras' alerts only).
const LIVE: &[Role] = &[Role::Dispatcher, Role::Supervisor, Role::Oversight];

pub fn rules() -> Vec<Rule> {
    let r = |method: Method, path, roles| Rule { method, path, roles };
    vec![
        r(Method::GET, "/api/v1/session", ANYONE),
        r(Method::DELETE, "/api/v1/session", ANYONE),
        r(Method::GET, "/api/v1/live", LIVE),
        r(Method::GET, "/api/v1/audit", AUDITORS),
        r(Method::GET, "/api/v1/audit/verify", AUDITORS),
        r(Method::GET, "/api/v1/incidents", READERS),
        r(Method::GET, "/api/v1/incidents/{id}", READERS),
        r(Method::GET, "/api/v1/incidents/{id}/timeline", READERS),
        r(Method::GET, "/api/v1/units/{id}/track", READERS),
        r(Method::GET, "/api/v1/sites/containing", READERS),
        r(Method::GET, "/api/v1/watchlist", CONSOLE),
        r(Method::POST, "/api/v1/watchlist", KEEPERS),
        r(Method::DELETE, "/api/v1/watchlist/{id}", KEEPERS),
        r(Method::POST, "/api/v1/watchlist/{id}/approve", KEEPERS),
        r(Method::GET, "/api/v1/watchlist/{id}/face.jpg", PICTURES),
        r(Method::GET, "/api/v1/reviews", CONSOLE),
        r(Method::POST, "/api/v1/reviews/{id}/confirm", CONSOLE),
        r(Method::POST, "/api/v1/reviews/{id}/reject", CONSOLE),
        r(Method::GET, "/api/v1/sightings/{id}/face.jpg", PICTURES),
        r(Method::GET, "/api/v1/sightings/{id}/frame.jpg", PICTURES),
        r(Method::GET, "/api/v1/map", MAP),
        r(Method::GET, "/api/v1/tablet", OFFICERS),
        r(Method::POST, "/api/v1/incidents/{id}/assign", CONSOLE),
        r(Method::POST, "/api/v1/incidents/{id}/cancel", CONSOLE),
        r(Method::GET, "/api/v1/warnings", READERS),
        r(Method::POST, "/api/v1/warnings", CONSOLE),
        r(Method::GET, "/api/v1/warnings/feed.atom", READERS),
        r(Method::GET, "/api/v1/warnings/messages/{identifier}", READERS),
        r(Method::POST, "/api/v1/warnings/{id}/update", CONSOLE),
        r(Method::POST, "/api/v1/warnings/{id}/cancel", CONSOLE),
    ]
}

/// How a request carries its session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carrier {
    /// `Authorization: Bearer`: an integration; a browser never adds it on its own.
    Bearer,
    /// The cookie: a browser, which sends it with whatever page made the request.
    Cookie,
}

/// The session token of a request: `Authorization: Bearer`, else the cookie.
fn carried(headers: &actix_web::http::header::HeaderMap) -> Option<(String, Carrier)> {
    if let Some(b) =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some((b.trim().to_owned(), Carrier::Bearer));
    }
    headers.get_all("cookie").filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE).then(|| (v.to_owned(), Carrier::Cookie))
    })
}

/// The session token of a request.
pub fn token(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    carried(headers).map(|(t, _)| t)
}

/// Origins besides the request's own host that may send state changes with a browser session.
pub struct Origins(Vec<String>);

impl Origins {
    pub fn new(listed: &[String]) -> Self {
        Self(listed.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect())
    }

    /// Whether `origin` (an Origin header) is the page's own host or a listed origin. The
    /// scheme is not compared with the request's: one host and port serves one scheme.
    fn admits(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.0.contains(&origin) {
            return true;
        }
        let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        matches!((authority, host), (Some(a), Some(h)) if !a.is_empty() && a == h.to_ascii_lowercase())
    }
}

/// Cross-site request forgery and cross-site WebSocket hijacking: a request that changes
/// something, or opens the live feed, must name a page of ours as its Origin. A browser session
/// (the cookie) must name one on state changes (browsers always send Origin there); an
/// integration's bearer token may send none, but not a foreign one.
fn cross_site(req: &ServiceRequest, carrier: Option<Carrier>) -> Option<&'static str> {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let live = req.path() == "/api/v1/live";
    if !changes && !live {
        return None;
    }
    let origins = req.app_data::<web::Data<Origins>>();
    let host = req.headers().get("host").and_then(|h| h.to_str().ok());
    match req.headers().get("origin").map(|o| o.to_str().unwrap_or("")) {
        Some(o) if origins.is_some_and(|list| list.admits(o, host)) => None,
        Some(_) => Some("the request comes from a page kuzet did not serve (Origin)"),
        None if changes && carrier == Some(Carrier::Cookie) => {
            Some("a browser's state change must say where it comes from (Origin)")
        }
        None => None,
    }
}

/// The sign-in's own check: no session yet, so a foreign Origin is all there is to refuse.
fn foreign_origin(req: &HttpRequest) -> bool {
    let Some(o) = req.headers().get("origin") else { return false };
    let host = req.headers().get("host").and_then(|h| h.to_str().ok());
    let origins = req.app_data::<web::Data<Origins>>();
    !origins.is_some_and(|list| list.admits(o.to_str().unwrap_or(""), host))
}

/// The guard on every protected resource: 401 without a session, 403 for a role the route
/// does not admit. The user rides on the request for the handler.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let refuse = |req: ServiceRequest, status: actix_web::http::StatusCode, msg: &str| {
        let res = HttpResponse::build(status).json(json!({"error": msg}));
        Ok(req.into_response(res).map_into_right_body())
    };
    let Some(auth) = req.app_data::<web::Data<Auth>>().cloned() else {
        return refuse(
            req,
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "no sign-in without a database",
        );
    };
    let carried = carried(req.headers());
    if let Some(why) = cross_site(&req, carried.as_ref().map(|c| c.1)) {
        return refuse(req, actix_web::http::StatusCode::FORBIDDEN, why);
    }
    let user = match carried {
        Some((t, _)) => match auth.user(&t).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return refuse(req, actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
            }
        },
        None => None,
    };
    let Some(user) = user else {
        return refuse(
            req,
            actix_web::http::StatusCode::UNAUTHORIZED,
            "sign in first (POST /api/v1/session)",
        );
    };
    let pattern = req.match_pattern().unwrap_or_default();
    let rules = req.app_data::<web::Data<Vec<Rule>>>().cloned().unwrap_or_default();
    let listed = rules.iter().any(|r| r.path == pattern);
    let rule = rules.iter().find(|r| r.method == *req.method() && r.path == pattern);
    match rule {
        Some(r) if !r.roles.contains(&user.role) => {
            let msg = format!("role {} may not use {} {pattern}", user.role.as_str(), req.method());
            refuse(req, actix_web::http::StatusCode::FORBIDDEN, &msg)
        }
        // A route the table forgot is nobody's.
        None if !listed => {
            refuse(req, actix_web::http::StatusCode::FORBIDDEN, "route not in the access rules")
        }
        // Admitted, or a method a listed route does not serve (its handler answers 405).
        _ => {
            req.extensions_mut().insert(user);
            Ok(next.call(req).await?.map_into_left_body())
        }
    }
}

/// The signed-in user (the guard put it there).
pub fn user(req: &HttpRequest) -> User {
    req.extensions().get::<User>().cloned().expect("the guard admits only signed-in users")
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// No control characters.
    #[schema(value_type = super::schemas::Text)]
    username: String,
    #[schema(format = Password)]
    password: String,
}

/// POST /api/v1/session: signs in; the session comes back as an httpOnly cookie and, for
/// integrations, as `token` in the body.
#[utoipa::path(
    post, path = "/api/v1/session", tag = "session", operation_id = "sign_in",
    summary = "Sign in",
    description = "The session comes back as the httpOnly cookie `kuzet_session` (for browsers) and as \
        `token` (for `Authorization: Bearer`). Failed sign-ins are limited per user and address, per \
        address, and per user from unknown addresses (429).",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in", body = super::schemas::SignedIn,
            headers(("set-cookie" = String, description = "kuzet_session=TOKEN; Path=/; Max-Age=50400; HttpOnly; SameSite=Strict[; Secure]"))),
        (status = 400, description = "`body` not JSON, a field missing or unknown; `username` holding a control character", body = super::schemas::BadRequest),
        (status = 401, description = "Unknown user name, wrong password or disabled user, all alike", body = super::schemas::Error),
        (status = 403, description = "An `Origin` naming a page kuzet did not serve", body = super::schemas::Error),
        (status = 413, description = "A body over 4 KiB", body = super::schemas::BadRequest),
        (status = 429, description = "Too many failed sign-ins from here", body = super::schemas::Error),
        (status = 503, description = "More sign-ins at once than the password checks take (`Retry-After: 1`), or the database cannot be reached", body = super::schemas::Error),
    )
)]
pub async fn sign_in(
    req: HttpRequest,
    body: web::Json<SignIn>,
    auth: web::Data<Auth>,
    secure: web::Data<SecureCookies>,
) -> Result<HttpResponse, ApiError> {
    if foreign_origin(&req) {
        return Ok(HttpResponse::Forbidden()
            .json(json!({"error": "the request comes from a page kuzet did not serve (Origin)"})));
    }
    // A NUL could not even be looked up (PostgreSQL text cannot hold one).
    super::params::text("username", &body.username)?;
    let from = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    match auth.sign_in(&body.username, &body.password, &from).await {
        Ok((token, user)) => Ok(HttpResponse::Ok()
            .insert_header(("set-cookie", cookie(&token, SESSION_TTL.num_seconds(), secure.0)))
            .insert_header(("cache-control", "no-store"))
            .json(json!({"user": user, "token": token}))),
        Err(SignInError::Wrong) => {
            Ok(HttpResponse::Unauthorized().json(json!({"error": SignInError::Wrong.to_string()})))
        }
        Err(SignInError::TooMany) => {
            Ok(HttpResponse::TooManyRequests().json(json!({"error": SignInError::TooMany.to_string()})))
        }
        Err(SignInError::Busy) => Ok(HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "1"))
            .json(json!({"error": SignInError::Busy.to_string()}))),
        Err(SignInError::Database(e)) => Err(ApiError::Database(e)),
    }
}

/// GET /api/v1/session: who is signed in.
#[utoipa::path(
    get, path = "/api/v1/session", tag = "session", operation_id = "who_am_i",
    summary = "Who is signed in",
    responses((status = 200, description = "The signed-in user", body = super::schemas::Me))
)]
pub async fn me(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().json(json!({"user": user(&req)}))
}

/// DELETE /api/v1/session: signs out.
#[utoipa::path(
    delete, path = "/api/v1/session", tag = "session", operation_id = "sign_out",
    summary = "Sign out",
    description = "Ends the session the request carries (the cookie's, or without a cookie the bearer \
        token's) and clears the cookie.",
    responses(
        (status = 200, description = "Signed out", body = super::schemas::SignedOut,
            headers(("set-cookie" = String, description = "kuzet_session=; Path=/; Max-Age=0; ..."))),
    )
)]
pub async fn sign_out(
    req: HttpRequest,
    auth: web::Data<Auth>,
    secure: web::Data<SecureCookies>,
) -> Result<HttpResponse, ApiError> {
    // The same token the guard checked.
    if let Some(t) = token(req.headers()) {
        auth.sign_out(&t).await?;
    }
    Ok(HttpResponse::Ok()
        .insert_header(("set-cookie", cookie("", 0, secure.0)))
        .json(json!({"signed_out": true})))
}

/// Whether the session cookie is marked Secure (sent over HTTPS only).
#[derive(Clone, Copy)]
pub struct SecureCookies(pub bool);

fn cookie(token: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}
