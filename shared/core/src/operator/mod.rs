//! What an operator asks of a deployed stack (`warmpool status`, `signup`, `delete`,
//! `drain`, `resume`, `replay-dlq`),
//! through the same ports the functions use: the CLI runs these over the SDK adapters,
//! the tests over the in-memory cloud and moto.
//!
//! The deployment's names come from its CloudFormation outputs ([`Deployment`]); the
//! operator's own credentials make the calls, so nothing here needs a function's role.

mod dlq;
mod drain;
mod status;

use std::collections::BTreeMap;

use serde::Serialize;

pub use dlq::{DeadLetterQueue, DeadLetters, dead_letter_queues, look, redrive};
pub use drain::{DrainReport, ResumeReport, SavedSizes, drain, resume};
pub use status::{PoolStatus, QueueStatus, StalledUser, Status, UserCounts, status};

use crate::domain::{Id, UserRecord, UserState};
use crate::error::{CloudError, FlowError};
use crate::ports::{Cloud, QueuedMessage};

/// A deployed stack, as its outputs name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub stack: String,
    pub pool_group: String,
    pub user_group_prefix: String,
    pub launch_template: String,
    pub claim_prefix: String,
    pub signup_queue_url: String,
    pub signup_dlq_url: String,
    pub redrive_queue_url: String,
    pub redrive_dlq_url: String,
    pub ready_queue_url: String,
    pub ready_dlq_url: String,
    /// `ReconcileStallSeconds`: a user in flight unchanged for longer is stalled.
    pub stall_s: u32,
    /// The warm pool's `PoolState` (`Stopped`, `Hibernated`) from `PoolWarmTier`, when the
    /// stack has a warm tier.
    pub warm_pool_state: Option<String>,
}

/// The stack outputs a [`Deployment`] is read from, with the function variable each one
/// carries (a test holds each output to that variable's value in the template).
pub const STACK_OUTPUTS: &[(&str, &str)] = &[
    ("PoolGroupName", "POOL_ASG_NAME"),
    ("UserGroupPrefix", "USER_ASG_PREFIX"),
    ("LaunchTemplateId", "LAUNCH_TEMPLATE_ID"),
    ("ClaimParameterPrefix", "CLAIM_PARAMETER_PREFIX"),
    ("SignupQueueUrl", "SIGNUP_QUEUE_URL"),
    ("SignupDeadLetterQueueUrl", "SIGNUP_DLQ_URL"),
    ("RedriveQueueUrl", "REDRIVE_QUEUE_URL"),
    ("RedriveDeadLetterQueueUrl", ""),
    ("ReadyQueueUrl", "READY_QUEUE_URL"),
    ("ReadyDeadLetterQueueUrl", ""),
];

/// The stack parameter the stall threshold is read from (`RECONCILE_STALL_S`).
pub const STALL_PARAMETER: &str = "ReconcileStallSeconds";

/// What went wrong in an operator command.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(
        "stack {stack} has no output {output}: is it a warmpool stack, deployed from this version's template.yaml? (sam deploy updates it)"
    )]
    MissingOutput { stack: String, output: &'static str },
    #[error("stack {stack}'s parameter {parameter} is {value:?}, not a number of seconds")]
    BadParameter { stack: String, parameter: &'static str, value: String },
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(
        "user {user_id} did not reach ready or failed within {waited_s} s (state {state}); it may still: run `warmpool status`"
    )]
    WaitTimedOut { user_id: String, waited_s: u64, state: String },
    #[error(
        "the pool {pool} is marked draining (no new claims), but moves of {instances:?} were still in flight after {waited_s} s; run `warmpool drain` again to go on waiting, or `warmpool status` to see the claims"
    )]
    MovesInFlight { pool: String, instances: Vec<String>, waited_s: u64 },
    #[error(
        "the pool {pool}'s drain mark is {value:?}, not sizes a drain saved; set the pool's sizes by hand and delete its tag warmpool:draining"
    )]
    BadMark { pool: String, value: String },
}

impl Deployment {
    /// From a stack's outputs and parameters (`DescribeStacks`).
    pub fn from_stack(
        stack: &str,
        outputs: &BTreeMap<String, String>,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, OperatorError> {
        let get = |output: &'static str| {
            outputs
                .get(output)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| OperatorError::MissingOutput { stack: stack.to_owned(), output })
        };
        let raw_stall = parameters.get(STALL_PARAMETER).cloned().unwrap_or_else(|| "120".into());
        let stall_s = raw_stall.parse().map_err(|_| OperatorError::BadParameter {
            stack: stack.to_owned(),
            parameter: STALL_PARAMETER,
            value: raw_stall.clone(),
        })?;
        Ok(Self {
            stack: stack.to_owned(),
            pool_group: get("PoolGroupName")?,
            user_group_prefix: get("UserGroupPrefix")?,
            launch_template: get("LaunchTemplateId")?,
            claim_prefix: get("ClaimParameterPrefix")?.trim_end_matches('/').to_owned(),
            signup_queue_url: get("SignupQueueUrl")?,
            signup_dlq_url: get("SignupDeadLetterQueueUrl")?,
            redrive_queue_url: get("RedriveQueueUrl")?,
            redrive_dlq_url: get("RedriveDeadLetterQueueUrl")?,
            ready_queue_url: get("ReadyQueueUrl")?,
            ready_dlq_url: get("ReadyDeadLetterQueueUrl")?,
            stall_s,
            warm_pool_state: parameters
                .get("PoolWarmTier")
                .and_then(|v| crate::WarmTier::parse(v))
                .and_then(crate::WarmTier::pool_state)
                .filter(|_| parameters.get("PoolSizing").is_none_or(|s| s == "adaptive"))
                .map(str::to_owned),
        })
    }

    /// The group of a user.
    #[must_use]
    pub fn user_group(&self, user_id: &str) -> String {
        format!("{}{user_id}", self.user_group_prefix)
    }
}

