//! TLS on every link: kuzet's broker (MQTT and WebSockets over TLS), kuzet's client to an
//! external broker, HTTPS, and PostgreSQL with `sslmode=verify-full`. For each, a client that
//! trusts the deployment's CA connects, a plaintext client is refused where TLS is required,
//! and a client that trusts another CA (or reaches the server by a name its certificate does
//! not carry) is refused. Certificates come from `kuzet certs`; the PostgreSQL cluster's from
//! scripts/pg.sh.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kuzet::mqtt::topics;
use kuzet::settings::{Secret, TlsFiles};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, QoS, TlsConfiguration, Transport,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A CA and one server certificate made by `kuzet certs` in a folder of their own.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    files: TlsFiles,
}

fn kuzet_certs(dir: &Path, name: &str, hosts: &[&str], extra: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kuzet"));
    cmd.args(["certs", "--dir"]).arg(dir).args(["--name", name]).args(extra);
    for h in hosts {
        cmd.args(["--host", h]);
    }
    let out = cmd.output().expect("kuzet certs runs");
    assert!(out.status.success(), "kuzet certs failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pki(hosts: &[&str]) -> Pki {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let tls = dir.path().join("tls");
    kuzet_certs(&tls, "server", hosts, &[]);
    Pki {
        ca: tls.join("ca.crt"),
        files: TlsFiles { cert: tls.join("server.crt"), key: tls.join("server.key") },
        _dir: dir,
    }
}

fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    kuzet::settings::tls::client_config(kuzet::settings::tls::roots(ca).expect("the CA reads"))
        .expect("a client config")
}

fn mqtts(ca: &Path) -> Transport {
    Transport::Tls(TlsConfiguration::Rustls(client_config(ca)))
}

fn wss(ca: &Path) -> Transport {
    Transport::Wss(TlsConfiguration::Rustls(client_config(ca)))
}

/// MQTT options for device `id`; over WebSockets `host` is the whole URL.
fn device_options(id: &str, host: &str, port: u16, transport: Transport) -> MqttOptions {
    let mut o = MqttOptions::new(id, host, port);
    o.set_credentials(id, pw(id));
    o.set_keep_alive(Duration::from_secs(10));
    o.set_transport(transport);
    o
}

/// Polls a fresh connection until the broker's CONNACK or the first error.
async fn first_connack(mut eventloop: EventLoop) -> Result<(), ConnectionError> {
    loop {
        match eventloop.poll().await? {
            Event::Incoming(Incoming::ConnAck(_)) => return Ok(()),
            _ => continue,
        }
    }
}

async fn connects(o: MqttOptions) -> Result<(), ConnectionError> {
    let (_client, eventloop) = AsyncClient::new(o, 10);
    first_connack(eventloop).await
}

/// Refused by the client's own check of the server's certificate, not for another reason.
fn refused_for_certificate(r: Result<(), ConnectionError>) {
    match r {
        Ok(()) => panic!("connected, though the server's certificate should not verify"),
        Err(e) => {
            assert!(e.to_string().contains("invalid peer certificate"), "refused for another reason: {e}")
        }
    }
}

/// A device over TLS with its subscriptions acknowledged, and what it receives.
struct TlsDevice {
    client: AsyncClient,
    rx: mpsc::Receiver<(String, Value)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_device(o: MqttOptions, subscriptions: &[String]) -> TlsDevice {
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    for s in subscriptions {
        client.subscribe(s.clone(), QoS::AtLeastOnce).await.expect("subscribe queued");
    }
    let (tx, rx) = mpsc::channel(64);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    let want = subscriptions.len();
    let task = tokio::spawn(async move {
        let mut acks = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    acks += 1;
                    if acks == want {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic.clone(), v)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.to_string()));
                    }
                    return;
                }
            }
        }
    });
    ready_rx.await.expect("device task").expect("device connects over TLS and subscribes");
    TlsDevice { client, rx, task }
}

impl TlsDevice {
    async fn publish(&self, topic: String, v: Value) {
        self.client.publish(topic, QoS::AtLeastOnce, false, v.to_string()).await.expect("publish queued");
    }

