//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! Each handler carries its operation (`#[utoipa::path]`: parameters, body, the answers it
//! gives); `schemas.rs` has the shapes of the bodies the handlers build by hand. What the
//! session guard adds to every protected route is added here, from `session::rules()`, the same
//! table the guard enforces: the security schemes (bearer token or the `kuzet_session` cookie),
//! the roles (`x-roles` and the description) and the guard's own answers (401, 403, 503). So a
//! role changed in the table changes the document too. Signing in and this document are public.

use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::HttpResponse;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use super::{audit, console, handlers, live, session, warnings, watchlist};
use crate::auth::COOKIE;

/// Routes anyone may use without a session: they sit outside the guard and its rule table.
pub const PUBLIC: &[(&str, &str)] = &[("POST", "/api/v1/session"), ("GET", "/api/v1/openapi.json")];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kuzet HTTP API",
        version = "1",
        description = "Incidents, timelines, unit tracks and sites from kuzet's record; the watchlist, \
            face-match reviews, the dispatcher's orders, the map and the tablets' settings from its live \
            state. Every route but signing in and this document needs a session whose role the route \
            admits (`x-roles`). docs/api.md says the rest: conventions, errors, examples."
    ),
    paths(
        session::sign_in,
        session::me,
        session::sign_out,
        live::live,
        audit::list,
        audit::verify,
        handlers::incidents,
        handlers::incident,
        handlers::timeline,
        handlers::track,
        handlers::site_containing,
        watchlist::list,
        watchlist::enrol,
        watchlist::remove,
        watchlist::approve,
        watchlist::face,
        watchlist::reviews,
        watchlist::confirm,
        watchlist::reject,
        watchlist::sighting_face,
        watchlist::sighting_frame,
        console::map,
        console::tablet,
        console::assign,
        console::cancel,
        warnings::list,
        warnings::create,
        warnings::feed,
        warnings::message,
        warnings::update,
        warnings::cancel,
        document,
    ),
    // Schemas that only parameters name (utoipa collects those of bodies by itself).
    components(schemas(super::schemas::StateFilter, super::schemas::Format)),
    modifiers(&Access),
    tags(
        (name = "session", description = "Signing in and out"),
        (name = "live", description = "The consoles' live feed"),
        (name = "audit", description = "The audit log, for oversight and supervisors"),
        (name = "record", description = "What kuzet recorded in PostGIS"),
        (name = "watchlist", description = "Wanted persons"),
        (name = "reviews", description = "Face matches and their pictures"),
        (name = "console", description = "The map, the tablets and the dispatcher's orders"),
        (name = "warnings", description = "Area warnings (OASIS CAP 1.2)"),
        (name = "documentation", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The document as served, built once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serialises"));

/// GET /api/v1/openapi.json
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "documentation", operation_id = "openapi_document",
    summary = "This OpenAPI 3.1 document",
    responses((status = 200, description = "The document; `Cache-Control: no-cache`", body = Object))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache"))
        .body(DOCUMENT.as_str())
}

/// What the session guard does, written into the document from its rule table.
struct Access;

impl Modify for Access {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("The `token` a sign-in answers with (64 hexadecimal characters).".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                COOKIE,
                "The session cookie a sign-in sets (httpOnly, SameSite=Strict), for browsers.",
            ))),
        );
        let rules = session::rules();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                match rules.iter().find(|r| r.method == method && r.path == path.as_str()) {
                    Some(rule) => guarded(op, rule),
                    None => {
                        // Public (a test holds this to `PUBLIC`): no session asked for.
                        op.security = Some(Vec::new());
                        append(&mut op.description, "No session needed.");
                    }
                }
            }
        }
    }
}

