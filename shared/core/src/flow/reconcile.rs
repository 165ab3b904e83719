//! The reconcile function: lost events and dead invocations cost minutes, never a
//! stuck user.
//!
//! A scheduled sweep finds every user whose record has not moved for
//! `RECONCILE_STALL_S`, and hands each one to an invocation of its own instead of
//! re-driving them all inline (a sweep that dies on one user would stop the rest):
//! - `claiming` (a signup, or a failover, that died and whose message or event is
//!   gone): a `resume` message to the signup function, which runs `acquire` again, or
//!   the rest of the failover the recorded command started;
//! - `initializing`, unless SSM lists its init as still running (one
//!   `ListCommandInvocations` for all of them): a message to the re-drive queue, which
//!   this function consumes ([`handle_redrives`]). There the user's init is sent (a lost
//!   launch event), its final status applied (a lost status event), its lost init sent
//!   again, or, with no instance and nothing launching, an instance claimed again.
//!
//! The re-drive queue is also the on-failure destination of lifecycle and
//! command-status: an event they still failed on after Lambda's two retries arrives as
//! an invocation record and re-drives the user it is about.
//!
//! Then instances of our launch template outside every group with no claim are
//! terminated ([`super::outside`]). And on every fifth sweep, every claim older than the
//! stall whose owner does not hold that instance any more is repaired: released, and the
//! instance handed back to the pool if it was left outside every group (`repair.rs`).
//!
//! Each re-drive goes through the same flow steps as the events, with their guards, so
//! a re-drive that races a late event does no harm.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use serde::Serialize;
use serde_json::Value;
use tracing::{Instrument, info, info_span, warn};

use super::acquire::acquire;
use super::command_status::{self, ThenAcquire};
use super::lifecycle::{self, LifecycleOutcome};
use super::outside::{OutsideReport, sweep_outside};
use super::signup::{QueueRecord, Retry, consume, resume_message};
use super::{InstanceOwner, load_user, owner_of_instance, write_tags};
use crate::Config;
use crate::domain::{Id, RedriveMessage, UserRecord, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::events;
use crate::events::CommandOutcome;
use crate::metrics::Metric;
use crate::ports::{Cloud, Group, InvocationQuery, QueuedMessage};

/// What one sweep did (the function's response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub users_checked: usize,
    /// User id to what was re-driven.
    pub redriven: BTreeMap<String, String>,
    pub claims_repaired: usize,
    /// Claims (and init locks) of ready users' hosts, which the ready leaves in place for
    /// runs that read the record just before it, released once older than the stall.
    pub ready_claims_released: usize,
    /// Failed users' groups deleted after their retention.
    pub failed_removed: usize,
    /// Users whose re-drive failed this time (tried again next sweep).
    pub errors: usize,
    /// Instances outside every group, and the orphans among them terminated.
    pub outside: OutsideReport,
}

/// How far before a record's last write its command may have been sent; and how long
/// after it SSM may still not know the invocation (`InvocationDoesNotExist`).
const LISTING_MARGIN_MS: u64 = 60_000;

/// How far SSM's clock (an invocation's `RequestedDateTime`) may run behind the
/// functions' (a record's write time): both are NTP-synchronised, well within this.
const CLOCK_SKEW_MS: u64 = 5_000;

/// The longest a re-drive waits for an SSM agent (the agent of a user stalled for
/// `RECONCILE_STALL_S` is long online, or broken): well within the function's timeout.
pub const REDRIVE_AGENT_WAIT_S: u32 = 20;

/// Sweeps (minutes since the epoch divisible by this) that also repair stale claims.
pub const HOUSEKEEPING_EVERY: u64 = 5;

/// Sweeps (minutes since the epoch divisible by this) that also look for instances
/// outside every group. Listing them reads every running instance of the launch
/// template, a page per 1,000, so 10,000 users' hosts cost 10 calls a scan, 5 a minute
/// at this cadence: the one scheduled listing that still grows with the users. A scan
/// every 5 or 10 minutes kept it flat but slowed the recovery from crashes mid-move
/// (the abandoned moves it ends): issue 10's check over the standard fault mix missed
/// its p95 of 900 s on seed 10 (912 s), and meets it at 2 (845 s).
pub const OUTSIDE_EVERY: u64 = 2;

