//! kuzet: real-time alerting and dispatch. This crate holds the adapters (MQTT, HTTP, SQL,
//! cameras, settings) and the wiring; the domain lives in `kuzet-actors`, the demo, the
//! simulated city and the benchmarks in `kuzet-tools`.

pub use kuzet_contract as contract;
pub use kuzet_contract::text;

pub mod auth;
pub mod brokerfiles;
pub mod credentials;
pub mod feed;
pub mod http;
pub mod lanes;
pub mod metrics;
pub mod mosquitto;
pub mod mqtt;
pub mod registry_file;
pub mod roads;
pub mod settings;
pub mod startup;
pub mod store;
pub mod vision;
