//! kuzet's domain: identifiers, geometry, the dispatch decisions and the actors that hold
//! the live state of buttons, units and incidents. No MQTT, database or HTTP in here:
//! adapters talk to the actors through messages, and the actors talk back through
//! [`outbound::Notify`].

pub mod button;
pub mod camera;
pub mod directory;
pub mod dispatch;
pub mod fleet;
pub mod geo;
pub mod ids;
pub mod incident;
pub mod index;
pub mod model;
pub mod outbound;
pub mod refusal;
pub mod registry;
pub mod router;
pub mod snapshot;
pub mod spec;
pub mod subject;
pub mod travel;
pub mod unit;
pub mod wanted;
pub mod warning;