/// One sweep over the stalled users (and, every [`OUTSIDE_EVERY`] minutes, the instances
/// outside every group; every [`HOUSEKEEPING_EVERY`] minutes, the claims and the failed
/// users past their retention).
///
/// Every call can be the sweep's last (a timeout, a crash), so the calls go where they
/// move users, cheapest first, and the messages that hand users on leave as soon as
/// they are known: the users in flight (a call per 100), `resume` and re-drive messages
/// for the stalled users that need no status, then the init statuses (a call per 50)
/// and the re-drives they call for, then the instances outside every group (a call per
/// 1,000 of the launch template's instances), then the claims, then the failed users'
/// groups.
pub async fn sweep<C: Cloud>(cloud: &C, cfg: &Config) -> Result<ReconcileReport, FlowError> {
    let mut report = ReconcileReport::default();
    let now = cloud.now_ms();
    let stall_ms = u64::from(cfg.reconcile_stall_s) * 1000;
    // A listing that fails does not stop the rest of the sweep; its error is the
    // sweep's, after the rest.
    let users = sweep_users(cloud, cfg, now, stall_ms, &mut report).await;
    // Instances outside every group cost an orphan's hourly price and no user's time:
    // after the users, and every `OUTSIDE_EVERY` minutes only, since EC2 can list them
    // only among all of the launch template's instances (a call per 1,000, every user's
    // host included). (An orphan with a live claim is a move in flight, handed on.)
    if (now / 60_000).is_multiple_of(OUTSIDE_EVERY) {
        match sweep_outside(cloud, cfg).await {
            Ok(outside) => {
                cloud.record(Metric::Orphans(u32::try_from(outside.terminated.len()).unwrap_or(u32::MAX)));
                report.outside = outside;
            }
            Err(e) => {
                warn!(error = %e, "reconcile could not check for instances outside every group; the next scan tries again");
                report.errors += 1;
            }
        }
    }
    // Stale claims cost a call per ten to list: repaired on every fifth sweep, last.
    if (now / 60_000).is_multiple_of(HOUSEKEEPING_EVERY) {
        if let Err(e) = super::repair::repair_claims(cloud, cfg, now, stall_ms, &mut report).await {
            warn!(error = %e, "reconcile could not list the claims; next housekeeping sweep tries again");
            report.errors += 1;
        }
        match super::retention::remove_expired_failed(cloud, cfg, now).await {
            Ok(n) => report.failed_removed = n,
            Err(e) => {
                warn!(error = %e, "reconcile could not list the failed users; next housekeeping sweep tries again");
                report.errors += 1;
            }
        }
    }
    users?;
    Ok(report)
}

/// The sweep's part for the users: `resume` and re-drive messages for the stalled ones.
async fn sweep_users<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    now: u64,
    stall_ms: u64,
    report: &mut ReconcileReport,
) -> Result<(), FlowError> {
    let groups = cloud.list_user_groups(&cfg.user_group_prefix, UserState::IN_FLIGHT).await?;
    let mut stalled = Vec::new();
    // Users by in-flight state, in `IN_FLIGHT`'s order.
    let mut in_flight = vec![0_u32; UserState::IN_FLIGHT.len()];
    for group in groups {
        let Some(record) = UserRecord::from_tags(&group.tags) else { continue };
        report.users_checked += 1;
        if let Some(i) = UserState::IN_FLIGHT.iter().position(|s| *s == record.state) {
            in_flight[i] += 1;
        }
        if !record.state.is_final() && now.saturating_sub(record.updated_at_ms) >= stall_ms {
            stalled.push((group, record));
        }
    }
    for (state, count) in UserState::IN_FLIGHT.iter().zip(in_flight) {
        cloud.record(Metric::UsersInFlight { state: *state, count });
    }
    // The longest-stalled first: a sweep cut short still hands on the users who have
    // waited most.
    stalled.sort_by_key(|(group, record)| (record.updated_at_ms, group.name.clone()));
    // Users stalled while claiming (a signup, or a failover, that died) go back to the
    // signup function, and `initializing` ones that wait on no init (a lost launch
    // event, an instance gone) to the re-drive queue: each then runs in its own
    // invocation, with its queue's quick retries.
    let (claiming, stalled): (Vec<_>, Vec<_>) = stalled.into_iter().partition(|(_, r)| r.state == UserState::Claiming);
    send_resumes(cloud, cfg, &claiming, report).await?;
    let (waiting, unsent): (Vec<_>, Vec<_>) = stalled.into_iter().partition(|(g, r)| waits_on_init(g, r));
    let redrives: Vec<_> = unsent.iter().filter(|(g, r)| needs_redrive(g, r, None)).collect();
    send_redrives(cloud, cfg, &redrives, report).await;
    redrive_ended_inits(cloud, cfg, &waiting, report).await;
    Ok(())
}

