//! Lifecycle: Auto Scaling events become SSM Run Commands.
//!
//! - `EC2 Instance Launch Successful` for a user group (an attach, or a cold launch):
//!   wait for the agent, send user-init with the user's values as typed parameters. For a
//!   ready user, a launch that is not the recorded host is Auto Scaling replacing it: the
//!   new, blank host is initialised the same way (cold), and the record names the old one.
//! - `EC2 Instance-launch Lifecycle Action` for the pool (see [`super::pool_hook`]): wait
//!   for the agent, send pool-prep; command-status completes the hook. An instance
//!   leaving the warm pool was prepared on its way in: once its agent is back, the hook
//!   is completed at once.
//! - `EC2 Instance Launch Unsuccessful` for a user group: Auto Scaling tries again on its
//!   own; an attempt that still has no instance [`LAUNCH_GRACE_MS`] after it began is
//!   failed over (the pool, if the user may, or a cold attempt; `failed` with EC2's
//!   reason past `MAX_ATTEMPTS`).

use std::collections::BTreeMap;

use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use super::command_status::{self, StatusOutcome, ThenAcquire, failover};
use super::{load_user, load_user_showing, wait_for_agent, write_tags};
use crate::domain::{Id, Path, UserRecord, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::events::{AsgEvent, CommandOutcome, LaunchSuccessful, LaunchUnsuccessful};
use crate::metrics::Metric;
use crate::ports::{ClaimOutcome, Cloud, CommandRequest, Group, InvocationQuery, InvocationSummary, Member, init_lock};
use crate::{Config, retry};

/// What the lifecycle function did with an event (the function's response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LifecycleOutcome {
    InitSent {
        command_id: String,
    },
    PrepSent {
        command_id: String,
    },
    /// A prepared instance started out of the warm pool: its agent is back, the hook
    /// was completed (CONTINUE).
    WarmStarted,
    /// An attempt whose launches kept failing was ended: what came next.
    LaunchFailed {
        next: StatusOutcome,
    },
    /// Not for us, stale, or a duplicate; the reason is logged.
    Ignored {
        reason: &'static str,
    },
}

/// How long an attempt may go without an instance (Auto Scaling retrying its failed
/// launches meanwhile) before it counts as a failed attempt.
pub const LAUNCH_GRACE_MS: u64 = 60_000;

/// Whether the user's attempt is failing to launch: `initializing`, the group asking for
/// an instance and holding none (a cold launch that EC2 keeps refusing; or an attached
/// host Auto Scaling replaced with a launch that keeps failing), for
/// [`LAUNCH_GRACE_MS`] since the record last moved.
pub(crate) fn launch_stuck(group: &Group, record: &UserRecord, now_ms: u64) -> bool {
    waits_for_launch(group, record) && now_ms.saturating_sub(record.updated_at_ms) >= LAUNCH_GRACE_MS
}

/// `initializing`, and the group asks for an instance it does not hold.
fn waits_for_launch(group: &Group, record: &UserRecord) -> bool {
    record.state == UserState::Initializing && group.desired_capacity > 0 && !group.members.iter().any(Member::live)
}

/// Ends an attempt whose launches keep failing: the group stops trying (desired 0,
/// first: a crash after it leaves a user the sweep claims for again), then the failover
/// (the next attempt from the pool if the user may, or cold again; `failed` past
/// `MAX_ATTEMPTS`, with `why`).
pub(crate) async fn end_failing_launch<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: Group,
    mut record: UserRecord,
    why: &str,
    then: ThenAcquire,
) -> Result<StatusOutcome, FlowError> {
    warn!(user_id = %record.user_id, why, "the user's launches keep failing; ending the attempt");
    cloud.set_desired_capacity(&group.name, 0).await?;
    // The attempt has no instance to retire (an earlier attempt's is gone already).
    record.instance = None;
    failover(cloud, cfg, group, record, why, then).await
}

