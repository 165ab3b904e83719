//! The warmpool command line's library: the demo's rendering ([`demo`]), the
//! `simulate` command ([`simulate_cmd`]) and its plot ([`plot`]); with the `aws` feature,
//! the commands against a deployed stack (`operate`). The runs themselves
//! (the local platform, the demo, the workload simulator) are in `warmpool-sim`.

pub mod args;
pub mod demo;
#[cfg(feature = "aws")]
pub mod operate;
pub mod plot;
pub mod simulate_cmd;
