//! The metrics endpoint: `GET /metrics` on a listener of its own (`metrics.listen`), apart
//! from the query API so that a scraper needs no user, and the API's sessions never see it.
//! One worker thread; with `metrics.token` every scrape must bring it as a bearer token.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context as _;
use sha2::{Digest, Sha256};

use super::exposition::CONTENT_TYPE;
use super::scrape::{render, Sources};
use crate::settings::MetricsSettings;

struct State {
    sources: Arc<Sources>,
    /// SHA-256 of the token; None: no token asked.
    token: Option<[u8; 32]>,
}

/// Starts the endpoint on `listen`; returns where it is bound and its handle (stop it with
/// `ServerHandle::stop`). Settings that are wrong (a listener other hosts reach without a
/// token, TLS files that do not load) are an error; an address that cannot be bound (the port
/// taken) is logged and leaves kuzet without the endpoint: dispatch never waits for
/// monitoring.
pub async fn start(
    listen: SocketAddr,
    settings: &MetricsSettings,
    sources: Arc<Sources>,
) -> anyhow::Result<Option<(SocketAddr, ServerHandle)>> {
    settings.check()?;
    let token = settings.token().map(digest);
    let tls =
        settings.tls.get().map(crate::settings::tls::server_config).transpose().context("metrics.tls")?;
    let state = web::Data::new(State { sources, token });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(web::resource("/metrics").route(web::get().to(scrape)))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let bound = match tls {
        Some(config) => server.bind_rustls_0_23(listen, config),
        None => server.bind(listen),
    };
    let server = match bound {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot listen for metrics (metrics.listen): running without the endpoint");
            return Ok(None);
        }
    };
    let addr = *server.addrs().first().context("the metrics endpoint is bound to no address")?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "metrics server stopped with an error");
        }
    });
    tracing::info!(%addr, scheme, token = settings.token().is_some(), "metrics endpoint listening (GET /metrics)");
    Ok(Some((addr, handle)))
}

async fn scrape(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(want) = &state.token {
        if !authorized(&req, want) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"kuzet metrics\""))
                .finish();
        }
    }
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(render(&state.sources))
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// `Authorization: Bearer <token>`, compared by digest in constant time.
fn authorized(req: &HttpRequest, want: &[u8; 32]) -> bool {
    let Some(given) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(token) = given.strip_prefix("Bearer ") else { return false };
    let got = digest(token.trim());
    got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
