//! Who may use the HTTP API: every route in the rule table refuses a request without a
//! session (401) and every role it does not admit (403), and serves those it does; sign-in
//! failures are limited and audited; sessions end when users sign out or get a new password.

mod common;

use actix_web::http::Method;
use common::*;
use kuzet::auth::Role;
use serde_json::{json, Value};

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

/// The path with its placeholders filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0b0e7f0e-4a43-4c9b-9f54-2d3c9b0a7c11")
}

async fn call(base: &str, method: &Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let client = client();
    let mut req = client.request(method.clone(), format!("{base}{}", concrete(path)));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut res = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let body = res.body().await.unwrap_or_default();
    (res.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn every_route_requires_its_role() {
    let a = api().await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, sign_in_as(&a.pool, &a.base, role).await));
    }
    let rules = kuzet::http::session::rules();
    assert!(rules.len() >= 16, "the table lists every route");
    for rule in &rules {
        // Signed out: nothing, not even whether the thing exists.
        let (status, body) = call(&a.base, &rule.method, rule.path, None).await;
        assert_eq!(status, 401, "{} {} signed out", rule.method, rule.path);
        assert!(body["error"].as_str().unwrap().contains("sign in"), "{body}");
        let (status, _) = call(&a.base, &rule.method, rule.path, Some("not-a-session")).await;
        assert_eq!(status, 401, "{} {} with a made-up token", rule.method, rule.path);
        for (role, token) in &tokens {
            // Signing out ends the session used: a throwaway one for that.
            let throwaway;
            let token = if rule.method == Method::DELETE && rule.path == "/api/v1/session" {
                throwaway = sign_in_as(&a.pool, &a.base, *role).await;
                &throwaway
            } else {
                token
            };
            let (status, body) = call(&a.base, &rule.method, rule.path, Some(token)).await;
            if rule.roles.contains(role) {
                assert!(
                    status != 401 && status != 403,
                    "{} {} as {role:?}: {status} {body}",
                    rule.method,
                    rule.path
                );
            } else {
                assert_eq!(status, 403, "{} {} as {role:?}: {body}", rule.method, rule.path);
            }
        }
    }
    // The oversight view reads incidents; the console's own routes are not theirs.
    let oversight = &tokens.iter().find(|t| t.0 == Role::Oversight).unwrap().1;
    assert_eq!(call(&a.base, &Method::GET, "/api/v1/incidents", Some(oversight)).await.0, 200);
    assert_eq!(call(&a.base, &Method::GET, "/api/v1/reviews", Some(oversight)).await.0, 403);
    // An officer's tablet sees pictures, not the console.
    let officer = &tokens.iter().find(|t| t.0 == Role::Officer).unwrap().1;
    assert_eq!(call(&a.base, &Method::GET, "/api/v1/incidents", Some(officer)).await.0, 403);
    let (status, me) = call(&a.base, &Method::GET, "/api/v1/session", Some(officer)).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["role"], "officer");
    assert_eq!(me["user"]["unit_id"], "unit-1");
    a.handle.stop(true).await;
}

