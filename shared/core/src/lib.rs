//! warmpool-core: hand every new user a ready, isolated EC2 host in seconds by moving a
//! pre-launched instance out of a warm pool Auto Scaling group into the user's own group.
//!
//! This crate is the product's logic and nothing else: no AWS SDK, no Lambda runtime,
//! no simulator (`cargo tree -p warmpool-core -e normal` shows it).
//! - [`domain`]: user ids, signup messages, the per-user record kept in ASG tags;
//! - [`events`]: the EventBridge detail types the functions parse;
//! - [`ports`]: the small traits through which the flow talks to AWS (implemented by
//!   `warmpool-aws` over the SDKs and by `warmpool-sim` in memory);
//! - [`flow`]: the signup, lifecycle, command-status, reconcile and pool-sizer steps;
//! - [`metrics`]: what the flow measures, in CloudWatch Embedded Metric Format;
//! - [`config`]: typed configuration from environment variables, one table of them;
//! - [`error`]: what the ports and the flow report.

pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod flow;
pub mod metrics;
pub mod operator;
pub mod ports;
pub mod retry;

pub use config::{Config, Function, SizerConfig, WarmTier};
pub use error::{CloudError, FlowError};
