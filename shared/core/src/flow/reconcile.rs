//! The reconcile sweep (scheduled): lost events and dead invocations cost minutes,
//! never a stuck user.
//!
//! For every user whose record has not moved for `RECONCILE_STALL_S`:
//! - `claiming` (a signup, or a failover, that died and whose message or event is
//!   gone): a `resume` message to the signup function, which runs `acquire` again, or
//!   the rest of the failover the recorded command started;
//! - `initializing` with a live instance that never got its init (a lost launch event):
//!   re-drive the launch event;
//! - `initializing` with an init sent: ask SSM (one `ListCommandInvocations` for all of
//!   them, `GetCommandInvocation` for one not listed) and re-drive a final status whose
//!   event was lost; an invocation SSM does not know is sent again;
//! - `initializing` with no instance and nothing launching: claim again.
//!
//! First, instances of our launch template outside every group with no claim are
//! terminated ([`super::outside`]). And on every fifth sweep, every claim older than the
//! stall whose owner does not hold that instance any more is repaired: released, and the
//! instance handed back to the pool if it was left outside every group.
//!
//! Each re-drive goes through the same flow steps as the events, with their guards, so
//! a sweep that races a late event does no harm.

use std::collections::BTreeMap;

use serde::Serialize;

use tracing::{info, warn};

use super::acquire::{acquire, return_to_pool};
use super::outside::{OutsideReport, sweep_outside};
use super::{command_status, lifecycle, load_user, write_tags};
use crate::Config;
use crate::domain::{Id, SignupMessage, UserRecord, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::events::CommandOutcome;
use crate::ports::{Cloud, Group, MemberState, QueuedMessage};

/// What one sweep did (the function's response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub users_checked: usize,
    /// User id to what was re-driven.
    pub redriven: BTreeMap<String, String>,
    pub claims_repaired: usize,
    /// Users whose re-drive failed this time (tried again next sweep).
    pub errors: usize,
    /// Instances outside every group, and the orphans among them terminated.
    pub outside: OutsideReport,
}

/// How far before a record's last write its command may have been sent.
const LISTING_MARGIN_MS: u64 = 60_000;

/// Sweeps (minutes since the epoch divisible by this) that also repair stale claims.
pub const HOUSEKEEPING_EVERY: u64 = 5;

/// Releases (or hands back) every claim older than the stall whose owner does not hold
/// its instance any more.
async fn repair_claims<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    now: u64,
    stall_ms: u64,
    report: &mut ReconcileReport,
) -> Result<(), FlowError> {
    for claim in cloud.list_claims().await? {
        if now.saturating_sub(claim.created_ms) < stall_ms {
            continue;
        }
        match repair_claim(cloud, cfg, &claim.instance_id, &claim.owner).await {
            Ok(true) => report.claims_repaired += 1,
            Ok(false) => {}
            Err(e) => {
                warn!(instance_id = %claim.instance_id, error = %e, "reconcile could not repair a claim");
                report.errors += 1;
            }
        }
    }
    Ok(())
}