/// The deployment's pool group; an error that says so when it does not exist.
async fn pool_group<C: Cloud>(cloud: &C, dep: &Deployment) -> Result<crate::ports::Group, OperatorError> {
    cloud.describe_group(&dep.pool_group).await?.ok_or_else(|| {
        OperatorError::Flow(FlowError::Inconsistent {
            user_id: String::new(),
            message: format!("the pool group {} does not exist: is stack {} deployed?", dep.pool_group, dep.stack),
        })
    })
}

/// A signup (or a delete) for the signup queue, as a producer must send it: the user's
/// message group, and a deduplication id that makes a repeat within SQS's five minutes
/// a no-op (after that the signup function's own idempotency holds: an existing user is
/// resumed, never made twice; a deleted user's delete finds nothing).
pub fn signup_message(kind: MessageKind, user_id: &str, signup_id: &str) -> Result<QueuedMessage, FlowError> {
    let user = Id::parse("user id", user_id)?;
    let signup = Id::parse("signup id", signup_id)?;
    let body = serde_json::json!({ "kind": kind.as_str(), "user_id": user.as_str(), "signup_id": signup.as_str() });
    Ok(QueuedMessage {
        group_id: Some(user.as_str().to_owned()),
        dedup_id: Some(format!("{}-{}-{}", kind.as_str(), user.as_str(), signup.as_str())),
        body: body.to_string(),
        delay_s: 0,
    })
}

/// A producer's message kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Signup,
    Delete,
}

impl MessageKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Delete => "delete",
        }
    }
}

/// Puts one signup or delete on the signup queue.
pub async fn send<C: Cloud>(
    cloud: &C,
    dep: &Deployment,
    kind: MessageKind,
    user_id: &str,
    signup_id: &str,
) -> Result<QueuedMessage, OperatorError> {
    let message = signup_message(kind, user_id, signup_id)?;
    cloud.send_batch(&dep.signup_queue_url, std::slice::from_ref(&message)).await?;
    Ok(message)
}

/// A user's way to ready (or failed), from the record on their group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub user_id: String,
    pub state: String,
    pub path: String,
    pub attempts: u32,
    pub instance_id: Option<String>,
    /// Signup to ready (s), once ready.
    pub time_to_ready_s: Option<f64>,
    pub reason: Option<String>,
    /// Each change the follower saw: seconds since the signup, and the state.
    pub seen: Vec<(f64, String)>,
}

/// Follows a user's record until ready or failed (a delete: until the group is gone),
/// looking every `poll_s`, for at most `deadline_s`.
pub async fn follow<C: Cloud>(
    cloud: &C,
    dep: &Deployment,
    kind: MessageKind,
    user_id: &str,
    poll_s: u64,
    deadline_s: u64,
) -> Result<Option<Timeline>, OperatorError> {
    let started = cloud.now_ms();
    let mut seen: Vec<(f64, String)> = Vec::new();
    let mut last: Option<UserRecord> = None;
    loop {
        let group = cloud.describe_group(&dep.user_group(user_id)).await?;
        let record = group.as_ref().and_then(|g| UserRecord::from_tags(&g.tags));
        if kind == MessageKind::Delete && group.is_none() {
            return Ok(None);
        }
        if let Some(r) = &record {
            let since_signup_s = cloud.now_ms().saturating_sub(r.requested_at_ms) as f64 / 1000.0;
            let label = format!("{} ({}, attempt {})", r.state.as_str(), r.path.as_str(), r.attempt);
            if seen.last().is_none_or(|(_, l)| *l != label) {
                seen.push((since_signup_s, label));
            }
            if kind == MessageKind::Signup && matches!(r.state, UserState::Ready | UserState::Failed) {
                return Ok(Some(timeline(r, seen)));
            }
        }
        last = record.or(last);
        let waited_s = cloud.now_ms().saturating_sub(started) / 1000;
        if waited_s >= deadline_s {
            return Err(OperatorError::WaitTimedOut {
                user_id: user_id.to_owned(),
                waited_s,
                state: last.map_or_else(|| "no group yet".to_owned(), |r| r.state.as_str().to_owned()),
            });
        }
        cloud.sleep_ms(poll_s * 1000).await;
    }
}

fn timeline(r: &UserRecord, seen: Vec<(f64, String)>) -> Timeline {
    Timeline {
        user_id: r.user_id.clone(),
        state: r.state.as_str().to_owned(),
        path: r.path.as_str().to_owned(),
        attempts: r.attempt,
        instance_id: r.instance.clone(),
        time_to_ready_s: r.ready_at_ms.map(|t| t.saturating_sub(r.requested_at_ms) as f64 / 1000.0),
        reason: r.reason.clone(),
        seen,
    }
}
