//! The warmpool command line's library: the local Lambda platform that drives the
//! three real handlers on the in-memory cloud ([`platform`]), and the demo built on it
//! ([`demo`]). The end-to-end tests use the same platform.

pub mod demo;
pub mod platform;
pub mod report;