    /// Present, as a device says on connecting (retained).
    async fn online(&self, kind: topics::DeviceKind, id: &str) {
        let topic = topics::device(kind, id, "online");
        self.client.publish(topic, QoS::AtLeastOnce, true, "true").await.expect("publish queued");
    }

    /// The next message whose topic ends with `suffix`, within 10 s.
    async fn next_on(&mut self, suffix: &str) -> Value {
        let wait = async {
            loop {
                match self.rx.recv().await {
                    Some((topic, v)) if topic.ends_with(suffix) => return v,
                    Some(_) => continue,
                    None => panic!("device link closed"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("nothing on *{suffix}"))
    }
}

fn tls_listeners(s: &mut kuzet::settings::Settings, files: &TlsFiles) {
    s.broker.tls = files.clone();
    s.broker.tls_listen = format!("127.0.0.1:{}", free_port());
    s.broker.wss_listen = format!("127.0.0.1:{}", free_port());
}

#[actix_rt::test]
async fn kuzets_broker_speaks_tls_to_devices_and_refuses_plaintext_and_strangers() {
    // The broker's certificate names localhost only: 127.0.0.1 is a name it does not carry.
    let p = pki(&["localhost"]);
    let other = pki(&["localhost"]);
    let files = p.files.clone();
    let t = spawn_app(BrokerKind::Embedded, city(&["u-1"]), |s| tls_listeners(s, &files)).await;
    let broker = t.app.managed_broker().expect("kuzet's own broker");
    let tls = broker.tls_listen().expect("a TLS listener").port();
    let wss_port = broker.wss_listen().expect("a TLS WebSocket listener").port();
    let wss_url = |host: &str| format!("wss://{host}:{wss_port}/mqtt");

    // Trusting the deployment's CA: connected, over MQTT and over WebSockets.
    connects(device_options("btn-a", "localhost", tls, mqtts(&p.ca))).await.expect("MQTT over TLS");
    connects(device_options("u-1", &wss_url("localhost"), wss_port, wss(&p.ca)))
        .await
        .expect("WebSockets over TLS");

    // Plaintext where TLS is required: the broker answers no CONNACK.
    let plain = connects(device_options("btn-a", "127.0.0.1", tls, Transport::Tcp)).await;
    assert!(plain.is_err(), "plaintext MQTT on the TLS port was refused");
    let plain_ws =
        connects(device_options("u-1", &format!("ws://127.0.0.1:{wss_port}/mqtt"), wss_port, Transport::Ws))
            .await;
    assert!(plain_ws.is_err(), "plaintext WebSockets on the TLS port were refused");

    // A client that trusts another CA, or reaches the broker by another name, refuses it.
    refused_for_certificate(connects(device_options("btn-a", "localhost", tls, mqtts(&other.ca))).await);
    refused_for_certificate(
        connects(device_options("u-1", &wss_url("localhost"), wss_port, wss(&other.ca))).await,
    );
    refused_for_certificate(connects(device_options("btn-a", "127.0.0.1", tls, mqtts(&p.ca))).await);

    // The identity rule holds over TLS too: a wrong password gets no session.
    let mut o = device_options("btn-a", "localhost", tls, mqtts(&p.ca));
    o.set_credentials("btn-a", "not-its-password");
    assert!(connects(o).await.is_err(), "a wrong password is refused over TLS");
}

#[actix_rt::test]
async fn kuzet_checks_an_external_brokers_certificate() {
    let p = pki(&["localhost"]);
    let other = pki(&["localhost"]);
    let devices = city(&["u-1"]);
    let mut plain = String::new();
    for (u, pass) in kuzet::brokerfiles::accounts(&devices, "kuzet", SERVICE_PASSWORD, &[]) {
        plain.push_str(&format!("{u}:{pass}\n"));
    }
    let access =
        kuzet::mosquitto::Access { passwords_plain: plain, acl: kuzet::brokerfiles::acl(&devices, "kuzet") };
    let m = kuzet::mosquitto::MosquittoProcess::start_tls(Some(access), &p.files.cert, &p.files.key)
        .expect("Mosquitto with a TLS listener");
    let port = m.tls_port.expect("a TLS port");

    // With the CA that signed the broker's certificate: kuzet connects and subscribes.
    let (ca, url) = (p.ca.clone(), format!("mqtts://localhost:{port}"));
    let t = spawn_app(BrokerKind::Embedded, devices, move |s| {
        s.mqtt.url = url;
        s.mqtt.ca_file = ca;
    })
    .await;
    assert_eq!(t.app.broker(), ("localhost", port));

    // The same client options with another CA, or the broker's address by a name its
    // certificate does not carry, never get a CONNACK.
    for (ca, host) in [(&other.ca, "localhost"), (&p.ca, "127.0.0.1")] {
        let mut s = test_settings();
        s.mqtt.url = format!("mqtts://{host}:{port}");
        s.mqtt.ca_file = ca.clone();
        let mut o = kuzet::mqtt::gateway::options(&s.mqtt, "kuzet", (host, port), false);
        o.set_transport(kuzet::startup::mqtt_transport(&s.mqtt).expect("a TLS transport"));
        refused_for_certificate(connects(o).await);
    }
}

/// An HTTP client that trusts `ca` only.
fn https_client(ca: &Path) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(client_config(ca)))
        .timeout(Duration::from_secs(30))
        .finish()
}

#[actix_rt::test]
async fn https_is_served_and_plaintext_and_strangers_are_refused() {
    let p = pki(&["localhost"]);
    let other = pki(&["localhost"]);
    let files = p.files.clone();
    let t = spawn_app(BrokerKind::Embedded, city(&["unit-1"]), |s| {
        s.http.tls = files;
        // HTTPS marks the cookie Secure whatever this says.
        s.http.secure_cookies = false;
    })
    .await;
    let port = t.app.http_addr().expect("HTTP").port();
    let base = format!("https://localhost:{port}");

    let pool = t.app.pool().expect("a database");
    kuzet::auth::add_user(
        pool,
        "tls-dispatcher",
        kuzet::auth::Role::Dispatcher,
        None,
        "correct horse battery",
        "user:test",
    )
    .await
    .expect("user added");
    let res = https_client(&p.ca)
        .post(format!("{base}/api/v1/session"))
        .send_json(&json!({"username": "tls-dispatcher", "password": "correct horse battery"}))
        .await
        .expect("an answer over HTTPS");
    assert_eq!(res.status(), 200, "signed in over HTTPS");
    let cookie = res.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "the session cookie is Secure over HTTPS: {cookie}");

