//! kuzet: real-time alerting and dispatch. This crate holds the adapters (MQTT, settings,
//! the simulated city) and the wiring; the domain lives in `kuzet-actors`.

pub use kuzet_contract as contract;
pub use kuzet_contract::text;

pub mod auth;
pub mod bench;
pub mod bench_reconnect;
pub mod bench_vision;
pub mod brokerfiles;
pub mod credentials;
pub mod devices;
pub mod http;
pub mod live;
pub mod metrics;
pub mod mosquitto;
pub mod mqtt;
pub mod roads;
pub mod settings;
pub mod sim;
pub mod sim_cameras;
pub mod startup;
pub mod store;
pub mod vision;