/// Re-drives the users waiting on an init unless SSM lists it as still running. Each
/// page of the listing hands on the users it shows ended before the next is asked for:
/// a sweep that dies in the listing (a page per 50 inits sent in the window, and a
/// burst's inits stay in flight, and stalled, for their whole run) has still handed on
/// what it saw. Those the listing does not show (not visible yet, or sent before the
/// window), or all that are left when a page fails, are re-driven after it.
async fn redrive_ended_inits<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    waiting: &[(Group, UserRecord)],
    report: &mut ReconcileReport,
) {
    let Some(query) = init_query(&cfg.user_init_document, waiting) else { return };
    let mut seen = BTreeSet::new();
    let mut next_token = None;
    loop {
        let listed = cloud.list_invocations_page(query, next_token.clone()).await;
        let (page, next) = match listed.and_then(|page| page.next(next_token.as_deref()).map(|next| (page, next))) {
            Ok(read) => read,
            Err(e) => {
                warn!(error = %e, "could not list user-init invocations; re-driving the rest instead");
                report.errors += 1;
                break;
            }
        };
        let statuses: BTreeMap<String, String> =
            page.invocations.into_iter().map(|i| (i.command_id, i.status)).collect();
        // The users this page lists (each once), re-driven unless their init runs.
        let mut redrives = Vec::new();
        for user @ (group, record) in waiting {
            let Some(command) = record.command_id.as_ref().filter(|c| statuses.contains_key(*c)) else { continue };
            if seen.insert(command.clone()) && needs_redrive(group, record, Some(&statuses)) {
                redrives.push(user);
            }
        }
        send_redrives(cloud, cfg, &redrives, report).await;
        next_token = next;
        if next_token.is_none() {
            break;
        }
    }
    let unlisted: Vec<_> = waiting
        .iter()
        .filter(|(g, r)| r.command_id.as_ref().is_none_or(|c| !seen.contains(c)) && needs_redrive(g, r, None))
        .collect();
    send_redrives(cloud, cfg, &unlisted, report).await;
}

/// `resume` messages to the signup queue for users stalled while claiming, ten a call.
async fn send_resumes<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    claiming: &[(Group, UserRecord)],
    report: &mut ReconcileReport,
) -> Result<(), FlowError> {
    let mut resumes = Vec::new();
    for (_, r) in claiming {
        let user_id = match Id::parse("user id tag", &r.user_id) {
            Ok(id) => id,
            Err(e) => {
                // One unreadable record must not stop the sweep for everyone else.
                warn!(group = %r.user_id, error = %e, "stalled user's id tag is not an id; not resumed");
                report.errors += 1;
                continue;
            }
        };
        // One per stall: a sweep that repeats within five minutes is deduplicated.
        resumes.push(resume_message(&user_id, r.attempt, format!("resume-{}-{}", r.user_id, r.updated_at_ms))?);
    }
    if resumes.is_empty() {
        return Ok(());
    }
    match cloud.send_batch(&cfg.signup_queue_url, &resumes).await {
        Ok(()) => {
            for user_id in resumes.into_iter().filter_map(|m| m.group_id) {
                info!(user_id = %user_id, "reconcile sent a stalled signup back to the signup function");
                report.redriven.insert(user_id, "resume sent".to_owned());
            }
        }
        Err(e) => {
            warn!(error = %e, users = resumes.len(), "could not send resume messages; next sweep tries again");
            report.errors += 1;
        }
    }
    Ok(())
}