/// A protected operation: its security, its roles, and the guard's answers.
fn guarded(op: &mut Operation, rule: &session::Rule) {
    let none: [&str; 0] = [];
    op.security =
        Some(vec![SecurityRequirement::new("bearer", none), SecurityRequirement::new("cookie", none)]);
    let roles: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
    append(&mut op.description, &format!("Roles: {}.", roles.join(", ")));
    op.extensions
        .get_or_insert_with(Extensions::default)
        .merge([("x-roles", serde_json::json!(roles))].into_iter().collect::<Extensions>());
    let changes = rule.method != Method::GET;
    let live = rule.path == "/api/v1/live";
    let origin = if changes || live {
        "; or an `Origin` naming a page kuzet did not serve (a browser's state change must send one)"
    } else {
        ""
    };
    guard_answer(op, "401", "no session, or one unknown, expired or ended");
    guard_answer(op, "403", &format!("the user's role may not use the route{origin}"));
    guard_answer(op, "503", "the database cannot check the session");
}

/// Adds the guard's answer `status`, or says it in the handler's own description of it.
fn guard_answer(op: &mut Operation, status: &str, why: &str) {
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(r)) => r.description = format!("{}; or {why}", r.description),
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut r = Response::new(capitalised(why));
            r.content.insert("application/json".into(), Content::new(Some(Ref::from_schema_name("Error"))));
            op.responses.responses.insert(status.into(), RefOr::T(r));
        }
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn append(description: &mut Option<String>, text: &str) {
    *description = Some(match description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{text}"),
        _ => text.to_owned(),
    });
}

/// The operations of a path, with their methods.
fn operations(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
        (Method::TRACE, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|o| (m, o)))
    .collect()
}

/// The document as JSON (what `GET /api/v1/openapi.json` serves).
pub fn json() -> &'static str {
    DOCUMENT.as_str()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::from_str(json()).unwrap()
    }

    /// (method, path) of every operation in the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn every_rule_has_an_operation_and_every_operation_a_rule() {
        let doc = doc();
        let ops = operations(&doc);
        let rules = session::rules();
        for rule in &rules {
            let op = ops.iter().find(|(m, p, _)| *m == rule.method.as_str() && p == rule.path);
            let (_, _, op) = op.unwrap_or_else(|| panic!("{} {} has no operation", rule.method, rule.path));
            let roles: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
            assert_eq!(op["x-roles"], serde_json::json!(roles), "{} {}", rule.method, rule.path);
            assert!(op["description"].as_str().unwrap().contains(&format!("Roles: {}.", roles.join(", "))));
            assert_eq!(op["security"], serde_json::json!([{"bearer": []}, {"cookie": []}]));
            for status in ["401", "403", "503"] {
                assert!(op["responses"][status].is_object(), "{} {} lacks {status}", rule.method, rule.path);
            }
        }
        for (method, path, op) in &ops {
            let ruled = rules.iter().any(|r| r.method.as_str() == method && r.path == path);
            let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
            assert!(ruled != public, "{method} {path}: in the rule table or public, not both or neither");
            if public {
                assert_eq!(op["security"], serde_json::json!([]), "{method} {path}");
                assert!(op.get("x-roles").is_none());
            }
        }
        assert_eq!(ops.len(), rules.len() + PUBLIC.len());
    }

    #[test]
    fn operation_ids_are_unique_and_every_error_has_a_json_body() {
        let doc = doc();
        let mut ids = HashSet::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            for (status, res) in op["responses"].as_object().unwrap() {
                // The WebSocket handshake's own refusals (400, 426) come without a body.
                if status.starts_with('2')
                    || status.starts_with('1')
                    || path == "/api/v1/live" && status != "404"
                {
                    continue;
                }
                let schema = &res["content"]["application/json"]["schema"]["$ref"];
                let want = if status == "400" || status == "413" { "BadRequest" } else { "Error" };
                assert_eq!(
                    schema.as_str(),
                    Some(format!("#/components/schemas/{want}").as_str()),
                    "{method} {path} {status}"
                );
            }
        }
    }

    #[test]
    fn geojson_answers_are_documented_where_format_is_taken() {
        let doc = doc();
        for (method, path, op) in operations(&doc) {
            let takes_format = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "format" && p["in"] == "query"));
            let geojson = op["responses"]["200"]["content"].get("application/geo+json").is_some();
            assert_eq!(takes_format, geojson, "{method} {path}");
        }
    }
}
