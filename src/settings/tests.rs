use super::*;

#[test]
fn defaults_load_and_name_the_embedded_broker() {
    let s = Settings::defaults();
    assert_eq!(s.mqtt.target().unwrap(), BrokerTarget::Embedded);
    assert_eq!(s.dispatch.plans[&IncidentKind::SchoolAlarm].units_required, 2);
    assert_eq!(s.mqtt.max_payload_bytes, 16 * 1024);
}

#[test]
fn environment_overrides_files_and_keeps_types() {
    let env = vec![
        ("KUZET_MQTT__URL".to_owned(), "mqtt://broker.local:1884".to_owned()),
        ("KUZET_DISPATCH__POSITION_MAX_AGE_S".to_owned(), "30".to_owned()),
        ("KUZET_DISPATCH__PLANS__SCHOOL_ALARM__OFFER_TIMEOUT".to_owned(), "2.5".to_owned()),
        ("OTHER".to_owned(), "x".to_owned()),
        ("KUZET_MQTT_PASSWORD".to_owned(), "not a setting".to_owned()),
        ("KUZET_MQTT__PASSWORD".to_owned(), "a-long-enough-secret".to_owned()),
    ];
    let s = Settings::load_from(None, &env).unwrap();
    assert_eq!(
        s.mqtt.target().unwrap(),
        BrokerTarget::External { host: "broker.local".into(), port: 1884, tls: false }
    );
    assert_eq!(s.dispatch.position_max_age_s, 30);
    assert_eq!(s.dispatch.plans[&IncidentKind::SchoolAlarm].offer_timeout, Duration::from_millis(2500));
    assert_eq!(s.mqtt.password.expose(), "a-long-enough-secret");
}