/// Re-drive messages to the re-drive queue (standard: no group, no deduplication; a
/// re-drive is idempotent), ten a call.
async fn send_redrives<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    users: &[&(Group, UserRecord)],
    report: &mut ReconcileReport,
) {
    let mut sent = Vec::new();
    let mut messages = Vec::new();
    for (group, record) in users {
        match Id::parse("user id tag", &record.user_id) {
            Ok(user_id) => {
                messages.push(QueuedMessage {
                    group_id: None,
                    dedup_id: None,
                    body: RedriveMessage::user_body(&user_id),
                    delay_s: 0,
                });
                sent.push(record.user_id.clone());
            }
            Err(e) => {
                warn!(group = %group.name, error = %e, "stalled user's id tag is not an id; not re-driven");
                report.errors += 1;
            }
        }
    }
    if messages.is_empty() {
        return;
    }
    match cloud.send_batch(&cfg.redrive_queue_url, &messages).await {
        Ok(()) => {
            for user_id in sent {
                info!(user_id = %user_id, "reconcile queued a stalled user's re-drive");
                report.redriven.insert(user_id, "re-drive queued".to_owned());
            }
        }
        Err(e) => {
            warn!(error = %e, users = messages.len(), "could not queue re-drives; next sweep tries again");
            report.errors += 1;
        }
    }
}

/// Whether an `initializing` user waits on the init recorded for its live instance.
fn waits_on_init(group: &Group, record: &UserRecord) -> bool {
    let live = group.members.iter().find(|m| m.live()).map(|m| m.instance_id.as_str());
    record.command_id.is_some() && live.is_some() && record.command_instance.as_deref() == live
}

/// Whether a stalled `initializing` user needs a re-drive: not while the init it waits
/// on is listed as still running (`statuses`: the listing, for users that wait on an
/// init). A group that asks for an instance and has none this long is failing to launch.
fn needs_redrive(group: &Group, record: &UserRecord, statuses: Option<&BTreeMap<String, String>>) -> bool {
    if record.state != UserState::Initializing {
        return false;
    }
    match (statuses, &record.command_id) {
        (Some(statuses), Some(command_id)) if waits_on_init(group, record) => {
            statuses.get(command_id).is_none_or(|status| CommandOutcome::from_status(status) != CommandOutcome::Pending)
        }
        _ => true,
    }
}

/// What one message of the re-drive queue led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveOutcome {
    /// The user was re-driven (what was done).
    Redriven { user_id: String, action: &'static str },
    /// Nothing to do (why).
    Nothing { reason: &'static str },
}

/// Handles one batch of the re-drive queue and returns the message ids that failed (to
/// come back after `REDRIVE_RETRY_S`, and after the queue's `maxReceiveCount`,
/// dead-lettered; the sweep re-drives a user who is still stalled anyway).
pub async fn handle_redrives<C: Cloud>(cloud: &C, cfg: &Config, records: Vec<QueueRecord>) -> Vec<String> {
    let results = join_all(records.into_iter().map(|r| async move {
        let span = info_span!("redrive_record", message_id = %r.message_id, user_id = tracing::field::Empty);
        let failed = handle_redrive_record(cloud, cfg, &r).instrument(span).await.is_err();
        failed.then_some(r.message_id)
    }))
    .await;
    results.into_iter().flatten().collect()
}

async fn handle_redrive_record<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    r: &QueueRecord,
) -> Result<RedriveOutcome, FlowError> {
    let retry = Retry { died_s: cfg.redrive_retry_s, failed_s: None };
    consume(cloud, r, retry, "re-drive message", async {
        handle_redrive(cloud, cfg, &RedriveMessage::parse(&r.body)?).await
    })
    .await
}

