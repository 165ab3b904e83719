//! Signup: a message from the signup queue becomes a user group with an instance.

use std::collections::BTreeMap;

use futures::future::join_all;
use tracing::{Instrument, error, info, info_span, warn};

use super::acquire::{Acquired, acquire, finish_cold};
use super::command_status::{self, StatusOutcome};
use super::{load_user, load_user_showing};
use crate::Config;
use crate::domain::{Id, SignupMessage, UserRecord, UserState};
use crate::error::{CloudError, FlowError};
use crate::metrics::Metric;
use crate::ports::{Cloud, Group, QueuedMessage, UserGroupSpec};

/// What one signup message achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignupOutcome {
    Acquired(Acquired),
    /// The user is past claiming already (a duplicate or redelivered message).
    AlreadyInProgress(UserState),
    Deleted,
    /// A delete for a user with no group.
    NothingToDelete,
    /// A resume for a user with no group.
    NothingToResume,
    /// A resume finished a failover a dead invocation had begun.
    FailoverResumed(StatusOutcome),
    /// The message was rejected and moved to the dead-letter queue.
    DeadLettered {
        reason: String,
    },
}

/// One SQS record, as the flow needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    pub message_id: String,
    /// FIFO `MessageGroupId` (the user id); `None` on a standard queue.
    pub group_id: Option<String>,
    pub body: String,
    /// `SentTimestamp`, milliseconds since the epoch: when the user signed up.
    pub sent_at_ms: Option<u64>,
    /// The queue's URL and the receipt handle, to bring the message back sooner if
    /// this invocation fails or dies.
    pub receipt: Option<(String, String)>,
    /// `ApproximateReceiveCount`: above 1, an earlier run most likely created the group.
    pub receive_count: u32,
}

/// Processes a batch and returns the message ids that failed (to be retried, and after
/// the queue's `maxReceiveCount`, dead-lettered).
///
/// Records of different message groups run concurrently. Within a group they run in
/// order, and after a failure the rest of that group is reported failed unprocessed, as
/// FIFO ordering requires. A malformed record fails alone and never fails the batch.
pub async fn handle_batch<C: Cloud>(cloud: &C, cfg: &Config, records: Vec<QueueRecord>) -> Vec<String> {
    let mut groups: BTreeMap<Option<String>, Vec<QueueRecord>> = BTreeMap::new();
    let mut singles = Vec::new();
    for r in records {
        match &r.group_id {
            Some(_) => groups.entry(r.group_id.clone()).or_default().push(r),
            None => singles.push(vec![r]),
        }
    }
    let lanes = groups.into_values().chain(singles);
    let failed = join_all(lanes.map(|lane| async move {
        let mut failed = Vec::new();
        let mut blocked = false;
        for r in lane {
            if blocked {
                failed.push(r.message_id);
                continue;
            }
            let span = info_span!("signup_record", message_id = %r.message_id);
            if handle_record(cloud, cfg, &r).instrument(span).await.is_err() {
                blocked = true;
                failed.push(r.message_id);
            }
        }
        failed
    }))
    .await;
    failed.into_iter().flatten().collect()
}

async fn handle_record<C: Cloud>(cloud: &C, cfg: &Config, r: &QueueRecord) -> Result<SignupOutcome, FlowError> {
    let retry = Retry { died_s: cfg.signup_retry_s, failed_s: Some(FAILED_RETRY_S) };
    let result = consume(cloud, r, retry, "signup message", async {
        let msg = SignupMessage::parse(&r.body)?;
        handle(cloud, cfg, &msg, r.sent_at_ms, r.receive_count > 1).await
    })
    .await;
    match result {
        Err(FlowError::InvalidInput(reason)) => dead_letter(cloud, cfg, r, reason).await,
        other => other,
    }
}

