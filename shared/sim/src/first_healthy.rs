//! The original design's claim strategy, "the first healthy instance", kept in the
//! simulator only, to measure the product's rendezvous claim against it
//! (`warmpool simulate --compare-claims`). The product has no way to select it: the
//! simulator injects it through [`Cloud::claim_from_pool`].
//!
//! Every claimer takes the first healthy `InService` pool member and detaches it; a
//! detach that fails "not part of group" or "not InService" lost the race, and the
//! claimer looks again. Under a burst every claimer aims at the same instance. The
//! claim lock is written after the detach (bookkeeping for the rest of the flow), which
//! leaves a crash window the rendezvous claim does not have.

use tracing::{info, warn};
use warmpool_core::Config;
use warmpool_core::error::{CloudError, FlowError};
use warmpool_core::flow::acquire::{Claimed, return_to_pool};
use warmpool_core::flow::describe_pool;
use warmpool_core::metrics::Metric;
use warmpool_core::ports::{ClaimOutcome, Cloud};

/// Detaches before a claimer gives up: the original design's two looks of twenty.
const ATTEMPTS: usize = 40;

/// Detaches the first healthy pool instance and then claims it; `None` when the pool
/// has nothing claimable or every race was lost.
pub async fn first_healthy_claim<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
) -> Result<Option<Claimed>, FlowError> {
    let mut conflicts = 0_u32;
    let claimed = first_healthy(cloud, cfg, user_id, &mut conflicts).await;
    cloud.record(Metric::ClaimConflicts(conflicts));
    claimed
}

async fn first_healthy<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
    conflicts: &mut u32,
) -> Result<Option<Claimed>, FlowError> {
    for _ in 0..ATTEMPTS {
        let pool = describe_pool(cloud, cfg, user_id).await?;
        let claimable = pool.members.iter().filter(|m| m.claimable()).count();
        cloud.record(Metric::PoolDepth(u32::try_from(claimable).unwrap_or(u32::MAX)));
        let Some(first) = pool.members.iter().find(|m| m.claimable()) else {
            info!(user_id, conflicts, "pool has no claimable instance");
            return Ok(None);
        };
        let instance_id = first.instance_id.as_str();
        match cloud.detach_instance(&cfg.pool_group, instance_id).await {
            Ok(()) => {}
            Err(CloudError::NotInGroup { .. } | CloudError::NotInService { .. }) => {
                *conflicts += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let claim = match cloud.claim(instance_id, user_id).await {
            Ok(c) => c,
            Err(e) => {
                // The instance is out of the pool and nobody holds it: hand it back
                // before giving up, or it runs outside every group.
                warn!(user_id, instance_id, error = %e, "claim after detach failed; handing the instance back");
                if let Err(back) = return_to_pool(cloud, cfg, instance_id).await {
                    warn!(user_id, instance_id, error = %back, "could not hand the detached instance back");
                }
                return Err(e.into());
            }
        };
        match claim {
            ClaimOutcome::Created => {
                info!(user_id, instance_id, conflicts, "detached the first healthy pool instance");
                return Ok(Some(Claimed { instance_id: instance_id.to_owned(), detached: true }));
            }
            ClaimOutcome::HeldBy(claim) if claim.owner == user_id => {
                return Ok(Some(Claimed { instance_id: instance_id.to_owned(), detached: true }));
            }
            ClaimOutcome::HeldBy(claim) => {
                warn!(
                    user_id,
                    instance_id,
                    owner = claim.owner,
                    "detached an instance someone else holds; handing it back"
                );
                return_to_pool(cloud, cfg, instance_id).await?;
                *conflicts += 1;
            }
        }
    }
    warn!(user_id, conflicts, "lost every race for the first healthy instance");
    Ok(None)
}