/// Handles one parsed message of the re-drive queue.
pub async fn handle_redrive<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    message: &RedriveMessage,
) -> Result<RedriveOutcome, FlowError> {
    // A re-drive may wait for an agent: no longer than this invocation can.
    let capped = Config { agent_wait_s: cfg.agent_wait_s.min(REDRIVE_AGENT_WAIT_S), ..cfg.clone() };
    let user_id = match message {
        RedriveMessage::User { user_id } => {
            tracing::Span::current().record("user_id", user_id.as_str());
            user_id.clone()
        }
        RedriveMessage::FailedEvent { function_arn, condition, event } => {
            let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
            warn!(function_arn, condition, detail_type, "an event failed after Lambda's retries; re-driving its user");
            cloud.record(Metric::FailedEvent);
            let subject = subject_of_event(cfg, event)?;
            let launched = event.pointer("/detail/EC2InstanceId").and_then(Value::as_str).filter(|id| !id.is_empty());
            if let (events::LAUNCH_SUCCESSFUL, Some(instance_id), EventSubject::User(user_id)) =
                (detail_type, launched, &subject)
            {
                // The launch itself, whatever the user's state: it may be a ready user's
                // replaced host, which no sweep looks for.
                return Ok(match lifecycle::init_user(cloud, &capped, user_id, instance_id).await? {
                    LifecycleOutcome::InitSent { .. } => RedriveOutcome::Redriven {
                        user_id: user_id.as_str().to_owned(),
                        action: "failed launch event re-driven",
                    },
                    _ => RedriveOutcome::Nothing { reason: "the launch needs nothing more" },
                });
            }
            match subject {
                EventSubject::User(user_id) => user_id,
                EventSubject::UserInitOn(instance_id) => match owner_of_instance(cloud, cfg, &instance_id).await? {
                    InstanceOwner::User(user_id) => user_id,
                    InstanceOwner::NotAUser => {
                        return Ok(RedriveOutcome::Nothing { reason: "instance is not in a user group" });
                    }
                    InstanceOwner::NoGroup => return Ok(RedriveOutcome::Nothing { reason: "instance is in no group" }),
                },
                // A pool member's lost lifecycle action or prep status: the hook's
                // heartbeat timeout ABANDONs it and the pool launches a replacement.
                EventSubject::Pool => {
                    return Ok(RedriveOutcome::Nothing { reason: "a pool event: left to the hook's timeout" });
                }
            }
        }
    };
    let Some((group, record)) = load_user(cloud, cfg, user_id.as_str()).await? else {
        return Ok(RedriveOutcome::Nothing { reason: "user group no longer exists" });
    };
    match record.state {
        UserState::Ready | UserState::Failed => {
            return Ok(RedriveOutcome::Nothing { reason: "user is ready or failed" });
        }
        UserState::Claiming => {
            // A failed event of a failover, or of a signup: the signup function resumes
            // it (one `resume` per record write).
            let message = resume_message(
                &user_id,
                record.attempt,
                format!("resume-{}-{}", record.user_id, record.updated_at_ms),
            )?;
            cloud.send_batch(&cfg.signup_queue_url, std::slice::from_ref(&message)).await?;
            return Ok(RedriveOutcome::Redriven { user_id: user_id.as_str().to_owned(), action: "resume sent" });
        }
        UserState::Initializing => {}
    }
    match redrive(cloud, &capped, &group, &record).await? {
        Some(action) => {
            info!(user_id = %user_id, action, "re-drove a stalled user");
            Ok(RedriveOutcome::Redriven { user_id: user_id.as_str().to_owned(), action })
        }
        None => Ok(RedriveOutcome::Nothing { reason: "nothing stalled" }),
    }
}

/// What a failed EventBridge event was about.
enum EventSubject {
    /// A user: its user group's (Auto Scaling events), or its user-init command's
    /// `UserId` parameter (the command-level SSM event).
    User(Id),
    /// A user-init on this instance (the per-instance SSM event): the instance's group
    /// names the user.
    UserInitOn(String),
    /// A pool member.
    Pool,
}

fn subject_of_event(cfg: &Config, event: &Value) -> Result<EventSubject, FlowError> {
    let detail = event.get("detail").unwrap_or(&Value::Null);
    let str_of = |key: &str| detail.get(key).and_then(Value::as_str);
    if let Some(raw) = str_of("AutoScalingGroupName").and_then(|g| cfg.user_of_group(g)) {
        return Id::parse("user id of a failed event", raw).map(EventSubject::User);
    }
    if str_of("document-name") == Some(cfg.user_init_document.as_str()) {
        if let Some(raw) = detail.pointer("/parameters/UserId/0").and_then(Value::as_str) {
            return Id::parse("user id of a failed event", raw).map(EventSubject::User);
        }
        if let Some(instance_id) = str_of("instance-id") {
            return Ok(EventSubject::UserInitOn(instance_id.to_owned()));
        }
    }
    Ok(EventSubject::Pool)
}

