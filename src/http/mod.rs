//! The query API over HTTP: incidents, timelines, unit tracks and sites, as JSON and GeoJSON.
//!
//! Read-only, and from PostGIS only: this is the record, not the live state. Every route is
//! under `/api/v1`; docs/api.md describes them for operators and integrators. Bad input is a
//! 400 with `{"error": "...", "parameter": "..."}`, an unknown record a 404, a database that
//! cannot answer a 503 `{"error": "database unavailable"}` (logged).

mod audit;
pub mod console;
mod handlers;
pub mod live;
pub mod openapi;
mod pages;
pub mod params;
mod schemas;
pub mod session;
pub mod warnings;
mod watchlist;

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use anyhow::Context as _;
use serde_json::json;
use sqlx::postgres::PgPool;

/// A body that could not be read as the route's JSON: 413 when too large, else 400.
fn json_error(e: actix_web::error::JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match e {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => {
            let res =
                HttpResponse::PayloadTooLarge().json(json!({"error": e.to_string(), "parameter": "body"}));
            actix_web::error::InternalError::from_response(e, res).into()
        }
        e => ApiError::bad("body", e.to_string()).into(),
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: a parameter (or path segment) that cannot be used.
    #[error("{parameter}: {message}")]
    BadRequest { parameter: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("database unavailable: {0}")]
    Database(#[from] sqlx::Error),
    /// Something behind the API (the database, an actor, the models) could not answer.
    #[error("{0}")]
    Unavailable(String),
    /// The request is sound but the state does not allow it (a busy unit, a closed incident).
    #[error("{0}")]
    Conflict(String),
    /// The user's role admits the route, but not this thing (an officer asking for another
    /// incident's picture, a supervisor approving their own entry).
    #[error("{0}")]
    Forbidden(String),
}

impl ApiError {
    pub fn bad(parameter: &str, message: String) -> Self {
        Self::BadRequest { parameter: parameter.to_owned(), message }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Database(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            Self::BadRequest { parameter, .. } => json!({"error": self.to_string(), "parameter": parameter}),
            Self::NotFound(what) => json!({"error": what}),
            Self::Database(e) => {
                tracing::error!(error = %e, "query API: database error");
                json!({"error": "database unavailable"})
            }
            Self::Unavailable(e) | Self::Conflict(e) | Self::Forbidden(e) => json!({"error": e}),
        };
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// The routes, for `App::configure`. Every resource sits behind the session guard
/// (`session::rules` says who may use what), signing in and the OpenAPI document aside.
/// `openapi::ApiDoc` lists the same operations (a test holds the two together).
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::middleware::from_fn;
    /// A GET-only resource; other methods get a 405 with a JSON body.
    fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        web::resource(path).route(web::get().to(handler)).default_service(web::to(method_not_allowed))
    }
    cfg.service(
        web::scope("/api/v1")
            .service(
                web::resource("/session")
                    // A sign-in is small: no room for a large body before the password check.
                    .app_data(web::JsonConfig::default().limit(4096).error_handler(json_error))
                    .route(web::post().to(session::sign_in))
                    .route(web::get().to(session::me).wrap(from_fn(session::guard)))
                    .route(web::delete().to(session::sign_out).wrap(from_fn(session::guard)))
                    .default_service(web::to(|| only("GET, POST, DELETE"))),
            )
            .service(get("/live", live::live).wrap(from_fn(session::guard)))
            .service(get("/audit", audit::list).wrap(from_fn(session::guard)))
            .service(get("/audit/verify", audit::verify).wrap(from_fn(session::guard)))
            .service(get("/incidents", handlers::incidents).wrap(from_fn(session::guard)))
            .service(get("/incidents/{id}", handlers::incident).wrap(from_fn(session::guard)))
            .service(get("/incidents/{id}/timeline", handlers::timeline).wrap(from_fn(session::guard)))
            .service(get("/units/{id}/track", handlers::track).wrap(from_fn(session::guard)))
            .service(get("/sites/containing", handlers::site_containing).wrap(from_fn(session::guard)))
            .service(
                web::resource("/watchlist")
                    .route(web::get().to(watchlist::list))
                    .route(web::post().to(watchlist::enrol))
                    .default_service(web::to(|| only("GET, POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(get("/watchlist/{id}/face.jpg", watchlist::face).wrap(from_fn(session::guard)))
            .service(
                web::resource("/watchlist/{id}")
                    .route(web::delete().to(watchlist::remove))
                    .default_service(web::to(|| only("DELETE")))
                    .wrap(from_fn(session::guard)),
            )
            .service(get("/reviews", watchlist::reviews).wrap(from_fn(session::guard)))
            .service(
                web::resource("/watchlist/{id}/approve")
                    .app_data(web::JsonConfig::default().limit(4096).error_handler(json_error))
                    .route(web::post().to(watchlist::approve))
                    .default_service(web::to(|| only("POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(
                web::resource("/reviews/{id}/confirm")
                    .app_data(web::JsonConfig::default().limit(4096).error_handler(json_error))
                    .route(web::post().to(watchlist::confirm))
                    .default_service(web::to(|| only("POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(
                web::resource("/reviews/{id}/reject")
                    .app_data(web::JsonConfig::default().limit(4096).error_handler(json_error))
                    .route(web::post().to(watchlist::reject))
                    .default_service(web::to(|| only("POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(get("/map", console::map).wrap(from_fn(session::guard)))
            .service(get("/tablet", console::tablet).wrap(from_fn(session::guard)))
            .service(
                web::resource("/incidents/{id}/assign")
                    .app_data(web::JsonConfig::default().limit(4096).error_handler(json_error))
                    .route(web::post().to(console::assign))
                    .default_service(web::to(|| only("POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(
                web::resource("/incidents/{id}/cancel")
                    .app_data(web::JsonConfig::default().limit(4096).error_handler(json_error))
                    .route(web::post().to(console::cancel))
                    .default_service(web::to(|| only("POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(get("/sightings/{id}/face.jpg", watchlist::sighting_face).wrap(from_fn(session::guard)))
            .service(
                get("/sightings/{id}/frame.jpg", watchlist::sighting_frame).wrap(from_fn(session::guard)),
            )
            .service(
                web::resource("/warnings")
                    .app_data(web::JsonConfig::default().limit(16 * 1024).error_handler(json_error))
                    .route(web::get().to(warnings::list))
                    .route(web::post().to(warnings::create))
                    .default_service(web::to(|| only("GET, POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(get("/warnings/feed.atom", warnings::feed).wrap(from_fn(session::guard)))
            .service(get("/warnings/messages/{identifier}", warnings::message).wrap(from_fn(session::guard)))
            .service(
                web::resource("/warnings/{id}/update")
                    .app_data(web::JsonConfig::default().limit(16 * 1024).error_handler(json_error))
                    .route(web::post().to(warnings::update))
                    .default_service(web::to(|| only("POST")))
                    .wrap(from_fn(session::guard)),
            )
            .service(
                web::resource("/warnings/{id}/cancel")
                    .app_data(web::JsonConfig::default().limit(4096).error_handler(json_error))
                    .route(web::post().to(warnings::cancel))
                    .default_service(web::to(|| only("POST")))
                    .wrap(from_fn(session::guard)),
            )
            // Public documentation, like signing in: outside the guard and the rule table.
            .service(get("/openapi.json", openapi::document)),
    );
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, "GET"))
        .json(json!({"error": "method not allowed: this resource is read-only (GET; see docs/api.md)"}))
}

async fn only(method: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, method))
        .json(json!({"error": format!("method not allowed: {method} only (see docs/api.md)")}))
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({"error": "no such route (see docs/api.md; everything is under /api/v1)"}))
}

/// Binds `listen` (port 0: a free port), spawns the server on the current actix system and
/// returns the address it listens on and a handle to stop it. Must run inside an actix
/// system (`actix_rt::System`, `#[actix_rt::main]`, `#[actix_rt::test]`).
pub async fn start(
    listen: SocketAddr,
    pool: PgPool,
    watch: Option<std::sync::Arc<crate::vision::Watch>>,
    http: &crate::settings::HttpSettings,
    live: Option<live::LiveState>,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let web_root = web::Data::new(pages::WebRoot::new(http.web_dir.clone(), &http.tile_url));
    let live = live.map(web::Data::new);
    let auth = web::Data::new(crate::auth::Auth::new(pool.clone()));
    let data = web::Data::new(pool);
    let watch = watch.map(web::Data::from);
    let rules = web::Data::new(session::rules());
    let origins = web::Data::new(session::Origins::new(&http.origins));
    let tls = http.tls.get().map(crate::settings::tls::server_config).transpose().context("http.tls")?;
    // Over HTTPS the session cookie is never sent in the clear.
    let secure = web::Data::new(session::SecureCookies(http.secure_cookies || tls.is_some()));
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(data.clone())
            .app_data(auth.clone())
            .app_data(rules.clone())
            .app_data(origins.clone())
            .app_data(secure.clone())
            .app_data(web_root.clone())
            .app_data(web::JsonConfig::default().limit(watchlist::MAX_ENROL_BYTES).error_handler(json_error))
            .configure(routes)
            .configure(pages::routes)
            .default_service(web::to(not_found));
        if let Some(w) = &watch {
            app = app.app_data(w.clone());
        }
        if let Some(l) = &live {
            if let Some(d) = &l.warnings {
                app = app.app_data(web::Data::new(d.clone()));
            }
            app = app.app_data(l.clone());
        }
        app
    })
    .workers(1)
    // kuzet handles SIGINT/SIGTERM itself and stops the server through the handle.
    .disable_signals()
    .shutdown_timeout(5);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(listen, config),
        None => server.bind(listen),
    }
    .with_context(|| format!("cannot listen on {listen} for the query API"))?;
    let addr = *server.addrs().first().context("the query API is bound to no address")?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "query API server stopped with an error");
        }
    });
    tracing::info!(%addr, scheme, "query API listening");
    Ok((addr, handle))
}