#[actix_rt::test]
async fn sign_in_sets_a_strict_cookie_and_failures_are_limited_and_audited() {
    let a = api().await;
    kuzet::auth::add_user(&a.pool, "disp-1", Role::Dispatcher, None, "correct horse battery", "user:test")
        .await
        .unwrap();
    let client = client();
    let sign_in = |password: &'static str| {
        client
            .post(format!("{}/api/v1/session", a.base))
            .send_json(&json!({"username": "disp-1", "password": password}))
    };
    let res = sign_in("correct horse battery").await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    for attr in ["kuzet_session=", "HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    // The cookie works as the session.
    let session = cookie.split(';').next().unwrap().to_owned();
    let res = client
        .get(format!("{}/api/v1/incidents", a.base))
        .insert_header(("Cookie", session.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Wrong passwords: refused, audited once per window, and after five from this address a
    // pause here (even the right one waits).
    for _ in 0..5 {
        assert_eq!(sign_in("wrong password").await.unwrap().status(), 401);
    }
    assert_eq!(sign_in("wrong password").await.unwrap().status(), 429);
    assert_eq!(sign_in("correct horse battery").await.unwrap().status(), 429);
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.sign_in_failed' AND subject = 'disp-1'",
    )
    .fetch_one(&a.pool)
    .await
    .unwrap();
    assert_eq!(failed, 1, "a user's failures are audited once per window, not per attempt");
    let refused: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.sign_in_refused'")
            .fetch_one(&a.pool)
            .await
            .unwrap();
    assert_eq!(refused, 1, "refusals audited once per window, not per attempt");
    // An unknown user name is refused the same way and counted, not audited (made-up names
    // cannot fill the log); what is not a user name at all (a password typed into the wrong
    // field) is never written to it.
    for name in ["nobody", "My Secret|Pass"] {
        let res = client
            .post(format!("{}/api/v1/session", a.base))
            .send_json(&json!({"username": name, "password": "whatever it is"}))
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let typed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE details::text LIKE '%Secret%' OR subject LIKE '%Secret%'",
    )
    .fetch_one(&a.pool)
    .await
    .unwrap();
    assert_eq!(typed, 0);
    let unnamed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.sign_in_failed' AND subject <> 'disp-1'",
    )
    .fetch_one(&a.pool)
    .await
    .unwrap();
    assert_eq!(unnamed, 0);
    // A sign-in body is small.
    let res = client
        .post(format!("{}/api/v1/session", a.base))
        .insert_header(("content-type", "application/json"))
        .send_body(format!(r#"{{"username":"disp-1","password":"{}"}}"#, "x".repeat(10_000)))
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    // Signing out ends the session; a new password ends every session.
    let res = client
        .delete(format!("{}/api/v1/session", a.base))
        .insert_header(("Cookie", session.clone()))
        .insert_header(("Origin", a.base.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{}/api/v1/incidents", a.base))
        .insert_header(("Cookie", session))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let token = sign_in_as(&a.pool, &a.base, Role::Supervisor).await;
    let name: String = sqlx::query_scalar("SELECT username FROM users WHERE role = 'supervisor'")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(
        call(&a.base, &Method::GET, "/api/v1/reviews", Some(&token)).await.0,
        404,
        "no watchlist here"
    );
    kuzet::auth::add_user(&a.pool, &name, Role::Supervisor, None, "another long password", "user:test")
        .await
        .unwrap();
    let (status, _) = call(&a.base, &Method::GET, "/api/v1/incidents", Some(&token)).await;
    assert_eq!(status, 401, "the old session ended with the new password");
    a.handle.stop(true).await;
}

#[actix_rt::test]
async fn user_add_on_the_command_line_reads_the_password_from_stdin() {
    let url = fresh_database().await;
    let pool = kuzet::store::connect(&url).await.unwrap();
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kuzet"))
            .args(["user", "add"])
            .args(args)
            .args(["--by", "admin", "--database-url", &url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(
        &["--username", "officer-7", "--role", "officer", "--unit", "unit-7"],
        "a long enough password\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "added officer-7 (officer)");
    let (role, unit, hash): (String, Option<String>, String) =
        sqlx::query_as("SELECT role, unit_id, password_hash FROM users WHERE username = 'officer-7'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((role.as_str(), unit.as_deref()), ("officer", Some("unit-7")));
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("a long enough password"));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'user.add' AND subject = 'officer-7'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // Refused: a short password, an officer without a unit, a dispatcher with one.
    for (args, pw) in [
        (&["--username", "x1", "--role", "dispatcher"][..], "short\n"),
        (&["--username", "x2", "--role", "officer"][..], "a long enough password\n"),
        (&["--username", "x3", "--role", "dispatcher", "--unit", "u"][..], "a long enough password\n"),
        (&["--username", "Bad Name", "--role", "dispatcher"][..], "a long enough password\n"),
    ] {
        let out = run(args, pw);
        assert!(!out.status.success(), "{args:?} accepted");
    }
}

#[actix_rt::test]
async fn oversight_reads_the_audit_log_page_by_page_and_its_chain_verified() {
    let a = api().await;
    let token = sign_in_as(&a.pool, &a.base, Role::Oversight).await;
    // user.add and auth.sign_in are already on the chain.
    let (status, first) = call(&a.base, &Method::GET, "/api/v1/audit?limit=1", Some(&token)).await;
    assert_eq!(status, 200, "{first}");
    let rows = first["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["seq"], 1);
    assert_eq!(rows[0]["action"], "user.add");
    assert_eq!(rows[0]["hash"].as_str().unwrap().len(), 64);
    let next = first["next_after"].as_i64().unwrap();
    let (_, second) =
        call(&a.base, &Method::GET, &format!("/api/v1/audit?after={next}&limit=10"), Some(&token)).await;
    let rows = second["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["seq"].as_i64().unwrap() > next));
    assert!(rows.iter().any(|r| r["action"] == "auth.sign_in"));
    // Reading the log is on the log.
    assert!(rows.iter().any(|r| r["action"] == "audit.read"), "{second}");
    let (_, only) = call(&a.base, &Method::GET, "/api/v1/audit?action=user.add", Some(&token)).await;
    assert!(only["rows"].as_array().unwrap().iter().all(|r| r["action"] == "user.add"));
    for bad in [
        "/api/v1/audit?limit=0",
        "/api/v1/audit?limit=5000",
        "/api/v1/audit?after=-1",
        "/api/v1/audit?page=2",
    ] {
        let (status, body) = call(&a.base, &Method::GET, bad, Some(&token)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, verified) = call(&a.base, &Method::GET, "/api/v1/audit/verify", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(verified["intact"], true, "{verified}");
    assert!(verified["rows"].as_u64().unwrap() >= 4);
    a.handle.stop(true).await;
}

/// A sign-in of `user` from the local address `from` (loopback has all of 127/8).
async fn sign_in_from(
    base: &str,
    from: [u8; 4],
    user: &str,
    password: &str,
) -> awc::ClientResponse<
    impl futures_util::Stream<Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>>,
> {
    let connector = awc::Connector::new().local_address(std::net::IpAddr::from(from));
    awc::Client::builder()
        .connector(connector)
        .finish()
        .post(format!("{base}/api/v1/session"))
        .send_json(&json!({"username": user, "password": password}))
        .await
        .unwrap()
}

#[actix_rt::test]
async fn guesses_from_one_address_do_not_lock_the_user_out_of_another() {
    let a = api().await;
    kuzet::auth::add_user(&a.pool, "disp-2", Role::Dispatcher, None, "correct horse battery", "user:test")
        .await
        .unwrap();
    assert_eq!(sign_in_from(&a.base, [127, 0, 0, 1], "disp-2", "correct horse battery").await.status(), 200);
    // Someone else guesses from another address until refused there...
    for _ in 0..5 {
        assert_eq!(sign_in_from(&a.base, [127, 0, 0, 7], "disp-2", "a wrong guess").await.status(), 401);
    }
    for _ in 0..30 {
        assert_eq!(sign_in_from(&a.base, [127, 0, 0, 7], "disp-2", "a wrong guess").await.status(), 429);
    }
    assert_eq!(sign_in_from(&a.base, [127, 0, 0, 7], "disp-2", "correct horse battery").await.status(), 429);
    // ...and the dispatcher still signs in at their console.
    assert_eq!(sign_in_from(&a.base, [127, 0, 0, 1], "disp-2", "correct horse battery").await.status(), 200);
    // 35 attempts, 2 rows: one failure and one refusal, each once per window.
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT action, details FROM audit_log WHERE action LIKE 'auth.sign_in_%' AND subject = 'disp-2' ORDER BY seq",
    )
    .fetch_all(&a.pool)
    .await
    .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(actions, ["auth.sign_in_failed", "auth.sign_in_refused"], "{rows:?}");
    // The sign-in after them says how many failures came before it.
    let last: Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'auth.sign_in' AND subject = 'disp-2' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&a.pool)
    .await
    .unwrap();
    assert_eq!(last["failures_before"], 5, "{last}");
    a.handle.stop(true).await;
}

#[actix_rt::test]
async fn state_changes_need_a_page_of_ours_and_a_body() {
    let a = api().await;
    kuzet::auth::add_user(&a.pool, "disp-3", Role::Dispatcher, None, "correct horse battery", "user:test")
        .await
        .unwrap();
    let client = client();
    let sign_in = |origin: Option<&str>| {
        let mut req = client.post(format!("{}/api/v1/session", a.base));
        if let Some(o) = origin {
            req = req.insert_header(("Origin", o.to_owned()));
        }
        req.send_json(&json!({"username": "disp-3", "password": "correct horse battery"}))
    };
    // Login CSRF: a foreign page cannot sign a browser in.
    assert_eq!(sign_in(Some("https://evil.example")).await.unwrap().status(), 403);
    let res = sign_in(Some(&a.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie =
        res.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
    let token = sign_in_as(&a.pool, &a.base, Role::Dispatcher).await;
    let cancel = format!("{}/api/v1/incidents/0b0e7f0e-4a43-4c9b-9f54-2d3c9b0a7c11/cancel", a.base);
    let send = |auth: (&'static str, String), origin: Option<&str>| {
        let mut req = client.post(&cancel).insert_header(auth);
        if let Some(o) = origin {
            req = req.insert_header(("Origin", o.to_owned()));
        }
        req.send_json(&json!({"reason": "test"}))
    };
    let by_cookie = || ("Cookie", cookie.clone());
    let by_token = || ("Authorization", format!("Bearer {token}"));
    // A browser session: only with our Origin (browsers always send one on a POST).
    let res = send(by_cookie(), None).await.unwrap();
    assert_eq!(res.status(), 403, "a browser's POST without Origin");
    assert_eq!(send(by_cookie(), Some("https://evil.example")).await.unwrap().status(), 403);
    assert_ne!(send(by_cookie(), Some(&a.base)).await.unwrap().status(), 403, "our own page");
    // An integration's token: no Origin is fine, a foreign one is not.
    assert_ne!(send(by_token(), None).await.unwrap().status(), 403);
    assert_eq!(send(by_token(), Some("https://evil.example")).await.unwrap().status(), 403);
    // Reading needs no Origin (a link opened in a new tab has none).
    let res =
        client.get(format!("{}/api/v1/incidents", a.base)).insert_header(by_cookie()).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // A decision carries a JSON body: no plain form from another site can make one.
    let review = format!("{}/api/v1/reviews/0b0e7f0e-4a43-4c9b-9f54-2d3c9b0a7c11/confirm", a.base);
    let mut res = client.post(&review).insert_header(by_token()).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["parameter"], "body", "{body}");
    let res = client
        .post(&review)
        .insert_header(by_token())
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body("note=x")
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a form is not a decision");
    assert_eq!(
        client.post(&review).insert_header(by_token()).send_json(&json!({"note": 5})).await.unwrap().status(),
        400
    );
    // With one, it reaches the handler (no watchlist in this process: 404).
    assert_eq!(
        client.post(&review).insert_header(by_token()).send_json(&json!({})).await.unwrap().status(),
        404
    );
    a.handle.stop(true).await;
}

#[actix_rt::test]
async fn custodial_cameras_alerts_in_the_audit_log_are_for_oversight_alone() {
    let a = api().await;
    sqlx::query("SELECT audit_append('camera:cam-cell-1', 'camera.integrity', 'cam-cell-1', '{\"state\": \"covered\"}')")
        .execute(&a.pool)
        .await
        .unwrap();
    sqlx::query("SELECT audit_append('user:x', 'watchlist.list', NULL, '{}')")
        .execute(&a.pool)
        .await
        .unwrap();
    let list = |token: String| {
        let base = a.base.clone();
        async move {
            let client = client();
            let mut res = client
                .get(format!("{base}/api/v1/audit?limit=1000"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().limit(1 << 20).await.unwrap()
        }
    };
    let oversight = list(sign_in_as(&a.pool, &a.base, Role::Oversight).await).await;
    let supervisor = list(sign_in_as(&a.pool, &a.base, Role::Supervisor).await).await;
    let has = |v: &Value, action: &str| v["rows"].as_array().unwrap().iter().any(|r| r["action"] == action);
    assert!(has(&oversight, "camera.integrity"));
    assert_eq!(oversight["withheld"], 0);
    assert!(!has(&supervisor, "camera.integrity"), "{supervisor}");
    assert!(has(&supervisor, "watchlist.list"));
    assert_eq!(supervisor["withheld"], 1);
    // Asking for them by name gives nothing either.
    let token = sign_in_as(&a.pool, &a.base, Role::Supervisor).await;
    let mut res = client()
        .get(format!("{}/api/v1/audit?action=camera.integrity", a.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 0);
    assert_eq!(v["withheld"], 1);
    a.handle.stop(true).await;
}
