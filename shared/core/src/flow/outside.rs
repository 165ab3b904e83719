//! Nothing runs outside a group: the reconcile sweep's last line of defence.
//!
//! Every path that takes an instance out of a group (a move from the pool, a hand-back)
//! holds the instance's claim until the instance is in a group again, and the claim
//! repair of [`super::reconcile`] finishes or undoes a move whose owner died. An
//! instance launched from our launch template that is in no group *and* has no claim
//! has no owner left that could ever move it: a crash between a release and an attach,
//! a claim lost to an error we could not classify, someone's manual detach. Such an
//! orphan is terminated; one with a claim is left to its owner and to the claim repair,
//! unless the claim is [`ABANDONED_MOVE_MS`] old (an owner that keeps dying mid-move):
//! then it is terminated too.

use serde::Serialize;
use tracing::{info, warn};

use crate::Config;
use crate::error::{CloudError, FlowError};
use crate::ports::Cloud;

/// How old a claim on an instance outside every group must be before the move it
/// stands for counts as abandoned (10 minutes: its owner has retried a dozen times, and
/// the claim repair, which hands a prepared instance back, has had its turn first; a
/// move takes seconds).
pub const ABANDONED_MOVE_MS: u64 = 10 * 60 * 1000;

/// What one pass over the instances outside every group did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutsideReport {
    /// Instances of our launch template EC2 lists in no group.
    pub found: usize,
    /// Orphans (no group, and no claim or one long abandoned) terminated.
    pub terminated: Vec<String>,
}

/// Finds instances of our launch template outside every group and terminates those
/// nobody holds a claim on (or holds one long abandoned). Each costs a few calls
/// whatever the number of claims: its own claim, its membership (Auto Scaling is asked
/// last: EC2's tags may lag an attach), the termination. An instance younger than the
/// stall threshold is left for the next pass.
pub async fn sweep_outside<C: Cloud>(cloud: &C, cfg: &Config) -> Result<OutsideReport, FlowError> {
    let mut report = OutsideReport::default();
    let now = cloud.now_ms();
    let stall_ms = u64::from(cfg.reconcile_stall_s) * 1000;
    let outside = cloud.instances_outside_groups(&cfg.launch_template).await?;
    report.found = outside.len();
    if outside.is_empty() {
        return Ok(report);
    }
    for instance in outside {
        let id = instance.instance_id.as_str();
        if now.saturating_sub(instance.launched_ms) < stall_ms {
            continue;
        }
        // Its claim, asked for after EC2 listed it outside: a move claims before it
        // detaches, so an instance that was outside then has its claim by now, if any.
        let abandoned = match cloud.claim_of(id).await? {
            None => false,
            // A move takes seconds: one whose claim is this old has an owner that keeps
            // dying in it. Ending the instance ends the move (the owner's attach then
            // fails, and it claims another), rather than let it run outside for good.
            Some(claim) if now.saturating_sub(claim.created_ms) >= ABANDONED_MOVE_MS => true,
            Some(_) => continue,
        };
        if let Some(m) = cloud.instance_membership(id).await? {
            info!(instance_id = id, group = %m.group, "EC2 listed the instance outside, but it is in a group");
            continue;
        }
        if abandoned {
            warn!(instance_id = id, "instance outside every group, claimed for a move long abandoned; terminating it");
        } else {
            warn!(instance_id = id, "instance of our launch template in no group and with no claim; terminating it");
        }
        match cloud.terminate_outside(id).await {
            Ok(()) | Err(CloudError::NotFound { .. }) => report.terminated.push(id.to_owned()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
