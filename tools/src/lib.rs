//! kuzet's tools, built on kuzet's public API only: the demo (kuzet with its own broker and a
//! simulated city), the simulated city on its own against any broker, and the benchmarks.
//! The simulated devices (`sim`) are also what the integration tests connect as buttons,
//! tablets and cameras.

pub mod bench;
pub mod cli;
pub mod demo;
pub mod demo_cameras;
pub mod sim;
