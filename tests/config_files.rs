//! The configuration shipped in config/ stays loadable and in step with the registry.

use std::path::Path;

use kuzet::settings::Settings;

#[test]
fn the_sample_registry_and_settings_files_load() {
    let devices =
        kuzet::registry_file::load(Path::new("config/registry.toml")).expect("sample registry loads");
    assert!(!devices.units.is_empty() && !devices.sites.is_empty());
    let with_password = kuzet::startup::device_credentials(&devices);
    assert!(
        with_password.is_empty(),
        "the shipped registry carries no usable password: {:?}",
        with_password.keys()
    );
    let prod = Settings::load_from(Some(Path::new("config/prod.toml")), &[]).expect("prod.toml loads");
    // The broker kuzet runs itself; docker-compose.yml sets its addresses.
    assert_eq!(prod.mqtt.url, "embedded");
}

#[test]
fn the_committed_mosquitto_acl_matches_the_registry() {
    let devices =
        kuzet::registry_file::load(Path::new("config/registry.toml")).expect("sample registry loads");
    let committed = std::fs::read_to_string("config/mosquitto/acl").expect("config/mosquitto/acl");
    assert_eq!(
        committed,
        kuzet::brokerfiles::acl(&devices, "kuzet"),
        "regenerate with: kuzet broker-files --registry config/registry.toml --out config/mosquitto"
    );
    // No password file ships: one generated from the sample registry would hold usable passwords.
    assert!(!Path::new("config/mosquitto/passwd").exists(), "config/mosquitto/passwd must not ship");
}

#[test]
fn a_registry_with_a_duplicate_id_is_refused() {
    let text = r#"
        [[units]]
        id = "u1"
        callsign = "A"
        [[units]]
        id = "u1"
        callsign = "B"
    "#;
    let err = kuzet::registry_file::parse(text).unwrap_err();
    assert!(format!("{err:#}").contains("u1 is used twice"), "{err:#}");
    assert!(kuzet::registry_file::parse("[[units]]\nid = \"Bad Id\"\ncallsign = \"x\"\n").is_err());
}

#[test]
fn a_simulated_city_round_trips_through_the_registry_format() {
    let plan = kuzet_tools::sim::CityPlan {
        centre: kuzet_actors::geo::GeoPoint::new(60.17, 24.94).unwrap(),
        radius_m: 5000.0,
        schools: 3,
        units: 5,
        seed: 9,
    };
    let city = kuzet_tools::sim::city(&plan);
    let text = kuzet::registry_file::to_toml(&city).expect("serializes");
    let back = kuzet::registry_file::parse(&text).expect("parses back");
    assert_eq!(back.units.len(), 5);
    assert_eq!(back.sites.len(), 3);
    assert_eq!(back.sites[2].buttons[1].id, city.sites[2].buttons[1].id);
    assert_eq!(back.sites[0].location, city.sites[0].location);
    assert_eq!(back.units[4].password, city.units[4].password);
}
