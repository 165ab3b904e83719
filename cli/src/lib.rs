//! The warmpool command line's library: the local Lambda platform that drives the real
//! handlers on the in-memory cloud ([`platform`]), the demo built on it ([`demo`]), and
//! the simulator of workloads and pool policies ([`simulate`], [`simulate_cmd`],
//! [`plot`]). The end-to-end tests use the same platform.

pub mod demo;
pub mod platform;
pub mod plot;
pub mod report;
pub mod simulate;
pub mod simulate_cmd;