/// A message no retry can make valid goes to the dead-letter queue at once (and is then
/// deleted, as processed), rather than come back to `maxReceiveCount` while it holds up
/// the rest of its FIFO message group. If even that send fails, the message fails as
/// before and reaches the dead-letter queue through its retries.
async fn dead_letter<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    r: &QueueRecord,
    reason: String,
) -> Result<SignupOutcome, FlowError> {
    let message = QueuedMessage {
        group_id: Some(r.group_id.clone().unwrap_or_else(|| "rejected".to_owned())),
        dedup_id: Some(r.message_id.chars().filter(char::is_ascii_alphanumeric).take(128).collect()),
        body: r.body.clone(),
        delay_s: 0,
    };
    match cloud.send_batch(&cfg.signup_dlq_url, std::slice::from_ref(&message)).await {
        Ok(()) => {
            error!(reason, "rejected message moved to the dead-letter queue");
            Ok(SignupOutcome::DeadLettered { reason })
        }
        Err(e) => {
            warn!(error = %e, "could not move the rejected message to the dead-letter queue; it fails instead");
            Err(FlowError::InvalidInput(reason))
        }
    }
}

/// How both queue consumers (signup, and reconcile on the re-drive queue) process one
/// record: first the message is set to come back `retry.died_s` from now should this
/// invocation fail or die (not after the queue's visibility timeout, six function
/// timeouts); then `work` runs, and its outcome is logged: a rejected message as an
/// error (it will reach the dead-letter queue), a failure as a warning (it will be
/// retried, after `retry.failed_s` where set).
pub(crate) async fn consume<C: Cloud, T: std::fmt::Debug>(
    cloud: &C,
    r: &QueueRecord,
    retry: Retry,
    what: &'static str,
    work: impl Future<Output = Result<T, FlowError>>,
) -> Result<T, FlowError> {
    if let Some((queue_url, receipt_handle)) = &r.receipt
        && let Err(e) = cloud.retry_after(queue_url, receipt_handle, retry.died_s).await
    {
        warn!(error = %e, what, "could not shorten the retry delay; a failure waits the visibility timeout");
    }
    let result = work.await;
    match &result {
        Ok(outcome) => info!(?outcome, what, "message processed"),
        Err(e @ FlowError::InvalidInput(_)) => {
            error!(error = %e, kind = e.kind(), what, "rejected message; it will go to the dead-letter queue");
        }
        Err(e) => {
            warn!(error = %e, kind = e.kind(), what, "message failed; it will be retried");
            // A failure this invocation lived to see (a detach still running, a call
            // throttled past its retries) may come back in seconds; `died_s`, which must
            // outlast the function's timeout, is for a death, where no one can say when
            // the invocation stopped.
            if let (Some((queue_url, receipt_handle)), Some(failed_s)) = (&r.receipt, retry.failed_s)
                && let Err(e) = cloud.retry_after(queue_url, receipt_handle, failed_s).await
            {
                warn!(error = %e, what, "could not bring the failed message back sooner; it waits its retry delay");
            }
        }
    }
    result
}

/// How soon a signup message whose invocation failed, and returned, is seen again (s):
/// mostly a detach longer than the invocation's wait, resumed where it stopped. (Ten
/// receives at this pace still span minutes: a detach takes seconds, rarely tens.)
pub const FAILED_RETRY_S: u32 = 5;

/// When a consumed message comes back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// After its invocation died (set on receipt): more than the function's timeout.
    pub(crate) died_s: u32,
    /// After its invocation failed and returned; `None` keeps `died_s` (the re-drive
    /// queue: its messages' failures are waits for an agent or a launch, which seconds do
    /// not change, and five receives would go in half a minute).
    pub(crate) failed_s: Option<u32>,
}

/// Handles one validated message.
pub async fn handle_message<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    msg: &SignupMessage,
    sent_at_ms: Option<u64>,
) -> Result<SignupOutcome, FlowError> {
    handle(cloud, cfg, msg, sent_at_ms, false).await
}

/// Handles one validated message, `redelivered` when SQS has delivered it before.
async fn handle<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    msg: &SignupMessage,
    sent_at_ms: Option<u64>,
    redelivered: bool,
) -> Result<SignupOutcome, FlowError> {
    match msg {
        SignupMessage::Signup { user_id, signup_id } => {
            let span = info_span!("signup", user_id = %user_id, signup_id = %signup_id);
            signup(cloud, cfg, user_id, signup_id, sent_at_ms, redelivered).instrument(span).await
        }
        SignupMessage::Delete { user_id, signup_id } => {
            let span = info_span!("delete", user_id = %user_id, signup_id = %signup_id);
            delete_user(cloud, cfg, user_id, signup_id).instrument(span).await
        }
        SignupMessage::Resume { user_id, attempt } => {
            resume(cloud, cfg, user_id, *attempt).instrument(info_span!("resume", user_id = %user_id)).await
        }
    }
}

