//! Command status: SSM outcomes become a ready user, a failover, or a completed
//! pool lifecycle hook.
//!
//! - user-init, from the command-level `EC2 Command Status-change Notification` (its
//!   `parameters` carry the `UserId`, which names the user's group) and from the
//!   per-instance `EC2 Command Invocation Status-change Notification` (the instance's
//!   group names the user): two independent notifications of one outcome, so one lost
//!   event costs nothing; the command id recorded in the user's record tells a current
//!   outcome from a stale or repeated one.
//! - pool-prep, from the per-instance `EC2 Command Invocation Status-change
//!   Notification`: its `instance-id` is what `CompleteLifecycleAction` needs.

use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use super::acquire::{Acquired, acquire, retire};
use super::signup::resume_message;
use super::{InstanceOwner, load_user, owner_of_instance, write_tags};
use crate::Config;
use crate::domain::{Id, Path, ReadyMessage, UserRecord, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::events::{CommandInvocation, CommandOutcome, CommandStatus, SsmEvent};
use crate::metrics::Metric;
use crate::ports::{Cloud, Group, LifecycleResult};

/// What the command-status function did with an event (the function's response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StatusOutcome {
    Ready {
        instance_id: String,
    },
    FailedOver {
        attempt: u32,
        acquired: Acquired,
    },
    /// The failed instance is retired and the user is `claiming` again: a `resume`
    /// message hands the claim to the signup function.
    FailoverQueued {
        attempt: u32,
    },
    Failed {
        reason: String,
    },
    HookCompleted {
        result: LifecycleResult,
    },
    Ignored {
        reason: &'static str,
    },
}

pub async fn handle_event<C: Cloud>(cloud: &C, cfg: &Config, event: &SsmEvent) -> Result<StatusOutcome, FlowError> {
    let outcome = match event {
        SsmEvent::Command(c) if c.document_name == cfg.user_init_document => {
            let span = info_span!("init_status", command_id = %c.command_id, status = %c.status);
            init_status(cloud, cfg, c).instrument(span).await
        }
        SsmEvent::Invocation(i) if i.document_name == cfg.user_init_document => {
            let span =
                info_span!("init_status", command_id = %i.command_id, instance_id = %i.instance_id, status = %i.status);
            init_invocation_status(cloud, cfg, i).instrument(span).await
        }
        SsmEvent::Invocation(i) if i.document_name == cfg.pool_prep_document => {
            let span =
                info_span!("prep_status", command_id = %i.command_id, instance_id = %i.instance_id, status = %i.status);
            prep_status(cloud, cfg, i).instrument(span).await
        }
        SsmEvent::Command(_) | SsmEvent::Invocation(_) => {
            Ok(StatusOutcome::Ignored { reason: "not a status this function acts on" })
        }
        SsmEvent::Other(_) => Ok(StatusOutcome::Ignored { reason: "other detail type" }),
    }?;
    if let StatusOutcome::Ignored { reason: why } = &outcome {
        info!(reason = why, "event ignored");
    }
    Ok(outcome)
}

async fn prep_status<C: Cloud>(cloud: &C, cfg: &Config, i: &CommandInvocation) -> Result<StatusOutcome, FlowError> {
    let result = match CommandOutcome::from_status(&i.status) {
        CommandOutcome::Pending => return Ok(StatusOutcome::Ignored { reason: "status is not final" }),
        CommandOutcome::Success => LifecycleResult::Continue,
        CommandOutcome::Failure => LifecycleResult::Abandon,
    };
    match cloud.complete_lifecycle_action(&cfg.pool_group, &cfg.pool_hook, &i.instance_id, result).await {
        Ok(()) => {
            info!(instance_id = %i.instance_id, result = result.as_str(), "pool lifecycle action completed");
            Ok(StatusOutcome::HookCompleted { result })
        }
        Err(CloudError::NoActiveLifecycleAction { .. }) => {
            Ok(StatusOutcome::Ignored { reason: "lifecycle action already completed" })
        }
        Err(e) => Err(e.into()),
    }
}

async fn init_status<C: Cloud>(cloud: &C, cfg: &Config, c: &CommandStatus) -> Result<StatusOutcome, FlowError> {
    if CommandOutcome::from_status(&c.status) == CommandOutcome::Pending {
        return Ok(StatusOutcome::Ignored { reason: "status is not final" });
    }
    let raw_user = c
        .parameters
        .get("UserId")
        .and_then(|v| v.first())
        .ok_or_else(|| FlowError::InvalidInput(format!("command {} has no UserId parameter", c.command_id)))?;
    let user_id = Id::parse("UserId parameter", raw_user)?;
    apply_init_outcome(cloud, cfg, &user_id, &c.command_id, &c.status, ThenAcquire::ViaSignupQueue).await
}

/// How long the per-instance status event waits before it acts (see
/// `init_invocation_status`).
const BACKUP_STATUS_DELAY_MS: u64 = 2_000;

