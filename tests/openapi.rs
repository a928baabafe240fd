//! The OpenAPI document: served without a session, OpenAPI 3.1, every route of the access
//! rules in it with its roles, the same JSON after a round trip. (scripts/openapi-check.sh
//! validates it and checks a running kuzet's answers against it with schemathesis.)

mod common;

use common::*;
use serde_json::Value;

struct Api {
    base: String,
    pool: sqlx::PgPool,
    handle: actix_web::dev::ServerHandle,
}

async fn api() -> Api {
    let url = fresh_database().await;
    let pool = kuzet::store::connect(&url).await.unwrap();
    let (addr, handle) =
        kuzet::http::start("127.0.0.1:0".parse().unwrap(), pool.clone(), None, &http_settings(true), None)
            .await
            .unwrap();
    Api { base: format!("http://{addr}"), pool, handle }
}

/// GET `path` with a bearer token: the status and the JSON body.
async fn get(base: &str, path: &str, token: &str) -> (u16, Value) {
    let mut res = client()
        .get(format!("{base}{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("answered");
    let body = res.body().await.expect("a body");
    (res.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// GET /api/v1/openapi.json without a session: its status, headers and body.
async fn document(base: &str) -> (u16, actix_web::http::header::HeaderMap, Vec<u8>) {
    let mut res = client().get(format!("{base}/api/v1/openapi.json")).send().await.expect("answered");
    let body = res.body().limit(4 << 20).await.expect("a body");
    (res.status().as_u16(), res.headers().clone(), body.to_vec())
}

#[actix_rt::test]
async fn the_document_is_served_without_a_session_and_lists_every_rule() {
    let a = api().await;
    let (status, headers, body) = document(&a.base).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(headers.get("cache-control").unwrap(), "no-cache");
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "kuzet HTTP API");
    for rule in kuzet::http::session::rules() {
        let method = rule.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][rule.path][&method];
        assert!(op.is_object(), "{} {} is not in the document", rule.method, rule.path);
        let roles: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
        assert_eq!(op["x-roles"], serde_json::json!(roles), "{} {}", rule.method, rule.path);
    }
    for (method, path) in kuzet::http::openapi::PUBLIC {
        let op = &doc["paths"][*path][method.to_ascii_lowercase()];
        assert_eq!(op["security"], serde_json::json!([]), "{method} {path} needs no session");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["cookie"]["name"], "kuzet_session");
    a.handle.stop(true).await;
}

#[actix_rt::test]
async fn the_document_round_trips_as_json() {
    let a = api().await;
    let (_, _, body) = document(&a.base).await;
    let doc: Value = serde_json::from_slice(&body).expect("JSON");
    let again: Value = serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(doc, again);
    // What is served is what the library builds.
    let built: Value = serde_json::from_str(kuzet::http::openapi::json()).unwrap();
    assert_eq!(doc, built);
    // Byte for byte: the text is the serialisation of that value (no duplicate keys, nothing lost).
    assert_eq!(serde_json::to_string(&doc).unwrap().len(), body.len());
    a.handle.stop(true).await;
}

#[actix_rt::test]
async fn only_get_reads_the_document() {
    let a = api().await;
    let mut res = client()
        .post(format!("{}/api/v1/openapi.json", a.base))
        .insert_header(("content-type", "application/json"))
        .send_body("{}")
        .await
        .expect("answered");
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.expect("a JSON body");
    assert!(body["error"].as_str().unwrap().contains("method not allowed"), "{body}");
    a.handle.stop(true).await;
}

// Bad input that reached the database and was answered as its failure (503).

#[actix_rt::test]
async fn an_audit_action_with_a_nul_is_a_bad_request_not_a_database_failure() {
    let a = api().await;
    let token = sign_in_as(&a.pool, &a.base, kuzet::auth::Role::Oversight).await;
    let (status, body) = get(&a.base, "/api/v1/audit?action=a%00b", &token).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["parameter"], "action");
    // The log still answers, and no read was audited for the refused one.
    let (status, body) = get(&a.base, "/api/v1/audit?action=audit.read", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], serde_json::json!([]));
    a.handle.stop(true).await;
}