/// One sweep over the instances outside every group and the stalled users (and, every
/// [`HOUSEKEEPING_EVERY`] minutes, the claims).
pub async fn sweep<C: Cloud>(cloud: &C, cfg: &Config) -> Result<ReconcileReport, FlowError> {
    let mut report = ReconcileReport::default();
    let now = cloud.now_ms();
    let stall_ms = u64::from(cfg.reconcile_stall_s) * 1000;
    // Every sweep first looks for instances outside every group (one call when there are
    // none): a sweep cut short still ends what runs, unowned, outside every group.
    match sweep_outside(cloud, cfg).await {
        Ok(outside) => report.outside = outside,
        Err(e) => {
            warn!(error = %e, "reconcile could not check for instances outside every group; next sweep tries again");
            report.errors += 1;
        }
    }
    // Stale claims cost a call per ten to list: repaired on every fifth sweep, so the
    // others spend what they have on stalled users.
    if (now / 60_000).is_multiple_of(HOUSEKEEPING_EVERY)
        && let Err(e) = repair_claims(cloud, cfg, now, stall_ms, &mut report).await
    {
        warn!(error = %e, "reconcile could not list the claims; next housekeeping sweep tries again");
        report.errors += 1;
    }
    let groups = cloud.list_user_groups(&cfg.user_group_prefix).await?;
    let mut stalled = Vec::new();
    for group in groups {
        let Some(record) = UserRecord::from_tags(&group.tags) else { continue };
        report.users_checked += 1;
        if !record.state.is_final() && now.saturating_sub(record.updated_at_ms) >= stall_ms {
            stalled.push((group, record));
        }
    }
    // The longest-stalled first: a sweep cut short (a timeout, a crash) still moves the
    // users who have waited most, and the next sweep reaches the rest, so the wait for a
    // re-drive is bounded by how many users stall together, not by where a user's group
    // falls in the list.
    stalled.sort_by_key(|(group, record)| (record.updated_at_ms, group.name.clone()));
    // Users stalled while claiming (a signup, or a failover, that died) go back to the
    // signup function (a `resume` message each, ten a call): each then runs in its own
    // invocation, with the signup queue's quick retries, instead of all of them in this
    // one sweep, where one death stops the rest.
    let (claiming, stalled): (Vec<_>, Vec<_>) = stalled.into_iter().partition(|(_, r)| r.state == UserState::Claiming);
    if !claiming.is_empty() {
        let mut resumes = Vec::new();
        for (_, r) in &claiming {
            let user_id = match Id::parse("user id tag", &r.user_id) {
                Ok(id) => id,
                Err(e) => {
                    // One unreadable record must not stop the sweep for everyone else.
                    warn!(group = %r.user_id, error = %e, "stalled user's id tag is not an id; not resumed");
                    report.errors += 1;
                    continue;
                }
            };
            let body = serde_json::to_string(&SignupMessage::Resume { user_id })
                .map_err(|e| FlowError::InvalidInput(format!("resume message cannot be encoded: {e}")))?;
            // One per stall: a sweep that repeats within five minutes is deduplicated.
            let dedup_id = format!("resume-{}-{}", r.user_id, r.updated_at_ms);
            resumes.push(QueuedMessage { group_id: r.user_id.clone(), dedup_id, body });
        }
        match cloud.send_signups(&cfg.signup_queue_url, &resumes).await {
            Ok(()) => {
                for m in resumes {
                    info!(user_id = %m.group_id, "reconcile sent a stalled signup back to the signup function");
                    report.redriven.insert(m.group_id, "resume sent".to_owned());
                }
            }
            Err(e) => {
                warn!(error = %e, users = resumes.len(), "could not send resume messages; next sweep tries again");
                report.errors += 1;
            }
        }
    }
    let statuses = init_statuses(cloud, cfg, &stalled).await.unwrap_or_else(|e| {
        warn!(error = %e, "could not list user-init invocations; asking for each instead");
        report.errors += 1;
        BTreeMap::new()
    });
    for (group, record) in stalled {
        match redrive(cloud, cfg, &group, &record, &statuses).await {
            Ok(Some(action)) => {
                info!(user_id = %record.user_id, action, "reconcile re-drove a stalled user");
                report.redriven.insert(record.user_id.clone(), action.to_owned());
            }
            Ok(None) => {}
            Err(e) => {
                warn!(user_id = %record.user_id, error = %e, "reconcile could not re-drive; next sweep tries again");
                report.errors += 1;
            }
        }
    }
    Ok(report)
}

/// The status of every user-init command the stalled users may be waiting on, in one
/// `ListCommandInvocations` per 50 (instead of a `GetCommandInvocation` per user per
/// sweep: a few hundred users on their ten-minute cold init would otherwise spend the
/// sweep on asking). Command id to status.
async fn init_statuses<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    stalled: &[(Group, UserRecord)],
) -> Result<BTreeMap<String, String>, FlowError> {
    let waiting = stalled.iter().filter(|(_, r)| r.state == UserState::Initializing && r.command_id.is_some());
    // The record is written right after its command is sent, and not again until the
    // outcome: so the commands waited on were sent shortly before the oldest such write.
    // (One sent earlier is missing from the list, and asked for on its own.)
    let Some(since) = waiting.map(|(_, r)| r.updated_at_ms.saturating_sub(LISTING_MARGIN_MS)).min() else {
        return Ok(BTreeMap::new());
    };
    let listed = cloud.list_invocations(&cfg.user_init_document, since, None).await?;
    Ok(listed.into_iter().map(|i| (i.command_id, i.status)).collect())
}