/// The same outcome from the per-instance event, a second notification SSM sends
/// independently of the command-level one: a user whose command-level event is lost is
/// still made ready (or failed over) at once instead of waiting for the sweep. The
/// event names no user, so the instance's group does.
async fn init_invocation_status<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    i: &CommandInvocation,
) -> Result<StatusOutcome, FlowError> {
    if CommandOutcome::from_status(&i.status) == CommandOutcome::Pending {
        return Ok(StatusOutcome::Ignored { reason: "status is not final" });
    }
    // The backup of the two: both usually arrive within a second, and the first one's
    // steps (message, state, claim) take a few hundred milliseconds. Acting a moment
    // later finds them done in one read, instead of racing them (a second metric, a
    // second tag write).
    cloud.sleep_ms(BACKUP_STATUS_DELAY_MS).await;
    let user_id = match owner_of_instance(cloud, cfg, &i.instance_id).await? {
        InstanceOwner::User(user_id) => user_id,
        InstanceOwner::NoGroup => {
            return Ok(StatusOutcome::Ignored {
                reason: "instance is in no group (the other status event was handled)",
            });
        }
        InstanceOwner::NotAUser => return Ok(StatusOutcome::Ignored { reason: "instance is not in a user group" }),
    };
    apply_init_outcome(cloud, cfg, &user_id, &i.command_id, &i.status, ThenAcquire::ViaSignupQueue).await
}

/// Where a failover gets the user's next instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThenAcquire {
    /// Here, in this invocation (the signup function, resuming a failover).
    Here,
    /// In the signup function: a `resume` message, so the claim, the detach and the
    /// attach run with the signup queue's quick retries, not in this invocation (a
    /// command-status event's retries come a minute or two apart).
    ViaSignupQueue,
}

/// Applies the final `status` of the user-init command `command_id` to the user:
/// `Success` makes the user ready; a failure fails over to another instance (or, past
/// the attempts, fails the user). Reads the user's record first, so an outcome for a
/// command that is no longer the user's current one (stale, duplicated, already
/// handled) changes nothing. Both status events and the reconcile re-drive (for an
/// outcome whose events were lost) come here.
pub async fn apply_init_outcome<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &Id,
    command_id: &str,
    status: &str,
    then: ThenAcquire,
) -> Result<StatusOutcome, FlowError> {
    let outcome = CommandOutcome::from_status(status);
    if outcome == CommandOutcome::Pending {
        return Ok(StatusOutcome::Ignored { reason: "status is not final" });
    }
    let Some((group, record)) = load_user(cloud, cfg, user_id.as_str()).await? else {
        return Ok(StatusOutcome::Ignored { reason: "user group no longer exists" });
    };
    apply_to_record(cloud, cfg, group, record, command_id, status, then).await
}

/// [`apply_init_outcome`] on a record the caller holds: read just now, or just written
/// by the caller itself (a run that records an init an earlier run sent, and finds it
/// ended). Group tags lag their writes, so a read right after that write may still show
/// the previous command, and the outcome would be dropped until the sweep finds it.
pub(crate) async fn apply_to_record<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: Group,
    record: UserRecord,
    command_id: &str,
    status: &str,
    then: ThenAcquire,
) -> Result<StatusOutcome, FlowError> {
    let outcome = CommandOutcome::from_status(status);
    if record.command_id.as_deref() != Some(command_id) {
        return Ok(StatusOutcome::Ignored { reason: "not the user's current command" });
    }
    if record.state == UserState::Initializing && record.command_instance != record.instance {
        // The command went to an instance the user has since left: a failover already
        // handled its outcome (EventBridge delivers at least once, so this is a repeat),
        // and acting on it again would retire the healthy replacement.
        return Ok(StatusOutcome::Ignored { reason: "outcome of an instance the user has been moved off" });
    }
    match (record.state, outcome) {
        (UserState::Initializing, CommandOutcome::Success) => ready(cloud, cfg, &group, &record).await,
        // A failover that an earlier run started (the state says claiming but the
        // command is still this one) is resumed, not started again.
        (UserState::Initializing | UserState::Claiming, CommandOutcome::Failure) => {
            let why = format!("init on {} ended {status}", record.instance.as_deref().unwrap_or("unknown instance"));
            failover(cloud, cfg, group, record, &why, then).await
        }
        _ => Ok(StatusOutcome::Ignored { reason: "outcome already handled" }),
    }
}

/// Resumes a failover that stopped half-way: the user is `claiming` again but still
/// records the failed command `command_id` (a crash after the failover began).
pub async fn resume_failover<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &Id,
    command_id: &str,
) -> Result<StatusOutcome, FlowError> {
    apply_init_outcome(cloud, cfg, user_id, command_id, "Failed", ThenAcquire::Here).await
}