    // Plaintext HTTP to the HTTPS port gets no HTTP answer.
    let plain = client().get(format!("http://localhost:{port}/api/v1/session")).send().await;
    assert!(plain.is_err(), "plaintext HTTP answered: {:?}", plain.map(|r| r.status()));
    // A client that trusts another CA, or names the server otherwise, refuses it.
    for url in [format!("{base}/api/v1/session"), format!("https://127.0.0.1:{port}/api/v1/session")] {
        let ca = if url.starts_with(&base) { &other.ca } else { &p.ca };
        let e = https_client(ca).get(&url).send().await.expect_err("the server's certificate is refused");
        assert!(format!("{e:?}").contains("InvalidCertificate"), "refused for another reason: {e:?}");
    }
}

/// The CA the test cluster's certificate verifies with (scripts/pg.sh; with-db.sh exports it).
fn pg_ca() -> PathBuf {
    let ca = std::env::var_os("KUZET_TEST_PG_CA")
        .map_or_else(|| PathBuf::from("target/pg/tls/ca.crt"), PathBuf::from);
    assert!(
        ca.is_file(),
        "no CA for the test cluster at {} (scripts/pg.sh makes it; set KUZET_TEST_PG_CA for another cluster)",
        ca.display()
    );
    std::fs::canonicalize(ca).expect("an absolute path")
}

