//! Typed errors: what the ports report, and what the flow reports to a handler.

use thiserror::Error;

/// An error from one AWS call, already classified into what the flow acts on.
///
/// The SDK adapters and the in-memory cloud both produce these, so the flow never
/// looks at an SDK type or an error string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloudError {
    /// The instance is not (or no longer) a member of the group: somebody else
    /// detached it, or it was terminated. For a detach this is the "lost the race" signal.
    #[error("instance {instance_id} is not part of Auto Scaling group {group}")]
    NotInGroup { group: String, instance_id: String },
    /// The instance is in the group but mid-transition (not `InService` or `Standby`).
    #[error("instance {instance_id} is not InService or Standby: {message}")]
    NotInService { instance_id: String, message: String },
    /// `AttachInstances` of an instance that is in an Auto Scaling group already. Which
    /// group, the message may not say: read the instance's membership to know.
    #[error("instance {instance_id} is already part of an Auto Scaling group: {message}")]
    AlreadyInGroup { instance_id: String, message: String },
    /// Attaching would take the group above its `MaxSize`.
    #[error("group {group} is at its MaxSize: {message}")]
    MaxSizeExceeded { group: String, message: String },
    /// A terminate with `ShouldDecrementDesiredCapacity` would take the group below its
    /// `MinSize`; AWS refuses rather than clamps. Terminating without the decrement works
    /// (the group then launches a replacement).
    #[error("group {group} is at its MinSize: {message}")]
    BelowMinSize { group: String, message: String },
    /// Another scaling activity of the group is in progress; the same call may succeed later.
    #[error("{operation} found a scaling activity in progress; retry later")]
    ScalingActivityInProgress { operation: String },
    /// An account quota is reached (such as 500 Auto Scaling groups per region): retrying
    /// cannot help until the quota is raised or resources are freed.
    #[error("{operation} hit an account quota: {message}; raise the quota or free resources")]
    LimitExceeded { operation: String, message: String },
    /// The resource exists already (`CreateAutoScalingGroup` `AlreadyExists`,
    /// `PutParameter` `ParameterAlreadyExists`).
    #[error("{resource} already exists")]
    AlreadyExists { resource: String },
    /// The named resource does not exist.
    #[error("{resource} was not found")]
    NotFound { resource: String },
    /// `SendCommand` `InvalidInstanceId`: the SSM agent is not registered yet, or the
    /// instance is stopping or gone.
    #[error("SSM cannot reach instance {instance_id} (agent not registered, or instance not running)")]
    AgentNotReady { instance_id: String },
    /// `GetCommandInvocation` right after `SendCommand` (eventual consistency): retry.
    #[error("command invocation {command_id} on {instance_id} does not exist yet")]
    InvocationDoesNotExist { command_id: String, instance_id: String },
    /// `CompleteLifecycleAction` for an instance that has no pending lifecycle action
    /// (already completed, or timed out).
    #[error("no active lifecycle action for instance {instance_id}")]
    NoActiveLifecycleAction { instance_id: String },
    /// AWS asked us to slow down; retry with backoff.
    #[error("{operation} was throttled; retry with backoff")]
    Throttled { operation: String },
    /// AWS rejected the request as invalid for a reason the flow does not act on.
    #[error("{operation} was rejected: {message}")]
    Invalid { operation: String, message: String },
    /// Transport errors, 5xx, timeouts: worth a retry.
    #[error("{operation} failed transiently: {message}")]
    Transient { operation: String, message: String },
}

impl CloudError {
    /// Whether the same call may succeed if made again later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. }
                | Self::Transient { .. }
                | Self::ScalingActivityInProgress { .. }
                | Self::AgentNotReady { .. }
                | Self::InvocationDoesNotExist { .. }
        )
    }
}

/// The outcome a handler reports for one unit of work (an SQS record or an event).
#[derive(Debug, Error)]
pub enum FlowError {
    /// The input is malformed or fails validation. Retrying it cannot help: a message ends
    /// in its queue's dead-letter queue, an event (after Lambda's two retries) in the
    /// re-drive queue, the functions' on-failure destination.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An AWS call failed; see [`CloudError::is_retryable`].
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The flow cannot make progress yet (agent not online within the wait budget, pool
    /// contention); the platform's retry (SQS redelivery, Lambda async retry) will resume it.
    #[error("not ready to proceed: {0}")]
    NotYet(String),
    /// Stored state on the user's group is inconsistent in a way the flow cannot repair.
    #[error("inconsistent state for user {user_id}: {message}")]
    Inconsistent { user_id: String, message: String },
}

impl FlowError {
    /// A stable name for dashboards and for the Lambda error type.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "InvalidInput",
            Self::Cloud(e) if e.is_retryable() => "Retryable",
            Self::Cloud(_) | Self::Inconsistent { .. } => "NonRetryable",
            Self::NotYet(_) => "Retryable",
        }
    }
}
