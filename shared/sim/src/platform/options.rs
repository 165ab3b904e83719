//! How the local platform and its cloud are set up.

use crate::{ClaimStrategy, CloudModel, Faults};

/// How the local platform and cloud are set up.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    pub model: CloudModel,
    pub seed: u64,
    /// Prepared instances in the pool at the start.
    pub pool: u32,
    /// The pool group's `MaxSize` (default: twice the pool plus ten).
    pub pool_max: Option<u32>,
    /// Prepared, stopped instances in the warm pool (`POOL_WARM_TIER` set) at the start.
    pub warm_pool: u32,
    /// The signup queue's visibility timeout (s).
    pub visibility_timeout_s: u64,
    /// Receives before a signup message goes to the dead-letter queue.
    pub max_receive_count: u32,
    /// Lambda asynchronous invocation retries of an EventBridge event, by delay (s).
    pub async_retry_delays_s: Vec<u64>,
    /// Configuration variables to override (name, value).
    pub overrides: Vec<(String, String)>,
    /// Faults injected into the functions' AWS calls.
    pub faults: Faults,
    /// Share of EventBridge events never delivered.
    pub drop_events: f64,
    /// Share of EventBridge events delivered twice.
    pub duplicate_events: f64,
    /// Extra delivery delay, uniform up to this many seconds (reorders events).
    pub event_jitter_s: u64,
    /// Extra delay of every `EC2 Instance Launch Successful` (s): the event after an
    /// attach or a launch arriving late.
    pub launch_event_delay_s: u64,
    /// The reconcile schedule (s); 0 turns the sweep off.
    pub reconcile_every_s: u64,
    /// The pool-sizer schedule (s); 0 (the default) keeps the pool static.
    pub pool_sizer_every_s: u64,
    /// Records per signup invocation (the event source mapping's `BatchSize`).
    pub signup_batch_size: usize,
    /// How signups claim pool instances (the product's rendezvous claim, or a
    /// comparison strategy injected into the cloud).
    pub claim_strategy: ClaimStrategy,
    /// Users who finished long ago, present from the start (`--live-users`).
    pub live_users: u32,
}

impl Default for PlatformOptions {
    fn default() -> Self {
        Self {
            model: CloudModel::default(),
            seed: 1,
            pool: 10,
            pool_max: None,
            warm_pool: 0,
            // As template.yaml's signup queue (a test holds them together).
            visibility_timeout_s: 90,
            max_receive_count: 10,
            async_retry_delays_s: vec![60, 120],
            overrides: Vec::new(),
            faults: Faults::default(),
            drop_events: 0.0,
            duplicate_events: 0.0,
            event_jitter_s: 0,
            launch_event_delay_s: 0,
            reconcile_every_s: 60,
            pool_sizer_every_s: 0,
            // As in template.yaml: one signup per invocation, so one record's crash does
            // not send the others back to the queue.
            signup_batch_size: 1,
            claim_strategy: ClaimStrategy::Rendezvous,
            live_users: 0,
        }
    }
}