async fn launch_failed<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    e: &LaunchUnsuccessful,
) -> Result<LifecycleOutcome, FlowError> {
    let Some(user_id) = cfg.user_of_group(&e.auto_scaling_group_name) else {
        // The pool: Auto Scaling launches again, and the pool-sizer sees the failed activity.
        return Ok(LifecycleOutcome::Ignored { reason: "not a user group (Auto Scaling retries the launch)" });
    };
    let Ok(user_id) = Id::parse("user group name", user_id) else {
        return Ok(LifecycleOutcome::Ignored { reason: "not a user group" });
    };
    let Some((group, record)) = load_user(cloud, cfg, user_id.as_str()).await? else {
        return Ok(LifecycleOutcome::Ignored { reason: "user group no longer exists" });
    };
    if !waits_for_launch(&group, &record) {
        return Ok(LifecycleOutcome::Ignored { reason: "the user is not waiting for a launch" });
    }
    if cloud.now_ms().saturating_sub(record.updated_at_ms) < LAUNCH_GRACE_MS {
        // Auto Scaling tries again on its own: give it the grace, and look again on this
        // event's retry (Lambda's, a minute later).
        return Err(FlowError::NotYet(format!(
            "{} could not launch ({}); Auto Scaling retries, and this is checked again",
            group.name, e.status_message
        )));
    }
    let why = format!("launch failed: {}", e.status_message);
    let next = end_failing_launch(cloud, cfg, group, record, &why, ThenAcquire::ViaSignupQueue).await?;
    Ok(LifecycleOutcome::LaunchFailed { next })
}

/// Handles one Auto Scaling event.
pub async fn handle_event<C: Cloud>(cloud: &C, cfg: &Config, event: &AsgEvent) -> Result<LifecycleOutcome, FlowError> {
    let outcome = match event {
        AsgEvent::LaunchSuccessful(e) => {
            let span =
                info_span!("launch_successful", group = %e.auto_scaling_group_name, instance_id = %e.ec2_instance_id);
            user_launch(cloud, cfg, e).instrument(span).await
        }
        AsgEvent::LaunchUnsuccessful(e) => {
            let span = info_span!("launch_unsuccessful", group = %e.auto_scaling_group_name);
            launch_failed(cloud, cfg, e).instrument(span).await
        }
        AsgEvent::LaunchLifecycleAction(e) => {
            let span = info_span!("pool_lifecycle_action", group = %e.auto_scaling_group_name, instance_id = %e.ec2_instance_id);
            super::pool_hook::pool_launch(cloud, cfg, e).instrument(span).await
        }
        AsgEvent::Other(detail_type) => {
            info!(detail_type, "ignoring Auto Scaling event of another type");
            Ok(LifecycleOutcome::Ignored { reason: "other detail type" })
        }
    }?;
    if let LifecycleOutcome::Ignored { reason: why } = &outcome {
        info!(reason = why, "event ignored");
    }
    Ok(outcome)
}

async fn user_launch<C: Cloud>(cloud: &C, cfg: &Config, e: &LaunchSuccessful) -> Result<LifecycleOutcome, FlowError> {
    let Some(user_id) = cfg.user_of_group(&e.auto_scaling_group_name) else {
        return Ok(LifecycleOutcome::Ignored { reason: "not a user group" });
    };
    // Our user groups are named from validated ids: anything else is not one of ours.
    let Ok(user_id) = Id::parse("user group name", user_id) else {
        return Ok(LifecycleOutcome::Ignored { reason: "not a user group" });
    };
    init_user(cloud, cfg, &user_id, &e.ec2_instance_id).await
}

/// Sends user-init for `user_id` to `instance_id`, once the instance is a live member of
/// the user's group and its SSM agent is online, and records the command. Reads the
/// user's record first: a final user, an instance that is no longer the user's, or one
/// that already got its init (a duplicated event) changes nothing. The launch event and
/// the reconcile sweep (for a launch whose event was lost) both come here.
pub async fn init_user<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &Id,
    instance_id: &str,
) -> Result<LifecycleOutcome, FlowError> {
    // The launch event comes within a second of the attach or launch it reports, which
    // the group's description may not show yet: a missing instance is read again.
    let Some((group, record)) =
        load_user_showing(cloud, cfg, user_id.as_str(), |g, _| is_live_member(g, instance_id)).await?
    else {
        return Ok(LifecycleOutcome::Ignored { reason: "user group no longer exists" });
    };
    init_loaded(cloud, cfg, &group, record, instance_id, false).await
}

fn is_live_member(group: &Group, instance_id: &str) -> bool {
    group.members.iter().any(|m| m.instance_id == instance_id && m.live())
}

