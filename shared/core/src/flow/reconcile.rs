//! The reconcile sweep (scheduled): lost events and dead invocations cost minutes,
//! never a stuck user.
//!
//! For every user whose record has not moved for `RECONCILE_STALL_S`:
//! - `claiming` with no command: run `acquire` again (a signup that died and whose
//!   message is gone); with a command: resume the failover that command started;
//! - `initializing` with a live instance that never got its init (a lost launch event):
//!   re-drive the launch event;
//! - `initializing` with an init sent: ask SSM (`GetCommandInvocation`) and re-drive a
//!   final status whose event was lost; an invocation SSM does not know is sent again;
//! - `initializing` with no instance and nothing launching: claim again.
//!
//! And every claim older than the stall whose owner does not hold that instance any
//! more is repaired: released, and the instance handed back to the pool if it was left
//! outside every group.
//!
//! Each re-drive goes through the same flow steps as the events, with their guards, so
//! a sweep that races a late event does no harm.

use std::collections::BTreeMap;

use serde::Serialize;

use tracing::{info, warn};

use super::acquire::{acquire, return_to_pool};
use super::{command_status, lifecycle, load_user, write_tags};
use crate::Config;
use crate::domain::{Id, UserRecord, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::events::CommandOutcome;
use crate::ports::{Cloud, Group, MemberState};

/// What one sweep did (the function's response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub users_checked: usize,
    /// User id to what was re-driven.
    pub redriven: BTreeMap<String, String>,
    pub claims_repaired: usize,
    /// Users whose re-drive failed this time (tried again next sweep).
    pub errors: usize,
}

/// One sweep over every user group and every claim.
pub async fn sweep<C: Cloud>(cloud: &C, cfg: &Config) -> Result<ReconcileReport, FlowError> {
    let mut report = ReconcileReport::default();
    let now = cloud.now_ms();
    let stall_ms = u64::from(cfg.reconcile_stall_s) * 1000;
    let mut groups = cloud.list_user_groups(&cfg.user_group_prefix).await?;
    // Start each sweep elsewhere in the list, so that a sweep cut short (a timeout, a
    // crash) does not leave the same users at the end every time.
    if !groups.is_empty() {
        let offset = (now / 60_000) as usize % groups.len();
        groups.rotate_left(offset);
    }
    for group in groups {
        let Some(record) = UserRecord::from_tags(&group.tags) else { continue };
        report.users_checked += 1;
        if record.state.is_final() || now.saturating_sub(record.updated_at_ms) < stall_ms {
            continue;
        }
        match redrive(cloud, cfg, &group, &record).await {
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
    Ok(report)
}

async fn redrive<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
) -> Result<Option<&'static str>, FlowError> {
    let live = group.members.iter().find(|m| m.live()).map(|m| m.instance_id.clone());
    let user_id = Id::parse("user id tag", &record.user_id)?;
    match (record.state, record.command_id.as_deref()) {
        (UserState::Claiming, None) => {
            acquire(cloud, cfg, group, record).await?;
            Ok(Some("acquire"))
        }
        (UserState::Claiming, Some(command_id)) => {
            command_status::resume_failover(cloud, cfg, &user_id, command_id).await?;
            Ok(Some("resume failover"))
        }
        (UserState::Initializing, _) => {
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
                    match cloud.invocation_status(command_id, &instance_id).await {
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
        _ => Ok(None),
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
