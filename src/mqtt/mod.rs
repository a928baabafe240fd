//! The MQTT adapter: the contract's topics and payloads, the gateway between the broker and
//! the actors, and kuzet's own broker (a supervised Mosquitto).

pub mod broker;
pub mod gateway;
pub mod limit;

// The contract's topics and payloads, where the gateway and the tools have always found them.
pub use kuzet_contract::{codec, topics};