async fn ready<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
) -> Result<StatusOutcome, FlowError> {
    let instance_id = record.instance.clone().ok_or_else(|| FlowError::Inconsistent {
        user_id: record.user_id.clone(),
        message: "init succeeded but no instance is recorded".into(),
    })?;
    let now = cloud.now_ms();
    let message = ReadyMessage {
        user_id: record.user_id.clone(),
        signup_id: record.signup_id.clone(),
        instance_id: instance_id.clone(),
        path: record.path,
        attempts: record.attempt,
        ready_after_s: now.saturating_sub(record.requested_at_ms) as f64 / 1000.0,
        replaced_instance_id: record.replaced.clone(),
    };
    let body = serde_json::to_string(&message)
        .map_err(|e| FlowError::InvalidInput(format!("ready message cannot be encoded: {e}")))?;
    // Message first, then state: a crash in between repeats the message (consumers
    // de-duplicate on user_id and instance_id) instead of losing it.
    let command_id = record.command_id.as_deref().unwrap_or_default();
    cloud.send_ready(&cfg.ready_queue_url, &record.user_id, &format!("{}-{command_id}", record.user_id), &body).await?;
    if record.replaced.is_none() {
        // (A replaced host's time is not a signup's.)
        cloud.record(Metric::TimeToReady { seconds: message.ready_after_s, path: record.path });
    }
    write_tags(cloud, &group.name, &[(tag::STATE, UserState::Ready.as_str().into()), (tag::READY_AT, now.to_string())])
        .await?;
    // The claim and init lock go: kept, they would lengthen every claim listing by a page
    // per ten ready users until housekeeping. A run that read the record just before this
    // write and finds the instance in the group asks SSM before it sends (`finish_warm`).
    if let Err(e) = cloud.release(&instance_id).await {
        warn!(instance_id, error = %e, "could not delete the claim of a ready instance; housekeeping will");
    }
    info!(user_id = %record.user_id, instance_id, path = record.path.as_str(), attempts = record.attempt,
        ready_after_s = message.ready_after_s, "user ready");
    Ok(StatusOutcome::Ready { instance_id })
}

/// Retires the instance whose init failed (terminated, never returned to the pool) and
/// gets the user another one: warm while attempts allow, then cold; `failed` after
/// `MAX_ATTEMPTS`.
pub(crate) async fn failover<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: Group,
    mut record: UserRecord,
    why: &str,
    then: ThenAcquire,
) -> Result<StatusOutcome, FlowError> {
    let bad_instance = record.instance.clone();
    // This run takes the user off the failed init (others resume it: the init's second
    // status event, a retry): only it counts a give-up, so one user is counted once.
    let takes_the_failure = record.state == UserState::Initializing;
    if takes_the_failure {
        if record.path == Path::Cold {
            record.cold_attempts += 1;
        }
        record.attempt += 1;
        record.state = UserState::Claiming;
        // Each attempt chooses its path afresh: a user whose cold instance failed is
        // served from the pool if it has used fewer than WARM_ATTEMPTS pool instances
        // (the pool has often refilled by then), instead of waiting for another cold
        // launch.
        record.path = if record.warm_allowed(cfg.warm_attempts) { Path::Warm } else { Path::Cold };
        let reason = why.to_owned();
        warn!(user_id = %record.user_id, instance_id = ?bad_instance, attempt = record.attempt, reason, "failing over");
        cloud.record(Metric::Failover);
        write_tags(
            cloud,
            &group.name,
            &[
                (tag::STATE, UserState::Claiming.as_str().into()),
                (tag::ATTEMPT, record.attempt.to_string()),
                (tag::COLD_ATTEMPTS, record.cold_attempts.to_string()),
                (tag::PATH, record.path.as_str().into()),
                (tag::REASON, reason),
            ],
        )
        .await?;
    }
    if let Some(bad) = bad_instance.as_deref() {
        retire(cloud, bad).await?;
        cloud.release(bad).await?;
    }
    if record.attempt > cfg.max_attempts {
        let reason = format!("no attempt succeeded in {} attempts (last: {why}); giving up", cfg.max_attempts);
        write_tags(
            cloud,
            &group.name,
            &[(tag::STATE, UserState::Failed.as_str().into()), (tag::REASON, reason.clone())],
        )
        .await?;
        warn!(user_id = %record.user_id, reason, "user failed");
        if takes_the_failure {
            cloud.record(Metric::UserFailed);
        }
        return Ok(StatusOutcome::Failed { reason });
    }
    if then == ThenAcquire::ViaSignupQueue {
        // One per attempt: a repeat of this step within five minutes is deduplicated.
        let user_id = Id::parse("user id tag", &record.user_id)?;
        let message =
            resume_message(&user_id, record.attempt, format!("failover-{}-{}", record.user_id, record.attempt))?;
        cloud.send_batch(&cfg.signup_queue_url, std::slice::from_ref(&message)).await?;
        info!(user_id = %record.user_id, attempt = record.attempt, "failover handed to the signup function");
        return Ok(StatusOutcome::FailoverQueued { attempt: record.attempt });
    }
    // Look again: the terminated instance must show as leaving.
    let group = cloud.describe_group(&group.name).await?.ok_or_else(|| FlowError::Inconsistent {
        user_id: record.user_id.clone(),
        message: "user group vanished during failover".into(),
    })?;
    let record = UserRecord::from_tags(&group.tags).unwrap_or(record);
    let acquired = acquire(cloud, cfg, &group, &record).await?;
    Ok(StatusOutcome::FailedOver { attempt: record.attempt, acquired })
}