#[test]
fn unknown_keys_and_bad_urls_are_refused() {
    let env = vec![("KUZET_MQTT__PASWORD".to_owned(), "x".to_owned())];
    assert!(Settings::load_from(None, &env).is_err());
    for url in ["http://x:1", "mqtt://", "mqtt://h:notaport", "mqtt://u@h:1"] {
        let env = vec![("KUZET_MQTT__URL".to_owned(), url.to_owned())];
        assert!(Settings::load_from(None, &env).is_err(), "{url}");
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A file in a fresh folder under the system's temporary folder.
fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kuzet-settings-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn a_setting_comes_from_a_file_less_one_trailing_newline() {
    let url = temp_file("database_url", "postgres://kuzet:pw@postgis:5432/kuzet\n");
    let password = temp_file("mqtt_password", "two lines of a password\n\n");
    let crlf = temp_file("tile_attribution", "OSM-2\r\n");
    let s = Settings::load_from(
        None,
        &env(&[
            ("KUZET_DATABASE__URL_FILE", url.to_str().unwrap()),
            ("KUZET_MQTT__PASSWORD_FILE", password.to_str().unwrap()),
            ("KUZET_HTTP__TILE_ATTRIBUTION_FILE", crlf.to_str().unwrap()),
        ]),
    )
    .unwrap();
    assert_eq!(s.database.url(), Some("postgres://kuzet:pw@postgis:5432/kuzet"));
    assert_eq!(s.mqtt.password.expose(), "two lines of a password\n");
    assert_eq!(s.http.tile_attribution, "OSM-2");
}

#[test]
fn a_file_keeps_types_and_text_stays_text() {
    let age = temp_file("age", "45\n");
    let password = temp_file("password", "1000000000000000e5");
    let s = Settings::load_from(
        None,
        &env(&[
            ("KUZET_DISPATCH__POSITION_MAX_AGE_S_FILE", age.to_str().unwrap()),
            ("KUZET_MQTT__PASSWORD_FILE", password.to_str().unwrap()),
            ("KUZET_HTTP__TILE_ATTRIBUTION", "1.50"),
        ]),
    )
    .unwrap();
    assert_eq!(s.dispatch.position_max_age_s, 45);
    assert_eq!(s.mqtt.password.expose(), "1000000000000000e5");
    assert_eq!(s.http.tile_attribution, "1.50");
}

#[test]
fn an_unreadable_file_is_refused_naming_the_variable() {
    let missing = std::env::temp_dir().join(format!("kuzet-no-such-{}", uuid::Uuid::new_v4().simple()));
    let err = Settings::load_from(None, &env(&[("KUZET_DATABASE__URL_FILE", missing.to_str().unwrap())]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("KUZET_DATABASE__URL_FILE"), "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
}

#[test]
fn a_key_and_its_file_together_are_refused() {
    let url = temp_file("database_url", "postgres://a@b/c");
    let err = Settings::load_from(
        None,
        &env(&[
            ("KUZET_DATABASE__URL", "postgres://x@y/z"),
            ("KUZET_DATABASE__URL_FILE", url.to_str().unwrap()),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("KUZET_DATABASE__URL") && err.contains("KUZET_DATABASE__URL_FILE"), "{err}");
    // An unknown key read from a file is refused like any other.
    let bad = Settings::load_from(None, &env(&[("KUZET_DATABASE__URLS_FILE", url.to_str().unwrap())]));
    assert!(bad.is_err());
    // registry.file is a key of its own, not a file reference.
    let s = Settings::load_from(None, &env(&[("KUZET_REGISTRY__FILE", "/etc/kuzet/devices.toml")])).unwrap();
    assert_eq!(s.registry.file, PathBuf::from("/etc/kuzet/devices.toml"));
}

#[test]
fn secrets_do_not_print() {
    let mut s = Settings::defaults();
    s.mqtt.password = Secret::new("a-long-enough-secret");
    assert!(!format!("{s:?}").contains("a-long-enough-secret"));
}

#[test]
fn no_published_or_short_password_for_an_external_broker() {
    let ext = ("KUZET_MQTT__URL".to_owned(), "mqtt://broker.local:1883".to_owned());
    for pw in ["", "kuzet-dev-password", "sample-btn-012-a-but-longer", "short-secret"] {
        let env = vec![ext.clone(), ("KUZET_MQTT__PASSWORD".to_owned(), pw.to_owned())];
        let e = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(e.contains("mqtt.password"), "{pw:?}: {e}");
    }
    // kuzet's own broker needs none: it makes one up at every start. One that is set is
    // held to the same rule.
    assert_eq!(Settings::defaults().mqtt.password.expose(), "");
    let env = vec![("KUZET_MQTT__PASSWORD".to_owned(), "kuzet-dev-password".to_owned())];
    assert!(Settings::load_from(None, &env).is_err());
}

#[test]
fn integrations_are_held_to_names_and_topics() {
    let base = |extra: &str| {
        format!(
            "[[broker.integrations]]\nusername = \"recorder\"\npassword = \"a-long-enough-secret\"\n{extra}"
        )
    };
    let load = |text: String| {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.toml");
        std::fs::write(&f, text).unwrap();
        Settings::load_from(Some(&f), &[])
    };
    let ok = load(base("read = [\"kuzet/v1/incidents/#\"]")).unwrap();
    assert_eq!(ok.broker.integrations[0].read, ["kuzet/v1/incidents/#"]);
    assert!(load(base("read = [\"kuzet/v1/#\\ntopic readwrite #\"]")).is_err());
    assert!(load(base("write = [\"a b\"]")).is_err());
    assert!(load(base("").replace("recorder", "kuzet-units")).is_err());
    assert!(load(base("").replace("a-long-enough-secret", "short")).is_err());
}

#[test]
fn mqtts_urls_name_a_tls_broker_and_only_they_take_a_ca_file() {
    let target = |url: &str| {
        let env = env(&[("KUZET_MQTT__URL", url), ("KUZET_MQTT__PASSWORD", "a-long-enough-secret")]);
        Settings::load_from(None, &env).map(|s| s.mqtt.target().unwrap())
    };
    assert_eq!(
        target("mqtts://broker.local").unwrap(),
        BrokerTarget::External { host: "broker.local".into(), port: 8883, tls: true }
    );
    assert_eq!(
        target("mqtts://broker.local:9883").unwrap(),
        BrokerTarget::External { host: "broker.local".into(), port: 9883, tls: true }
    );
    assert!(target("mqtts://u@broker.local").is_err());
    let with_ca = |url: &str| {
        let env = env(&[
            ("KUZET_MQTT__URL", url),
            ("KUZET_MQTT__PASSWORD", "a-long-enough-secret"),
            ("KUZET_MQTT__CA_FILE", "/etc/kuzet/tls/ca.crt"),
        ]);
        Settings::load_from(None, &env)
    };
    assert_eq!(with_ca("mqtts://b:8883").unwrap().mqtt.ca_file, Path::new("/etc/kuzet/tls/ca.crt"));
    assert!(with_ca("mqtt://b:1883").is_err(), "a CA for a plaintext broker is a mistake");
}

#[test]
fn broker_tls_takes_devices_off_plaintext() {
    let load = |pairs: &[(&str, &str)]| Settings::load_from(None, &env(pairs));
    let tls = [
        ("KUZET_BROKER__TLS__CERT", "/etc/kuzet/tls/broker.crt"),
        ("KUZET_BROKER__TLS__KEY", "/etc/kuzet/tls/broker.key"),
        ("KUZET_BROKER__TLS_LISTEN", "0.0.0.0:8883"),
    ];
    let s = load(&tls).expect("TLS for devices, plaintext on loopback");
    assert_eq!(s.broker.tls.get().unwrap().key, Path::new("/etc/kuzet/tls/broker.key"));
    assert_eq!(s.broker.tls_listen().unwrap(), Some("0.0.0.0:8883".parse().unwrap()));
    assert!(Settings::defaults().broker.tls.get().is_none());

    let with = |extra: (&str, &str)| {
        let mut pairs = tls.to_vec();
        pairs.push(extra);
        load(&pairs).map(|_| ()).map_err(|e| e.to_string())
    };
    let e = with(("KUZET_BROKER__LISTEN", "0.0.0.0:1883")).unwrap_err();
    assert!(e.contains("broker.listen must be a loopback address"), "{e}");
    let e = with(("KUZET_BROKER__WS_LISTEN", "192.0.2.1:8080")).unwrap_err();
    assert!(e.contains("broker.ws_listen must be a loopback address"), "{e}");
    with(("KUZET_BROKER__WS_LISTEN", "")).expect("no plaintext WebSocket at all");
    with(("KUZET_BROKER__WSS_LISTEN", "0.0.0.0:8884")).expect("WebSockets over TLS too");

    // Half a configuration is refused: listeners without files, files without listeners,
    // a certificate without its key.
    assert!(load(&tls[2..]).is_err());
    assert!(load(&tls[..2]).is_err());
    assert!(load(&[tls[0], tls[2]]).is_err());
    assert!(load(&[("KUZET_HTTP__TLS__CERT", "/etc/kuzet/tls/http.crt")]).is_err());
    let s = load(&[("KUZET_HTTP__TLS__CERT", "h.crt"), ("KUZET_HTTP__TLS__KEY", "h.key")]).unwrap();
    assert_eq!(s.http.tls.get().unwrap().cert, Path::new("h.crt"));
}

#[test]
fn metrics_listen_on_loopback_by_default_and_elsewhere_only_with_a_token() {
    let s = Settings::defaults();
    assert_eq!(s.metrics.listen().unwrap(), Some("127.0.0.1:9464".parse().unwrap()));
    assert!(s.metrics.token().is_none());
    let off = Settings::load_from(None, &env(&[("KUZET_METRICS__LISTEN", "")])).unwrap();
    assert_eq!(off.metrics.listen().unwrap(), None);
    for listen in ["127.0.0.1:0", "[::1]:9464"] {
        assert!(Settings::load_from(None, &env(&[("KUZET_METRICS__LISTEN", listen)])).is_ok(), "{listen}");
    }
    for listen in ["0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464"] {
        let err = Settings::load_from(None, &env(&[("KUZET_METRICS__LISTEN", listen)])).unwrap_err();
        assert!(err.to_string().contains("metrics.token"), "{listen}: {err}");
        let with_token = env(&[
            ("KUZET_METRICS__LISTEN", listen),
            ("KUZET_METRICS__TOKEN", "a-scrape-token-of-some-length"),
        ]);
        let s = Settings::load_from(None, &with_token).unwrap();
        assert_eq!(s.metrics.token(), Some("a-scrape-token-of-some-length"));
        assert!(!format!("{:?}", s.metrics).contains("a-scrape-token"), "the token is never printed");
    }
    let weak = env(&[("KUZET_METRICS__LISTEN", "0.0.0.0:9464"), ("KUZET_METRICS__TOKEN", "short")]);
    assert!(Settings::load_from(None, &weak).is_err(), "a token must be strong");
    assert!(Settings::load_from(None, &env(&[("KUZET_METRICS__LISTEN", "localhost")])).is_err());
    let half_tls = env(&[("KUZET_METRICS__TLS__CERT", "/etc/kuzet/metrics.crt")]);
    assert!(Settings::load_from(None, &half_tls).is_err(), "a certificate without its key");
}