/// `url` (a fresh test database) with TLS required and the server's name and chain checked.
fn verify_full(url: &str, ca: &Path) -> String {
    format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())
}

async fn pg_connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url).await
}

async fn over_tls(conn: &mut sqlx::PgConnection) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pg_stat_ssl")
}

#[actix_rt::test]
async fn postgres_verify_full_trusts_the_clusters_ca_only() {
    let url = fresh_database().await;
    let ca = pg_ca();
    let mut conn = pg_connect(&verify_full(&url, &ca)).await.expect("verify-full with the cluster's CA");
    assert!(over_tls(&mut conn).await, "the connection is encrypted");

    let other = pki(&["localhost", "127.0.0.1"]);
    let e = pg_connect(&verify_full(&url, &other.ca)).await.expect_err("another CA refuses the server");
    assert!(e.to_string().contains("invalid peer certificate"), "refused for another reason: {e}");
}

#[actix_rt::test]
async fn postgres_refuses_plaintext_to_a_role_that_requires_tls() {
    let url = fresh_database().await;
    let tls_only = url.replacen("postgres://postgres@", "postgres://kuzet_tls_only@", 1);
    assert_ne!(tls_only, url, "the test cluster's URL names user postgres: {url}");
    let e = pg_connect(&format!("{tls_only}?sslmode=disable")).await.expect_err("plaintext refused");
    assert!(e.to_string().contains("no encryption"), "refused for another reason: {e}");
    let mut conn = pg_connect(&verify_full(&tls_only, &pg_ca())).await.expect("the same role over TLS");
    assert!(over_tls(&mut conn).await);
}