/// [`init_user`] for a user whose group and record the caller has just read (a re-drive:
/// one call fewer, in an invocation where every call can be the last). `apply_ended`:
/// see [`record_earlier_init`].
pub(crate) async fn init_loaded<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    mut record: UserRecord,
    instance_id: &str,
    apply_ended: bool,
) -> Result<LifecycleOutcome, FlowError> {
    let user_id = record.user_id.clone();
    let user_id = user_id.as_str();
    if !is_live_member(group, instance_id) {
        return Ok(LifecycleOutcome::Ignored { reason: "instance is no longer the user's" });
    }
    match record.state {
        UserState::Failed => return Ok(LifecycleOutcome::Ignored { reason: "user has failed" }),
        UserState::Claiming => {
            // The run claiming for the user owns its group until the record says
            // `initializing`: a pool instance on its way to the user gets its init from
            // the move (signup's acquire, or its retry); a cold launch is asked for only
            // after the record moves; and any other instance (the previous attempt's,
            // which the failover retires, or one Auto Scaling launched to replace it)
            // must not take the user's init now, or its record would clobber the claim.
            // Once the record is `initializing`, the sweep initialises a live host that
            // has none.
            return Ok(LifecycleOutcome::Ignored { reason: "a claim in flight decides this user's host" });
        }
        UserState::Ready if record.instance.as_deref() == Some(instance_id) => {
            return Ok(LifecycleOutcome::Ignored { reason: "user is already ready on this instance" });
        }
        UserState::Ready => record = replacement(cloud, group, record, instance_id).await?,
        UserState::Initializing => {}
    }
    if record.command_instance.as_deref() == Some(instance_id) && record.command_id.is_some() {
        return Ok(LifecycleOutcome::Ignored { reason: "init already sent to this instance" });
    }
    let waited = wait_for_agent(cloud, cfg, instance_id).await?;
    if waited && record.path != Path::Cold {
        // Another invocation may have waited for the same agent (a re-drive next to a
        // retried event) and be done already: the lock below is released once the user
        // is ready, so read the record again, so that the host runs one init, not two.
        let fresh = load_user(cloud, cfg, user_id).await?.map(|(_, r)| r);
        if fresh.as_ref().is_some_and(|r| r.command_instance.as_deref() == Some(instance_id) && r.command_id.is_some())
        {
            return Ok(LifecycleOutcome::Ignored { reason: "init sent to this instance meanwhile" });
        }
    }
    let sent_before_possible = match lock_init(cloud, &record, instance_id).await? {
        InitLock::Taken => false,
        InitLock::Busy => {
            return Ok(LifecycleOutcome::Ignored { reason: "another invocation is sending this instance's init" });
        }
        InitLock::Stale => true,
    };
    let send_by = cloud.now_ms() + INIT_SEND_WINDOW_MS;
    if sent_before_possible && let Some(earlier) = init_sent_earlier(cloud, cfg, instance_id).await? {
        record_earlier_init(cloud, cfg, group, &record, &earlier, None, apply_ended).await?;
        return Ok(LifecycleOutcome::Ignored { reason: "init sent by an earlier run; recorded" });
    }
    let request = user_init_request(cfg, &record, instance_id);
    let command_id = send_with_agent_retry(cloud, cfg, &request, send_by).await?;
    record_init(cloud, &group.name, instance_id, &command_id, None).await?;
    info!(user_id, instance_id, command_id, attempt = record.attempt, "user-init sent");
    Ok(LifecycleOutcome::InitSent { command_id })
}

/// The user-init command for `record`'s user on `instance_id`: the user's values as
/// typed document parameters, the timeout of the record's path.
pub(crate) fn user_init_request(cfg: &Config, record: &UserRecord, instance_id: &str) -> CommandRequest {
    let timeout = match record.path {
        Path::Warm => cfg.init_timeout_warm_s,
        Path::Cold => cfg.init_timeout_cold_s,
    };
    CommandRequest {
        document: cfg.user_init_document.clone(),
        instance_id: instance_id.to_owned(),
        parameters: BTreeMap::from([
            ("UserId".to_owned(), vec![record.user_id.clone()]),
            ("SignupId".to_owned(), vec![record.signup_id.clone()]),
            ("executionTimeout".to_owned(), vec![timeout.to_string()]),
        ]),
        delivery_timeout_s: cfg.delivery_timeout_s,
        comment: format!("warmpool user-init attempt {}", record.attempt),
    }
}

/// How long an init lock is taken to mean a sender at work. Its holder starts no
/// `SendCommand` later than [`INIT_SEND_WINDOW_MS`] after taking it, and one `SendCommand`
/// with the SDK's throttling retries takes well under the rest (about 15 s at worst in
/// the SDK's adaptive mode). Older, its sender died or gave up, and the next run (the
/// signup message's retry, a re-drive, Lambda's retry) asks SSM and takes over. Short,
/// because a signup whose run died just after taking the lock waits this long.
const INIT_LOCK_BUSY_MS: u64 = 30_000;

