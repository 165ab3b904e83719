//! warmpool-sim: the product without an AWS account.
//!
//! - [`SimCloud`]: the in-memory cloud (Auto Scaling, EC2, SSM Run Command, Parameter
//!   Store, SQS, the EventBridge bus), modelled after the AWS behaviour the design rests
//!   on, on a simulated clock (tokio's paused time: a ten-minute launch costs no real
//!   time). What it models, and where the numbers come from, is in [`CloudModel`] and in
//!   `docs/architecture.md`. What the cloud *really* holds (its ground truth) is read
//!   with [`SimCloud::snapshot`], never through the functions' beliefs.
//! - [`platform`]: a local stand-in for the Lambda platform (the SQS event source
//!   mapping, the EventBridge rules, asynchronous retries, the schedules) that drives
//!   the functions' real handlers on the cloud.
//! - [`demo`] and [`simulate`]: runs on that platform (a burst of signups, or a
//!   workload over simulated hours), and [`report`], what a run ended with.
//! - [`first_healthy`]: the original design's claim strategy, injected into the cloud
//!   to measure the product against; the product itself has no such option.

mod cloud;
pub mod compare;
pub mod demo;
pub mod first_healthy;
mod invocation;
mod model;
pub mod platform;
mod pricing;
mod queue;
pub mod report;
mod rules;
pub mod simulate;
mod waits;

pub use cloud::access::{self, Access};
pub use cloud::rates::{self, ApiLimits, ApiUsage, Bucket, Service};
pub use cloud::{
    BusEvent, CallPoint, ClaimStrategy, DetachStats, GroupSize, REDRIVE_MAX_RECEIVE, REDRIVE_QUEUE,
    REDRIVE_VISIBILITY_S, SIGNUP_QUEUE, SimCloud, Snapshot, TimelineEntry, format_time, is_mutating, java_pattern,
};
pub use invocation::{FaultKind, Faults, invoke, timeout_s};
pub use model::CloudModel;
pub use queue::{Received, SimQueue};
pub use waits::{Breakdown, Wait};

/// The deployment names the simulator uses: the same variables `template.yaml` sets,
/// with the values the sample events in `events/` carry.
pub mod fixture {
    use std::collections::BTreeMap;

    use warmpool_core::{Config, Function};

    use super::{CloudModel, SimCloud};

    pub const POOL_GROUP: &str = "warmpool-pool";
    pub const POOL_HOOK: &str = "warmpool-pool-launch";
    pub const USER_INIT_DOCUMENT: &str = "warmpool-user-init";
    pub const POOL_PREP_DOCUMENT: &str = "warmpool-pool-prep";
    pub const LAUNCH_TEMPLATE: &str = "lt-0123456789abcdef0";
    pub const READY_QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/warmpool-ready";
    pub const SIGNUP_QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/warmpool-signup.fifo";
    pub const REDRIVE_QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/warmpool-redrive";
    pub const SIGNUP_DLQ_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/warmpool-signup-dlq.fifo";
    /// The re-drive queue's and the ready queue's dead-letter queues: the model keeps
    /// each queue's dead letters with it, and answers their depth by these URLs.
    pub const REDRIVE_DLQ_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/warmpool-redrive-dlq";
    pub const READY_DLQ_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/warmpool-ready-dlq.fifo";

