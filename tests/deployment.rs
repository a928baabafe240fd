//! No published password works outside the demo: a database claimed by the demo (whose users
//! share a published password) is refused by `serve`, and a deployment's database by `demo`.

mod common;

use common::*;
use kuzet::startup::Application;

async fn start(url: &str, demo: bool) -> anyhow::Result<Application> {
    let mut s = test_settings();
    s.database.url = kuzet::settings::Secret::new(url);
    s.demo = demo;
    s.http.listen = String::new();
    Application::build(s, city(&["u1"])).await
}

#[actix_rt::test]
async fn the_demo_and_a_deployment_never_share_a_database() {
    // A deployment's database: the demo refuses it, serve goes on using it.
    let live = fresh_database().await;
    let app = start(&live, false).await.expect("serve claims a new database");
    app.stop().await;
    let e = start(&live, true).await.err().expect("the demo refuses a deployment's database");
    assert!(format!("{e:#}").contains("kuzet-demo"), "{e:#}");
    start(&live, false).await.expect("serve starts again on its own database").stop().await;

    // The demo's database: serve refuses it.
    let demo = fresh_database().await;
    start(&demo, true).await.expect("the demo claims an empty database").stop().await;
    let e = start(&demo, false).await.err().expect("serve refuses the demo's database");
    assert!(format!("{e:#}").contains("published"), "{e:#}");

    // A database that already holds data but no claim (from before claims existed) is not
    // the demo's.
    let old = fresh_database().await;
    let pool = kuzet::store::connect(&old).await.unwrap();
    sqlx::query("DELETE FROM deployment").execute(&pool).await.unwrap();
    kuzet::auth::add_user(
        &pool,
        "dispatcher-1",
        kuzet::auth::Role::Dispatcher,
        None,
        "a-long-password-1",
        "test",
    )
    .await
    .unwrap();
    let e = start(&old, true).await.err().expect("the demo refuses a database with users");
    assert!(format!("{e:#}").contains("not the demo's"), "{e:#}");
}

#[actix_rt::test]
async fn a_published_device_password_in_the_registry_works_only_in_the_demo() {
    let mut devices = city(&["u1"]);
    devices.sites[0].buttons[0].password = Some("kuzet-demo-button".into());
    let mut s = test_settings();
    s.http.listen = String::new();
    let e = Application::build(s, devices.clone())
        .await
        .err()
        .expect("serve refuses a published device password");
    assert!(format!("{e:#}").contains("published password"), "{e:#}");
    let mut s = test_settings();
    s.http.listen = String::new();
    s.demo = true;
    Application::build(s, devices).await.expect("the demo takes its own").stop().await;
}
