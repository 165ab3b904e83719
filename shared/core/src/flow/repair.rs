//! The reconcile sweep's housekeeping of claims: every claim older than the stall whose
//! owner does not hold its instance any more is released, and the instance handed back
//! to the pool if it was left outside every group; a ready user's leftover claim is
//! released.

use tracing::{info, warn};

use super::acquire::return_to_pool;
use super::load_user;
use super::reconcile::ReconcileReport;
use crate::Config;
use crate::domain::{Id, UserState};
use crate::error::{CloudError, FlowError};
use crate::ports::{Cloud, MemberState};

/// Releases (or hands back) every claim older than the stall whose owner does not hold
/// its instance any more.
pub(crate) async fn repair_claims<C: Cloud>(
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
            Ok(Repair::Repaired) => report.claims_repaired += 1,
            Ok(Repair::ReadyReleased) => report.ready_claims_released += 1,
            Ok(Repair::Held) => {}
            Err(e) => {
                warn!(instance_id = %claim.instance_id, error = %e, "reconcile could not repair a claim");
                report.errors += 1;
            }
        }
    }
    Ok(())
}

/// What [`repair_claim`] did with one claim.
enum Repair {
    /// Its owner still holds the instance (or a move is in flight): left.
    Held,
    /// The claim of a ready user's host: released, as expected.
    ReadyReleased,
    /// A claim whose owner no longer holds the instance: released (and the instance
    /// handed back if it was outside every group).
    Repaired,
}

/// Repairs a claim whose owner no longer holds that instance.
async fn repair_claim<C: Cloud>(cloud: &C, cfg: &Config, instance_id: &str, owner: &str) -> Result<Repair, FlowError> {
    let record = match Id::parse("claim owner", owner) {
        Ok(id) => load_user(cloud, cfg, id.as_str()).await?.map(|(_, r)| r),
        Err(_) => None,
    };
    if record.as_ref().is_some_and(|r| r.state == UserState::Ready && r.instance.as_deref() == Some(instance_id)) {
        // Left by the ready (see `command_status::ready`), older than the stall now: no
        // run that read the record from before the ready is still at work.
        cloud.release(instance_id).await?;
        return Ok(Repair::ReadyReleased);
    }
    let held = record.as_ref().is_some_and(|r| {
        !r.state.is_final() && (r.claimed.as_deref() == Some(instance_id) || r.instance.as_deref() == Some(instance_id))
    });
    if held {
        return Ok(Repair::Held);
    }
    match cloud.instance_membership(instance_id).await? {
        // A move in flight (its detach not done yet): look again next sweep.
        Some(m) if m.state == MemberState::Detaching => return Ok(Repair::Held),
        // The init lock of a fresh instance in its owner's own group (a cold launch, a
        // replaced host): the record names no instance until the init is sent, and the
        // lock may have been taken over moments ago (the listing is older than this).
        // Released when the user is ready or fails over, never here.
        Some(m) if record.as_ref().is_some_and(|r| !r.state.is_final()) && m.group == cfg.user_group(owner) => {
            return Ok(Repair::Held);
        }
        Some(m) => info!(instance_id, owner, group = %m.group, "releasing a stale claim"),
        None => {
            // Detached, never attached: give it back to the pool rather than leave it
            // running outside every group; but only an instance of our launch template
            // (a claim naming any other, which only someone who may write the claims'
            // path could make, is released and nothing more).
            let ours = cloud.instances_outside_groups(&cfg.launch_template).await?;
            if ours.iter().any(|o| o.instance_id == instance_id) {
                warn!(instance_id, owner, "claimed instance is outside every group; handing it back");
                match return_to_pool(cloud, cfg, instance_id).await {
                    Ok(()) | Err(FlowError::Cloud(CloudError::Invalid { .. } | CloudError::NotFound { .. })) => {}
                    Err(e) => return Err(e),
                }
            } else {
                warn!(
                    instance_id,
                    owner,
                    "a claim names an instance not launched from our launch template, \
                    or gone; releasing the claim only"
                );
            }
        }
    }
    cloud.release(instance_id).await?;
    Ok(Repair::Repaired)
}