/// A `resume` message for `user_id`, whose record is at `attempt`, to the signup queue,
/// deduplicated by `dedup_id` within five minutes.
pub(crate) fn resume_message(user_id: &Id, attempt: u32, dedup_id: String) -> Result<QueuedMessage, FlowError> {
    let body = serde_json::to_string(&SignupMessage::Resume { user_id: user_id.clone(), attempt: Some(attempt) })
        .map_err(|e| FlowError::InvalidInput(format!("resume message cannot be encoded: {e}")))?;
    Ok(QueuedMessage { group_id: Some(user_id.as_str().to_owned()), dedup_id: Some(dedup_id), body, delay_s: 0 })
}

/// Resumes a user stalled while claiming (sent by the reconcile sweep, a failover, or a
/// re-drive): the same
/// `acquire` as a signup, or, when the user was failing over from a command, the rest
/// of that failover; never creating a group.
async fn resume<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &Id,
    attempt: Option<u32>,
) -> Result<SignupOutcome, FlowError> {
    // A failover's resume arrives a moment after its record was written, which the
    // group's description may not show yet.
    let shown = |_: &Group, r: &UserRecord| attempt.is_none_or(|a| r.attempt >= a);
    let Some((group, record)) = load_user_showing(cloud, cfg, user_id.as_str(), shown).await? else {
        info!("no user group; nothing to resume");
        return Ok(SignupOutcome::NothingToResume);
    };
    if let Some(a) = attempt.filter(|a| record.attempt < *a) {
        return Err(FlowError::NotYet(format!(
            "the user's record does not show attempt {a} yet (it shows {}); read again on the retry",
            record.attempt
        )));
    }
    if record.state != UserState::Claiming {
        return Ok(SignupOutcome::AlreadyInProgress(record.state));
    }
    match record.command_id.as_deref() {
        Some(command_id) => {
            Ok(SignupOutcome::FailoverResumed(command_status::resume_failover(cloud, cfg, user_id, command_id).await?))
        }
        None => Ok(SignupOutcome::Acquired(acquire(cloud, cfg, &group, &record).await?)),
    }
}

async fn signup<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &Id,
    signup_id: &Id,
    sent_at_ms: Option<u64>,
    redelivered: bool,
) -> Result<SignupOutcome, FlowError> {
    // A redelivery: an earlier run most likely created the group, so read it first (one
    // call when it exists) instead of a create that fails `AlreadyExists` and then the read.
    if redelivered && let Some((group, record)) = load_user(cloud, cfg, user_id.as_str()).await? {
        info!(group = %group.name, "redelivered signup resumes its user");
        return continue_user(cloud, cfg, signup_id, &group, &record).await;
    }
    if let Some(users) = at_user_limit(cloud, cfg).await? {
        // The user may be one of them (a duplicate of an earlier signup): read first.
        if let Some((group, record)) = load_user(cloud, cfg, user_id.as_str()).await? {
            return continue_user(cloud, cfg, signup_id, &group, &record).await;
        }
        cloud.record(Metric::UserLimitReached);
        return Err(FlowError::InvalidInput(format!(
            "the stack holds {users} users, its maximum (MAX_USERS {}); raise MaxUsers or delete users, then send \
             this signup again from the dead-letter queue",
            cfg.max_users
        )));
    }
    let record = UserRecord::new(user_id, signup_id, sent_at_ms.unwrap_or_else(|| cloud.now_ms()));
    let spec = UserGroupSpec {
        name: cfg.user_group(user_id.as_str()),
        launch_template: cfg.launch_template.clone(),
        subnets: cfg.subnets.clone(),
        tags: record.to_tags(),
    };
    let (group, record) = match cloud.create_user_group(&spec).await {
        Ok(()) => {
            info!(group = %spec.name, "user group created");
            cloud.record(Metric::Signup { pool_group: cfg.pool_group.clone() });
            // A group created a moment ago is exactly the spec: no need to read it back
            // (and DescribeAutoScalingGroups might not show it yet).
            let group = Group {
                name: spec.name.clone(),
                min_size: 0,
                max_size: 1,
                desired_capacity: 0,
                members: Vec::new(),
                tags: spec.tags.iter().cloned().collect(),
            };
            (group, record)
        }
        Err(CloudError::AlreadyExists { .. }) => {
            info!(group = %spec.name, "user group exists; resuming");
            load_user(cloud, cfg, user_id.as_str())
                .await?
                .ok_or_else(|| FlowError::NotYet(format!("group {} exists but is not visible yet", spec.name)))?
        }
        Err(CloudError::LimitExceeded { message, .. }) => {
            // Every user is a group: the Region's quota of Auto Scaling groups (500 by
            // default) caps the users warmpool can hold. The signup waits for a freed
            // group (deleted users) through its retries, then in the dead-letter queue.
            cloud.record(Metric::GroupQuotaReached);
            error!(
                group = %spec.name,
                "the Region's Auto Scaling group quota is reached ({message}); raise the quota \
                 (Service Quotas: Auto Scaling groups per Region) or delete finished users; this signup is \
                 retried, then dead-lettered, where it can be sent again"
            );
            return Err(FlowError::NotYet(format!(
                "cannot create {}: the Auto Scaling group quota is reached ({message})",
                spec.name
            )));
        }
        Err(e) => return Err(e.into()),
    };
    continue_user(cloud, cfg, signup_id, &group, &record).await
}