/// How long after taking an init lock its holder may still start a `SendCommand`: a
/// resend after the agent looked gone again (a wait for it of up to `AGENT_WAIT_S`) is
/// given up past it, and the event's retry takes the lock over, so that a holder never
/// sends after another run could have taken over.
const INIT_SEND_WINDOW_MS: u64 = 10_000;

/// Whether this invocation may send an instance's user-init.
pub(crate) enum InitLock {
    /// Taken now: no one sent it before.
    Taken,
    /// Taken moments ago by another invocation (a duplicated event, a re-drive next to
    /// a retry, a resumed move right after the run it resumes), which sends it.
    Busy,
    /// Taken over from a run that died long ago (it may have sent the init).
    Stale,
}

/// Every user-init is sent under a lock (`PutParameter` with `Overwrite=false`, this user
/// as the owner), so that a host runs one init however many invocations reach the step
/// at once: invocations that wait for the same agent see it come online within one poll,
/// and a run that reads the record moments after another recorded its init may not see
/// that write yet (nor SSM list the command). A fresh instance (a cold launch, a replaced
/// host) is locked with its claim; a pool instance, whose claim the move holds, with its
/// [`init_lock`]. Released with the claim when the user is ready or the attempt fails over.
pub(crate) async fn lock_init<C: Cloud>(
    cloud: &C,
    record: &UserRecord,
    instance_id: &str,
) -> Result<InitLock, FlowError> {
    let name = match record.path {
        Path::Cold => instance_id.to_owned(),
        Path::Warm => init_lock(instance_id),
    };
    match cloud.claim(&name, &record.user_id).await? {
        ClaimOutcome::Created => Ok(InitLock::Taken),
        ClaimOutcome::HeldBy(lock) if lock.owner == record.user_id => {
            if cloud.now_ms().saturating_sub(lock.created_ms) < INIT_LOCK_BUSY_MS {
                return Ok(InitLock::Busy);
            }
            // Its sender died. Two retries (of a duplicated event, or a retry next to a
            // re-drive) can find it stale at once: only the one whose overwrite comes
            // right after it goes on; to the other, the lock is busy again.
            if cloud.take_over(&lock, &record.user_id).await? { Ok(InitLock::Stale) } else { Ok(InitLock::Busy) }
        }
        ClaimOutcome::HeldBy(lock) => Err(FlowError::Inconsistent {
            user_id: record.user_id.clone(),
            message: format!("{instance_id} in the user's group is locked by {}; not initialising it", lock.owner),
        }),
    }
}

/// The user-init an earlier run sent to `instance_id` (and died before recording), if
/// SSM lists one: an instance serves one user for one attempt, so any user-init it ran
/// is this one. One `ListCommandInvocations` for the instance over SSM's whole history
/// (30 days; no `InvokedAfter`): a handful of invocations, one page, and no dependence on
/// when the record was last written (a re-drive marks it before it calls here).
pub(crate) async fn init_sent_earlier<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    instance_id: &str,
) -> Result<Option<InvocationSummary>, FlowError> {
    let listed = cloud.list_invocations(InvocationQuery::all(&cfg.user_init_document).on(instance_id)).await?;
    Ok(listed.into_iter().find(|i| i.instance_id == instance_id))
}

/// Records the user-init an earlier run sent (`earlier`, found by [`init_sent_earlier`]),
/// with `path` when the move set it. If it has ended already and `apply_ended`, its
/// outcome is applied now: its status events most likely came before the record named
/// the command and were ignored, and the sweep would otherwise find it only a stall
/// later. Only functions configured and allowed to apply an outcome (ready queue,
/// failover) pass `apply_ended`: signup and reconcile; lifecycle leaves it to the sweep.
pub(crate) async fn record_earlier_init<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
    earlier: &InvocationSummary,
    path: Option<Path>,
    apply_ended: bool,
) -> Result<(), FlowError> {
    let (instance_id, command_id) = (earlier.instance_id.as_str(), earlier.command_id.as_str());
    info!(group = %group.name, instance_id, command_id, status = earlier.status,
        "user-init was sent by an earlier run; recording it");
    record_init(cloud, &group.name, instance_id, command_id, path).await?;
    if apply_ended && CommandOutcome::from_status(&earlier.status) != CommandOutcome::Pending {
        // Applied to the record as just written, not as read back: the read may still
        // show the previous command (tags lag their writes), and the outcome would wait
        // for the sweep.
        let mut recorded = record.clone();
        recorded.state = UserState::Initializing;
        recorded.instance = Some(instance_id.to_owned());
        recorded.command_id = Some(command_id.to_owned());
        recorded.command_instance = Some(instance_id.to_owned());
        recorded.claimed = None;
        if let Some(path) = path {
            recorded.path = path;
        }
        // Boxed: a failover acquires again, which may come back here.
        Box::pin(command_status::apply_to_record(
            cloud,
            cfg,
            group.clone(),
            recorded,
            command_id,
            &earlier.status,
            ThenAcquire::ViaSignupQueue,
        ))
        .await?;
    }
    Ok(())
}