/// The listing of every user-init command the stalled users may be waiting on: a
/// `ListCommandInvocations` page per 50 (instead of a `GetCommandInvocation` per user per
/// sweep: a few hundred users on their ten-minute cold init would otherwise spend the
/// sweep on asking). None when no user waits.
fn init_query<'a>(document: &'a str, waiting: &[(Group, UserRecord)]) -> Option<InvocationQuery<'a>> {
    // The record is written right after its command is sent, and not again until the
    // outcome: so the commands waited on were sent shortly before the oldest such write,
    // and before the newest. (One sent earlier is missing from the list, and asked for
    // on its own.)
    let written = || waiting.iter().map(|(_, r)| r.updated_at_ms);
    let (oldest, newest) = (written().min()?, written().max()?);
    Some(
        InvocationQuery::since(document, oldest.saturating_sub(LISTING_MARGIN_MS))
            .before(newest.saturating_add(CLOCK_SKEW_MS)),
    )
}

/// Re-drives one stalled `initializing` user.
async fn redrive<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
) -> Result<Option<&'static str>, FlowError> {
    let live = group.members.iter().find(|m| m.live()).map(|m| m.instance_id.clone());
    let user_id = Id::parse("user id tag", &record.user_id)?;
    if live.is_none() && group.desired_capacity > 0 {
        // The group is launching its instance, or failing to: a lost `Launch
        // Unsuccessful` event, or one whose retries ran out.
        if !lifecycle::launch_stuck(group, record, cloud.now_ms()) {
            return Ok(None);
        }
        let waited_s = cloud.now_ms().saturating_sub(record.updated_at_ms) / 1000;
        let why = format!("launch failed: no instance after {waited_s} s of Auto Scaling's launches");
        lifecycle::end_failing_launch(cloud, cfg, group.clone(), record.clone(), &why, ThenAcquire::ViaSignupQueue)
            .await?;
        return Ok(Some("cold launch failing; attempt ended"));
    }
    let Some(instance_id) = live else {
        // The record moves first, which also marks it: while this message's retries run
        // the claim, the sweep does not queue the same user again.
        write_tags(cloud, &group.name, &[(tag::STATE, UserState::Claiming.as_str().into())]).await?;
        let fresh = load_user(cloud, cfg, &record.user_id).await?;
        if let Some((group, record)) = fresh {
            acquire(cloud, cfg, &group, &record).await?;
        }
        return Ok(Some("instance gone; acquire"));
    };
    match (record.command_id.as_deref(), record.command_instance.as_deref()) {
        (Some(command_id), Some(sent_to)) if sent_to == instance_id => {
            match cloud.invocation_status(command_id, &instance_id).await {
                Ok(s) if CommandOutcome::from_status(&s) == CommandOutcome::Pending => Ok(None),
                Ok(s) => {
                    let applied = command_status::apply_init_outcome(
                        cloud,
                        cfg,
                        &user_id,
                        command_id,
                        &s,
                        ThenAcquire::ViaSignupQueue,
                    )
                    .await?;
                    // Say so when the outcome changed nothing: a re-drive that does
                    // nothing each time must not read as progress in the logs.
                    match applied {
                        command_status::StatusOutcome::Ignored { reason } => {
                            warn!(user_id = %user_id, command_id, reason, "re-drive found the init's outcome handled");
                            Ok(None)
                        }
                        _ => Ok(Some("lost command status")),
                    }
                }
                Err(CloudError::InvocationDoesNotExist { .. })
                    if cloud.now_ms().saturating_sub(record.updated_at_ms) < LISTING_MARGIN_MS =>
                {
                    // Sent moments ago (the record is written right after SendCommand):
                    // SSM answers this until the invocation is visible. A repeated
                    // re-drive must not send the init twice.
                    Ok(None)
                }
                Err(CloudError::InvocationDoesNotExist { .. }) => {
                    // SSM still does not know it a minute on: send the init again.
                    write_tags(cloud, &group.name, &[(tag::COMMAND_INSTANCE, String::new())]).await?;
                    lifecycle::init_user(cloud, cfg, &user_id, &instance_id).await?;
                    Ok(Some("init lost; sent again"))
                }
                Err(e) => Err(e.into()),
            }
        }
        _ => {
            lifecycle::init_loaded(cloud, cfg, group, record.clone(), &instance_id, true).await?;
            Ok(Some("lost launch event"))
        }
    }
}
