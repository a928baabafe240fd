//! The MQTT adapter: the contract's topics and payloads, the gateway between the broker and
//! the actors, and kuzet's own broker (a supervised Mosquitto).

pub mod broker;
pub mod codec;
pub mod gateway;
pub mod limit;
pub mod topics;
