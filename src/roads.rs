//! The road network, from the `kuzet-roads` crate, under the path the rest of kuzet uses.

pub use kuzet_roads::*;