async fn redrive<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
    statuses: &BTreeMap<String, String>,
) -> Result<Option<&'static str>, FlowError> {
    // Only `initializing` users come here (`claiming` ones go back to the signup function).
    if record.state != UserState::Initializing {
        return Ok(None);
    }
    let live = group.members.iter().find(|m| m.live()).map(|m| m.instance_id.clone());
    let user_id = Id::parse("user id tag", &record.user_id)?;
    let checks_status = live.is_some() && record.command_id.is_some() && record.command_instance == live;
    if !checks_status {
        // A re-drive that makes many calls (an init waits for an agent, a claim moves an
        // instance) marks the record first: if this sweep dies in it, the next one starts
        // with the other stalled users, and comes back to this one a stall later, instead
        // of dying on the same user every minute.
        write_tags(cloud, &group.name, &[]).await?;
    }
    let Some(instance_id) = live else {
        if group.desired_capacity > 0 {
            return Ok(None); // the group is launching it
        }
        write_tags(cloud, &group.name, &[(tag::STATE, UserState::Claiming.as_str().into())]).await?;
        let fresh = load_user(cloud, cfg, &record.user_id).await?;
        if let Some((group, record)) = fresh {
            acquire(cloud, cfg, &group, &record).await?;
        }
        return Ok(Some("instance gone; acquire"));
    };
    match (record.command_id.as_deref(), record.command_instance.as_deref()) {
        (Some(command_id), Some(sent_to)) if sent_to == instance_id => {
            let status = match statuses.get(command_id) {
                Some(listed) => Ok(listed.clone()),
                // Not listed (yet): ask for this one.
                None => cloud.invocation_status(command_id, &instance_id).await,
            };
            match status {
                Ok(s) if CommandOutcome::from_status(&s) == CommandOutcome::Pending => Ok(None),
                Ok(s) => {
                    command_status::apply_init_outcome(cloud, cfg, &user_id, command_id, &s).await?;
                    Ok(Some("lost command status"))
                }
                Err(CloudError::InvocationDoesNotExist { .. }) => {
                    // SSM never got it: send the init again.
                    write_tags(cloud, &group.name, &[(tag::COMMAND_INSTANCE, String::new())]).await?;
                    lifecycle::init_user(cloud, cfg, &user_id, &instance_id).await?;
                    Ok(Some("init lost; sent again"))
                }
                Err(e) => Err(e.into()),
            }
        }
        _ => {
            lifecycle::init_user(cloud, cfg, &user_id, &instance_id).await?;
            Ok(Some("lost launch event"))
        }
    }
}

/// Repairs a claim whose owner no longer holds that instance. True when it did.
async fn repair_claim<C: Cloud>(cloud: &C, cfg: &Config, instance_id: &str, owner: &str) -> Result<bool, FlowError> {
    let record = match Id::parse("claim owner", owner) {
        Ok(id) => load_user(cloud, cfg, id.as_str()).await?.map(|(_, r)| r),
        Err(_) => None,
    };
    let held = record.as_ref().is_some_and(|r| {
        !r.state.is_final() && (r.claimed.as_deref() == Some(instance_id) || r.instance.as_deref() == Some(instance_id))
    });
    if held {
        return Ok(false);
    }
    match cloud.instance_membership(instance_id).await? {
        // A move in flight (its detach not done yet): look again next sweep.
        Some(m) if m.state == MemberState::Detaching => return Ok(false),
        Some(m) => info!(instance_id, owner, group = %m.group, "releasing a stale claim"),
        None => {
            // Detached, never attached: give it back to the pool rather than leave it
            // running outside every group.
            warn!(instance_id, owner, "claimed instance is outside every group; handing it back");
            match return_to_pool(cloud, cfg, instance_id).await {
                Ok(()) | Err(FlowError::Cloud(CloudError::Invalid { .. } | CloudError::NotFound { .. })) => {}
                Err(e) => return Err(e),
            }
        }
    }
    cloud.release(instance_id).await?;
    Ok(true)
}