#[actix_rt::test]
async fn an_alarm_is_dispatched_with_every_link_over_tls() {
    let p = pki(&["localhost"]);
    let db = verify_full(&fresh_database().await, &pg_ca());
    let files = p.files.clone();
    let t = spawn_app(BrokerKind::Embedded, city(&["unit-1"]), move |s| {
        one_unit(s);
        s.database.url = Secret::new(db);
        tls_listeners(s, &files);
        s.http.tls = files;
    })
    .await;
    let mut conn = t.app.pool().expect("a database").acquire().await.expect("a connection");
    assert!(over_tls(&mut conn).await, "kuzet's record is written over TLS");
    drop(conn);
    let broker = t.app.managed_broker().expect("kuzet's own broker");
    let tls = broker.tls_listen().expect("MQTT over TLS").port();
    let wss_port = broker.wss_listen().expect("WebSockets over TLS").port();

    // The tablet page learns the broker's TLS WebSocket port over HTTPS.
    let base = format!("https://localhost:{}", t.app.http_addr().expect("HTTP").port());
    let pool = t.app.pool().expect("a database");
    kuzet::auth::add_user(
        pool,
        "tls-officer",
        kuzet::auth::Role::Officer,
        Some("unit-1"),
        "correct horse battery",
        "user:test",
    )
    .await
    .expect("officer added");
    let https = https_client(&p.ca);
    let mut res = https
        .post(format!("{base}/api/v1/session"))
        .send_json(&json!({"username": "tls-officer", "password": "correct horse battery"}))
        .await
        .expect("signed in");
    let token = res.json::<Value>().await.expect("JSON")["token"].as_str().expect("a token").to_owned();
    let mut res = https
        .get(format!("{base}/api/v1/tablet"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("the tablet's settings");
    assert_eq!(res.status(), 200);
    let tablet: Value = res.json().await.expect("JSON");
    let url = tablet["mqtt"]["url"].as_str().expect("a broker URL");
    assert!(url.ends_with(&format!(":{wss_port}/mqtt")), "the page is sent to the TLS WebSocket: {url}");

    // The tablet over WebSockets with TLS, as the page connects; the button over MQTT with TLS.
    let unit = "unit-1";
    let wss_url = format!("wss://localhost:{wss_port}/mqtt");
    let mut tablet = tls_device(
        device_options(unit, &wss_url, wss_port, wss(&p.ca)),
        &[topics::offers(unit), format!("kuzet/v1/units/{unit}/incidents/+")],
    )
    .await;
    tablet.online(topics::DeviceKind::Unit, unit).await;
    tablet
        .publish(
            topics::device(topics::DeviceKind::Unit, unit, "position"),
            position(school_location().offset(300.0, 0.0)),
        )
        .await;
    t.wait_available(1).await;
    let mut button =
        tls_device(device_options("btn-a", "localhost", tls, mqtts(&p.ca)), &[topics::button_ack("btn-a")])
            .await;
    button.online(topics::DeviceKind::Button, "btn-a").await;

    let alarm = uuid::Uuid::new_v4();
    button.publish(topics::device(topics::DeviceKind::Button, "btn-a", "alarm"), raise(&alarm)).await;
    let ack = button.next_on("/ack").await;
    assert_eq!(
        (ack["state"].as_str(), ack["alarm_id"].as_str()),
        (Some("received"), Some(alarm.to_string().as_str()))
    );
    let offer = tablet.next_on("/offers").await;
    tablet
        .publish(
            topics::device(topics::DeviceKind::Unit, unit, "reply"),
            json!({"offer_id": offer["offer_id"], "decision": "accept"}),
        )
        .await;
    assert_eq!(button.next_on("/ack").await["state"], "dispatched");
}

#[test]
fn kuzet_certs_keeps_its_ca_and_signs_more_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let first = kuzet_certs(&tls, "broker", &["mqtt.example.org", "10.1.2.3"], &[]);
    assert!(first.contains("made a private CA"), "{first}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |f: &str| std::fs::metadata(tls.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("ca.key"), mode("broker.key"), mode(".")), (0o600, 0o600, 0o700));
    let ca = std::fs::read(tls.join("ca.crt")).unwrap();
    let cert = std::fs::read(tls.join("broker.crt")).unwrap();

    // Again: the CA and the certificate stay; --renew replaces the certificate only.
    let again = kuzet_certs(&tls, "broker", &["mqtt.example.org"], &[]);
    assert!(again.contains("kept"), "{again}");
    assert_eq!(std::fs::read(tls.join("broker.crt")).unwrap(), cert);
    kuzet_certs(&tls, "broker", &["mqtt.example.org"], &["--renew"]);
    assert_ne!(std::fs::read(tls.join("broker.crt")).unwrap(), cert);
    kuzet_certs(&tls, "db", &["db.example.org"], &[]);
    assert_eq!(std::fs::read(tls.join("ca.crt")).unwrap(), ca, "one CA for the deployment");

    // Each certificate chains to the CA and names its hosts, as a TLS client checks it.
    use rustls::client::danger::ServerCertVerifier as _;
    let roots = Arc::new(kuzet::settings::tls::roots(&tls.join("ca.crt")).unwrap());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, kuzet::settings::tls::provider())
            .build()
            .unwrap();
    for (file, host) in [("broker.crt", "mqtt.example.org"), ("db.crt", "db.example.org")] {
        let cert = kuzet::settings::tls::read_certs(&tls.join(file)).unwrap().remove(0);
        let name = rustls::pki_types::ServerName::try_from(host).unwrap();
        verifier
            .verify_server_cert(&cert, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .expect("verifies");
        let wrong = rustls::pki_types::ServerName::try_from("other.example.org").unwrap();
        assert!(verifier
            .verify_server_cert(&cert, &[], &wrong, &[], rustls::pki_types::UnixTime::now())
            .is_err());
    }
}

#[actix_rt::test]
async fn kuzet_refuses_to_start_on_a_database_certificate_it_cannot_verify() {
    let other = pki(&["localhost", "127.0.0.1"]);
    let mut s = test_settings();
    s.database.url = Secret::new(verify_full(&fresh_database().await, &other.ca));
    let e = match kuzet::startup::Application::build(s, city(&["unit-1"])).await {
        Ok(_) => panic!("kuzet started on a database whose certificate it cannot verify"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("over TLS") && e.contains("invalid peer certificate"), "{e}");
}
