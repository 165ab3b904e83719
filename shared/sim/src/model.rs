//! The in-memory cloud's model: how long things take and how often they fail.

/// The simulated latencies and failure rates, each with where its number comes from.
/// The defaults reproduce the original report: a fresh instance needs about ten
/// minutes from launch to configured, so a warm user is ready in seconds and a cold one
/// in about ten simulated minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudModel {
    /// One AWS API call, uniform in this range (ms). Regional control-plane calls
    /// answer in tens to a few hundred milliseconds.
    pub api_ms: (u64, u64),
    /// From a state change to EventBridge delivering it to a Lambda (ms). AWS describes
    /// delivery as typically within about half a second, best effort.
    pub event_delivery_ms: (u64, u64),
    /// From a launch to the instance entering the launch lifecycle hook
    /// (`Pending:Wait`) and the lifecycle action event (ms): Auto Scaling puts a
    /// launching instance into its hook within seconds.
    pub hook_entry_ms: (u64, u64),
    /// From `RunInstances` to the instance `running` (s): typical EC2 launch time.
    pub boot_s: (f64, f64),
    /// From `running` to the SSM agent registered and `Online` (s).
    pub agent_delay_s: f64,
    /// From `SendCommand` to the agent picking the command up (ms).
    pub command_delivery_ms: (u64, u64),
    /// The generic preparation (pool-prep, or the first part of user-init on a fresh
    /// instance): package installs and configuration, the bulk of the original ten
    /// minutes (s).
    pub prep_s: f64,
    /// The user-specific part of the setup (user-init on a prepared instance) (s).
    pub user_init_s: f64,
    /// A script's run time varies by this factor, uniform in the range.
    pub work_jitter: (f64, f64),
    /// A command's `executionTimeout` when its parameters give none (s): SSM's default
    /// for `aws:runShellScript`, one hour.
    pub default_execution_timeout_s: u64,
    /// How often a running command notices that its instance stopped (s): the agent
    /// dies with the instance, and SSM reports the command `Terminated`.
    pub command_check_s: u64,
    /// The share of user-init commands that fail.
    pub init_failure_rate: f64,
    /// The share of pool-prep commands that fail.
    pub prep_failure_rate: f64,
    /// The share of an Auto Scaling group's launch attempts that fail (EC2 capacity, an
    /// instance or vCPU quota, no free address in the subnet): the activity fails, `EC2
    /// Instance Launch Unsuccessful` is sent, and the group tries again on its next pass.
    pub launch_failure_rate: f64,
    /// The share of `SetDesiredCapacity` and `TerminateInstanceInAutoScalingGroup` calls
    /// on a group with a launch in progress that Auto Scaling answers
    /// `ScalingActivityInProgress` (AWS lists the error for both calls and publishes no
    /// rate: a knob, 0 by default).
    pub activity_in_progress_rate: f64,
    /// Auto Scaling groups the account may have in the Region (Service Quotas' default: 500);
    /// `CreateAutoScalingGroup` past it is `LimitExceeded`.
    pub group_quota: usize,
    /// How often the Auto Scaling group reconciles desired and actual capacity (s).
    pub scaling_interval_s: u64,
    /// From `DetachInstances` to the instance out of the group (s): the instance is
    /// `Detaching` meanwhile, still listed in the group and not attachable elsewhere. AWS
    /// detaches asynchronously, in seconds and sometimes tens of seconds.
    pub detach_s: (f64, f64),
    /// How long a `Describe*` read may keep answering with the state from before a
    /// mutation (ms), drawn per mutation, uniform in this range (see `cloud::lag`). The
    /// EC2 API documents eventual consistency and advises describing with backoff from
    /// "a couple of seconds"; Auto Scaling documents nothing, and is assumed the same.
    pub stale_read_ms: (u64, u64),
    /// Whether group tags lag their writes like the rest of a group's description. On
    /// by default: the user's record lives in its group's tags, and nothing AWS
    /// documents says a read sees the last tag write; the flow's steps that must not
    /// repeat are guarded by Parameter Store locks instead (see `docs/architecture.md`,
    /// "Eventual consistency"). Off, tags are read back at once (a lenient model, for
    /// comparison).
    pub stale_tags: bool,
    /// From terminate to `terminated` (s).
    pub shutdown_s: f64,
    /// The pool's launch lifecycle hook heartbeat timeout (s), after which its default
    /// result (ABANDON) applies.
    pub hook_timeout_s: u64,
    /// From starting a stopped warm pool instance to EC2 `running` (s). AWS reports a
    /// warmed instance in service some 30–90 s after the start; the SSM agent registers
    /// again `agent_delay_s` after it runs, and the pool's hook waits for it.
    pub start_s: (f64, f64),
    /// From the warm pool's hook completing to the instance `stopped` (s): EC2 stops an
    /// instance in tens of seconds (the model's assumption; AWS publishes no figure). EC2
    /// does not bill the stop (it does bill a hibernation, until it is done).
    pub stop_s: (f64, f64),
    /// The account's request-rate limits, a token bucket per service (see
    /// `cloud::rates` for the figures and their sources).
    pub api_limits: crate::cloud::rates::ApiLimits,
    /// From the end of a minute to its sum of an EMF metric readable with
    /// `GetMetricData` (s). CloudWatch Logs extracts metrics from log events
    /// asynchronously and publishes no figure; a minute or two is what operators see,
    /// and the model takes the longer.
    pub metric_delay_s: u64,
}

impl Default for CloudModel {
    fn default() -> Self {
        Self {
            api_ms: (30, 150),
            event_delivery_ms: (250, 900),
            hook_entry_ms: (1_000, 3_000),
            boot_s: (30.0, 60.0),
            agent_delay_s: 30.0,
            command_delivery_ms: (300, 1_200),
            prep_s: 480.0,
            user_init_s: 5.0,
            work_jitter: (0.9, 1.1),
            default_execution_timeout_s: 3_600,
            command_check_s: 5,
            init_failure_rate: 0.0,
            prep_failure_rate: 0.0,
            launch_failure_rate: 0.0,
            activity_in_progress_rate: 0.0,
            group_quota: 500,
            scaling_interval_s: 10,
            detach_s: (2.0, 15.0),
            stale_read_ms: (0, 2_000),
            stale_tags: true,
            shutdown_s: 30.0,
            hook_timeout_s: 1_800,
            start_s: (20.0, 60.0),
            stop_s: (20.0, 60.0),
            api_limits: crate::cloud::rates::ApiLimits::default(),
            metric_delay_s: 120,
        }
    }
}
