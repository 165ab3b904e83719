//! warmpool: hand every new user a ready, isolated EC2 host in seconds by moving a
//! pre-launched instance out of a warm pool Auto Scaling group into the user's own group.
//!
//! The crate holds everything but the Lambda entry points:
//! - [`domain`]: user ids, signup messages, the per-user record kept in ASG tags;
//! - [`events`]: the EventBridge detail types the functions parse;
//! - [`ports`]: the small traits through which the flow talks to AWS;
//! - [`flow`]: the signup, lifecycle and command-status steps;
//! - [`aws`]: the SDK adapters behind the ports;
//! - [`sim`] (feature `sim`): an in-memory cloud with a simulated clock;
//! - [`metrics`]: what the flow measures, in CloudWatch Embedded Metric Format;
//! - [`config`]: typed configuration from environment variables.

pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod flow;
pub mod metrics;
pub mod ports;
#[cfg(feature = "sim")]
pub mod sim;

pub use config::{ClaimStrategy, Config, SizerConfig};
pub use error::{CloudError, FlowError};