/// A signup for a user whose group exists: acquire unless the user is past claiming.
async fn continue_user<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    signup_id: &Id,
    group: &Group,
    record: &UserRecord,
) -> Result<SignupOutcome, FlowError> {
    if record.signup_id != signup_id.as_str() {
        warn!(existing_signup = %record.signup_id, "user already signed up under another signup id; continuing that one");
    }
    if record.state != UserState::Claiming {
        if finish_cold(cloud, group, record).await? {
            return Ok(SignupOutcome::Acquired(Acquired::Cold));
        }
        info!(state = record.state.as_str(), "user is past claiming; nothing to do");
        return Ok(SignupOutcome::AlreadyInProgress(record.state));
    }
    Ok(SignupOutcome::Acquired(acquire(cloud, cfg, group, record).await?))
}

async fn delete_user<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &Id,
    signup_id: &Id,
) -> Result<SignupOutcome, FlowError> {
    let name = cfg.user_group(user_id.as_str());
    let Some(group) = cloud.describe_group(&name).await? else {
        info!(group = %name, "no user group; nothing to delete");
        return Ok(SignupOutcome::NothingToDelete);
    };
    // Only a group whose record is this user's, signed up under this signup id: a group
    // of that name that is someone else's (another stack's, an operator's) or a delete
    // that does not know the signup is refused, and the message is dead-lettered.
    let record = match UserRecord::from_tags(&group.tags) {
        Some(r) if r.user_id == user_id.as_str() && r.signup_id == signup_id.as_str() => r,
        Some(r) if r.user_id == user_id.as_str() => {
            return Err(FlowError::InvalidInput(format!(
                "delete of {user_id} names signup {signup_id}, but {name} was made for signup {}; not deleting",
                r.signup_id
            )));
        }
        _ => {
            return Err(FlowError::InvalidInput(format!(
                "{name} does not carry {user_id}'s warmpool record; not deleting a group that is not this user's"
            )));
        }
    };
    // Release claims first: once the group is gone nothing else knows about them.
    for instance_id in [record.instance, record.claimed].iter().flatten() {
        cloud.release(instance_id).await?;
    }
    match cloud.delete_group(&name).await {
        Ok(()) | Err(CloudError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    info!(group = %name, "user group deleted with its instances");
    Ok(SignupOutcome::Deleted)
}

/// `Some(users)` when the stack holds `MAX_USERS` users already (none when it is 0).
/// Cheap far from the cap, exact near it: the Region's group count (one
/// `DescribeAccountLimits`) bounds our users from above, so below the cap nothing more
/// is read; at or above it, the users are counted (a call per 100). Signups running at
/// once can each see one place left: the cap may be passed by up to the signup
/// function's concurrency (`QueueMaxConcurrency`).
async fn at_user_limit<C: Cloud>(cloud: &C, cfg: &Config) -> Result<Option<usize>, FlowError> {
    if cfg.max_users == 0 || cloud.groups_in_region().await? < cfg.max_users {
        return Ok(None);
    }
    let users = cloud.list_user_groups(&cfg.user_group_prefix, &[]).await?.len();
    Ok((users >= cfg.max_users as usize).then_some(users))
}