/// Records that user-init `command_id` runs on `instance_id`: the user is
/// `initializing` on it (and, given `path`, on that path), no claim pending.
pub(crate) async fn record_init<C: Cloud>(
    cloud: &C,
    group: &str,
    instance_id: &str,
    command_id: &str,
    path: Option<Path>,
) -> Result<(), CloudError> {
    let mut tags = vec![
        (tag::STATE, UserState::Initializing.as_str().into()),
        (tag::INSTANCE, instance_id.to_owned()),
        (tag::COMMAND_ID, command_id.to_owned()),
        (tag::COMMAND_INSTANCE, instance_id.to_owned()),
        (tag::CLAIMED, String::new()),
    ];
    if let Some(path) = path {
        tags.push((tag::PATH, path.as_str().into()));
    }
    write_tags(cloud, group, &tags).await
}

/// A ready user's group launched another instance: Auto Scaling replaced the user's host
/// (a failed health check, a scheduled retirement) with a blank one from the launch
/// template. The record goes back to `initializing` on it (the cold path: the init runs
/// the full preparation), naming the host it replaces, so the ready message that follows
/// says so.
async fn replacement<C: Cloud>(
    cloud: &C,
    group: &Group,
    mut record: UserRecord,
    instance_id: &str,
) -> Result<UserRecord, FlowError> {
    let old = record.instance.clone().unwrap_or_default();
    warn!(user_id = %record.user_id, instance_id, replaced = %old, "a ready user's host was replaced; initialising the new one");
    cloud.record(Metric::HostReplaced);
    let reason = format!("host {old} replaced by Auto Scaling with {instance_id}");
    write_tags(
        cloud,
        &group.name,
        &[
            (tag::STATE, UserState::Initializing.as_str().into()),
            (tag::PATH, Path::Cold.as_str().into()),
            (tag::INSTANCE, instance_id.to_owned()),
            (tag::REPLACED, old.clone()),
            (tag::COMMAND_ID, String::new()),
            (tag::COMMAND_INSTANCE, String::new()),
            (tag::REASON, reason.clone()),
        ],
    )
    .await?;
    record.state = UserState::Initializing;
    record.path = Path::Cold;
    record.instance = Some(instance_id.to_owned());
    record.replaced = Some(old);
    record.command_id = None;
    record.command_instance = None;
    record.reason = Some(reason);
    Ok(record)
}

/// `SendCommand`, treating `InvalidInstanceId` right after the agent looked online
/// (registration still propagating) as one more reason to wait: tried again on the
/// [`retry::command_resend`] schedule, each time once the agent looks online again, but
/// never started after `start_by_ms` (an init lock's send window).
pub(crate) async fn send_with_agent_retry<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    request: &CommandRequest,
    start_by_ms: u64,
) -> Result<String, FlowError> {
    let mut resend = retry::command_resend();
    loop {
        if cloud.now_ms() > start_by_ms {
            return Err(FlowError::NotYet(format!(
                "the init of {} is past its lock's send window; the retry takes the lock over",
                request.instance_id
            )));
        }
        match cloud.send_command(request).await {
            Ok(id) => return Ok(id),
            Err(CloudError::AgentNotReady { instance_id }) => {
                let Some(delay) = resend.next() else { break };
                warn!(instance_id, "SendCommand says the agent is not ready; waiting again");
                cloud.sleep_ms(delay.as_millis() as u64).await;
                wait_for_agent(cloud, cfg, &instance_id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(FlowError::NotYet(format!("SendCommand to {} kept answering InvalidInstanceId", request.instance_id)))
}