    /// The environment a function gets, as `template.yaml` would set it.
    #[must_use]
    pub fn environment(subnets: &[String]) -> BTreeMap<String, String> {
        [
            ("POOL_ASG_NAME", POOL_GROUP.to_owned()),
            ("POOL_LIFECYCLE_HOOK_NAME", POOL_HOOK.to_owned()),
            ("USER_ASG_PREFIX", "warmpool-user-".to_owned()),
            ("LAUNCH_TEMPLATE_ID", LAUNCH_TEMPLATE.to_owned()),
            ("POOL_SUBNETS", subnets.join(",")),
            ("USER_INIT_DOCUMENT", USER_INIT_DOCUMENT.to_owned()),
            ("POOL_PREP_DOCUMENT", POOL_PREP_DOCUMENT.to_owned()),
            ("READY_QUEUE_URL", READY_QUEUE_URL.to_owned()),
            ("SIGNUP_QUEUE_URL", SIGNUP_QUEUE_URL.to_owned()),
            ("SIGNUP_DLQ_URL", SIGNUP_DLQ_URL.to_owned()),
            ("REDRIVE_QUEUE_URL", REDRIVE_QUEUE_URL.to_owned()),
            ("CLAIM_PARAMETER_PREFIX", "/warmpool/claims".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The deployment an operator command sees: the stack outputs of the fixture.
    #[must_use]
    pub fn deployment(cfg: &Config) -> warmpool_core::operator::Deployment {
        warmpool_core::operator::Deployment {
            stack: "warmpool".into(),
            pool_group: cfg.pool_group.clone(),
            user_group_prefix: cfg.user_group_prefix.clone(),
            launch_template: cfg.launch_template.clone(),
            claim_prefix: cfg.claim_prefix.clone(),
            signup_queue_url: cfg.signup_queue_url.clone(),
            signup_dlq_url: cfg.signup_dlq_url.clone(),
            redrive_queue_url: cfg.redrive_queue_url.clone(),
            redrive_dlq_url: REDRIVE_DLQ_URL.into(),
            ready_queue_url: cfg.ready_queue_url.clone(),
            ready_dlq_url: READY_DLQ_URL.into(),
            stall_s: cfg.reconcile_stall_s,
            warm_pool_state: cfg.sizer.warm_tier.pool_state().map(str::to_owned),
        }
    }

    /// [`Config`] read from [`environment`] with `overrides` applied.
    ///
    /// # Panics
    /// If the overrides make the configuration invalid (a test's own mistake).
    #[must_use]
    pub fn config(subnets: &[String], overrides: &[(&str, String)]) -> Config {
        let mut env = environment(subnets);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), v.clone());
        }
        match Config::for_all(|k| env.get(k).cloned()) {
            Ok(c) => c,
            Err(e) => panic!("simulator configuration is invalid: {e}"),
        }
    }

    /// What `function` reads at its cold start from [`environment`] with `overrides`:
    /// its own variables only.
    ///
    /// # Panics
    /// If the overrides make the configuration invalid (a test's own mistake).
    #[must_use]
    pub fn function_config(function: Function, subnets: &[String], overrides: &[(&str, String)]) -> Config {
        let mut env = environment(subnets);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), v.clone());
        }
        match Config::for_function(function, |k| env.get(k).cloned()) {
            Ok(c) => c,
            Err(e) => panic!("simulator configuration of {} is invalid: {e}", function.name()),
        }
    }

    /// A cloud with a pool of `pool` prepared instances and the matching configuration,
    /// for handler tests. Call inside a tokio runtime (paused time recommended). The
    /// cloud's event bus is dropped: events go nowhere, the test invokes handlers itself.
    ///
    /// Handler tests drive one step right after another, with no time between, and check
    /// each step's outcome: here the user's record (group tags) reads back at once
    /// (`stale_tags` off), while the rest of the default model's lag stays on. The
    /// platform, the demo, the fault tests and the tests that build their own model run
    /// with tags lagging as well.
    #[must_use]
    pub fn cloud_with_pool(pool: u32) -> (SimCloud, Config) {
        cloud_with_pool_and_model(pool, CloudModel { stale_tags: false, ..CloudModel::default() })
    }

    /// [`cloud_with_pool`] on a latency model of the test's own.
    #[must_use]
    pub fn cloud_with_pool_and_model(pool: u32, model: CloudModel) -> (SimCloud, Config) {
        let (cloud, _bus) = SimCloud::new(model, 1, 90, 5);
        let cfg = config(&cloud.subnets(), &[]);
        cloud.create_pool(POOL_GROUP, POOL_HOOK, pool, pool * 2 + 10);
        (cloud, cfg)
    }
}
