//! The MQTT adapter: the contract's topics and payloads, the gateway between the broker and
//! the actors, and the embedded broker.

pub mod broker;
pub mod codec;
pub mod gateway;
pub mod limit;
pub mod topics;
