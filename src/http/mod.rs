//! The query API over HTTP: incidents, timelines, unit tracks and sites, as JSON and GeoJSON.
//!
//! Read-only, and from PostGIS only: this is the record, not the live state. Every route is
//! under `/api/v1`; docs/api.md describes them for operators and integrators. Bad input is a
//! 400 with `{"error": "...", "parameter": "..."}`, an unknown record a 404, a database that
//! cannot answer a 503 `{"error": "database unavailable"}` (logged).

mod handlers;
pub mod params;
mod vision;

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use anyhow::Context as _;
use serde_json::json;
use sqlx::postgres::PgPool;

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
            Self::Unavailable(e) => json!({"error": e}),
        };
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// The routes, for `App::configure`.
pub fn routes(cfg: &mut web::ServiceConfig) {
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
            .service(get("/incidents", handlers::incidents))
            .service(get("/incidents/{id}", handlers::incident))
            .service(get("/incidents/{id}/timeline", handlers::timeline))
            .service(get("/units/{id}/track", handlers::track))
            .service(get("/sites/containing", handlers::site_containing))
            .service(
                web::resource("/watchlist")
                    .route(web::get().to(vision::list))
                    .route(web::post().to(vision::enrol))
                    .default_service(web::to(get_or_post_only)),
            )
            .service(get("/watchlist/{id}/face.jpg", vision::face))
            .service(
                web::resource("/watchlist/{id}")
                    .route(web::delete().to(vision::remove))
                    .default_service(web::to(|| only("DELETE"))),
            )
            .service(get("/reviews", vision::reviews))
            .service(
                web::resource("/reviews/{id}/confirm")
                    .route(web::post().to(vision::decide))
                    .default_service(web::to(|| only("POST"))),
            )
            .service(
                web::resource("/reviews/{id}/reject")
                    .route(web::post().to(vision::decide))
                    .default_service(web::to(|| only("POST"))),
            )
            .service(get("/sightings/{id}/face.jpg", vision::evidence))
            .service(get("/sightings/{id}/frame.jpg", vision::evidence)),
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

async fn get_or_post_only() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, "GET, POST"))
        .json(json!({"error": "method not allowed: GET or POST (see docs/api.md)"}))
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
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let data = web::Data::new(pool);
    let watch = watch.map(web::Data::from);
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(data.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(vision::MAX_ENROL_BYTES)
                    .error_handler(|e, _| ApiError::bad("body", e.to_string()).into()),
            )
            .configure(routes)
            .default_service(web::to(not_found));
        if let Some(w) = &watch {
            app = app.app_data(w.clone());
        }
        app
    })
    .workers(1)
    // kuzet handles SIGINT/SIGTERM itself and stops the server through the handle.
    .disable_signals()
    .shutdown_timeout(5)
    .bind(listen)
    .with_context(|| format!("cannot listen on {listen} for the query API"))?;
    let addr = *server.addrs().first().context("the query API is bound to no address")?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "query API server stopped with an error");
        }
    });
    tracing::info!(%addr, "query API listening");
    Ok((addr, handle))
}
