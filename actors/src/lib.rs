//! kuzet's domain: identifiers, geometry, the dispatch decisions and the actors that hold
//! the live state of buttons, units and incidents. No MQTT, database or HTTP in here:
//! adapters talk to the actors through messages, and the actors talk back through
//! [`outbound::Notify`].

pub mod dispatch;
pub mod geo;
pub mod ids;
pub mod index;
pub mod model;
