//! GET /api/v1/live: the console's (and the oversight view's) WebSocket. On connecting, the
//! viewer gets the state as it stands (every unit, open incidents and pending reviews for the
//! console; the open camera alerts that are theirs for both), then `ready`, then every change
//! as it happens (units' changes once a second).

use std::sync::Arc;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use kuzet_actors::registry::{ListIncidents, Registry};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::session;
use crate::auth::{Auth, Role, SESSION_RECHECK};
use crate::feed::{frame, LiveHub, Viewer};
use crate::mqtt::codec;
use crate::vision::Watch;

/// What the live route needs from the running kuzet.
#[derive(Clone)]
pub struct LiveState {
    pub hub: LiveHub,
    pub registry: Addr<Registry>,
    pub watch: Option<Arc<Watch>>,
    pub map: Arc<super::console::MapInfo>,
    pub tablets: Arc<super::console::TabletAccess>,
    /// Where area warnings are issued (the outbox, the CAP sender).
    pub warnings: Option<super::warnings::WarningDesk>,
}

/// GET /api/v1/live: the WebSocket upgrade.
#[utoipa::path(
    get, path = "/api/v1/live", tag = "live", operation_id = "live_feed",
    summary = "The live feed (WebSocket)",
    description = "A WebSocket upgrade (`Connection: Upgrade`, `Upgrade: websocket`). Every message is a \
        text frame `{\"type\": ..., \"data\": ...}`: `hello`, the state as it stands, `ready`, then \
        every change (docs/api.md, The live feed). Refused (403) when `Origin` names a page kuzet did \
        not serve. The feed ends with its session (`signed_out`, close code 1008).",
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade (no body)"),
        (status = 404, description = "No live feed in this process", body = super::schemas::Error),
        (status = 426, description = "An unsupported WebSocket version (no body)"),
    )
)]
pub async fn live(
    req: HttpRequest,
    body: web::Payload,
    state: Option<web::Data<LiveState>>,
    auth: web::Data<Auth>,
) -> Result<HttpResponse, actix_web::Error> {
    let Some(state) = state else {
        return Ok(HttpResponse::NotFound().json(json!({"error": "no live feed in this process"})));
    };
    let user = session::user(&req);
    // The feed lives as long as the session it was opened with: signing out, a disabled user,
    // a new password or the session's expiry closes it.
    let token = session::token(req.headers()).unwrap_or_default();
    let Some((_, expires)) = auth.session(&token).await.map_err(actix_web::error::ErrorServiceUnavailable)?
    else {
        return Ok(
            HttpResponse::Unauthorized().json(json!({"error": "sign in first (POST /api/v1/session)"}))
        );
    };
    let mut ended = auth.ended();
    let auth = auth.into_inner();
    let viewer = match user.role {
        Role::Dispatcher | Role::Supervisor => Viewer::Console,
        Role::Oversight => Viewer::Oversight,
        // The rule table keeps officers out; the tablet speaks MQTT.
        Role::Officer => return Ok(HttpResponse::Forbidden().finish()),
    };
    // Subscribed before the state is read, so nothing falls between the two.
    let mut rx = state.hub.subscribe();
    let (res, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let state = state.into_inner();
    actix_rt::spawn(async move {
        let mut hello = vec![frame("hello", json!({"user": user}).to_string().as_bytes())];
        if viewer == Viewer::Console {
            hello.extend(state.hub.units_frame(true));
            // As published on MQTT, bounded; one that cannot be (logged there) is left out.
            for s in state.registry.send(ListIncidents).await.unwrap_or_default() {
                if let Ok(p) = codec::snapshot_payload(&s) {
                    hello.push(frame("incident", &p));
                }
            }
            for r in state.watch.iter().flat_map(|w| w.people.pending_reviews()) {
                if let Ok(p) = codec::review_payload(&r) {
                    hello.push(frame("review", &p));
                }
            }
        }
        hello.extend(state.hub.alert_frames(viewer));
        // What came before is the whole state: a page may drop whatever it was not sent again.
        hello.push(frame("ready", b"{}"));
        for text in hello {
            if session.text(text.to_string()).await.is_err() {
                return;
            }
        }
        let expiry = tokio::time::sleep((expires - chrono::Utc::now()).to_std().unwrap_or_default());
        tokio::pin!(expiry);
        let mut recheck =
            tokio::time::interval_at(tokio::time::Instant::now() + SESSION_RECHECK, SESSION_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut close = None;
        loop {
            tokio::select! {
                () = &mut expiry => {
                    close = Some("session expired");
                    break;
                }
                r = ended.changed(), if ended.has_changed().is_ok() => {
                    if r.is_err() || !matches!(auth.session(&token).await, Ok(Some(_))) {
                        close = Some("signed out");
                        break;
                    }
                }
                _ = recheck.tick() => {
                    // A database that cannot answer ends no session: only a clear no does.
                    if let Ok(None) = auth.session(&token).await {
                        close = Some("session ended");
                        break;
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(e) if e.viewer == viewer => {
                        if session.text(e.text.to_string()).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        // Too slow to keep up: say so; the page reconnects for a fresh state.
                        let _ = session.text(frame("lagged", json!({"missed": n}).to_string().as_bytes()).to_string()).await;
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
                msg = stream.recv() => match msg {
                    Some(Ok(Message::Ping(b))) => {
                        if session.pong(&b).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let reason = close.map(|why| {
            let text = frame("signed_out", json!({"reason": why}).to_string().as_bytes());
            (text, actix_ws::CloseReason { code: actix_ws::CloseCode::Policy, description: Some(why.into()) })
        });
        match reason {
            Some((text, reason)) => {
                let _ = session.text(text.to_string()).await;
                let _ = session.close(Some(reason)).await;
            }
            None => {
                let _ = session.close(None).await;
            }
        }
    });
    Ok(res)
}
