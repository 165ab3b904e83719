//! Getting the user an instance: claim one from the pool, move it into the user's
//! group, or fall back to a cold launch. Shared by signup and by failover.

use tracing::{info, warn};

use super::{describe_pool, fnv1a, write_tags};
use crate::domain::{Path, UserRecord, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::metrics::Metric;
use crate::ports::{ClaimOutcome, Cloud, Group};
use crate::{ClaimStrategy, Config};

/// Claim attempts per look at the pool; two looks at most.
const CLAIM_TRIES_PER_ROUND: usize = 20;
const CLAIM_ROUNDS: usize = 2;

/// What `acquire` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// A pool instance is now in the user's group.
    Warm { instance_id: String },
    /// The user's group was asked to launch a fresh instance.
    Cold,
    /// The group already had its instance (a resumed or duplicated run).
    AlreadyAttached { instance_id: String },
}

/// Gives the user (whose record is in `Claiming`) an instance, and moves the record to
/// `Initializing`. Safe to re-run at any point.
pub async fn acquire<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
) -> Result<Acquired, FlowError> {
    let user_id = record.user_id.as_str();
    // 1. The group has a live member already: a previous run attached it (or the cold
    //    launch it asked for has started). Only record it.
    if let Some(member) = group.members.iter().find(|m| m.live()) {
        let instance_id = member.instance_id.clone();
        info!(user_id, instance_id, "user group already has its instance");
        write_tags(
            cloud,
            &group.name,
            &[
                (tag::STATE, UserState::Initializing.as_str().into()),
                (tag::INSTANCE, instance_id.clone()),
                (tag::CLAIMED, String::new()),
            ],
        )
        .await?;
        return Ok(Acquired::AlreadyAttached { instance_id });
    }

    let warm_allowed = record.path == Path::Warm && record.attempt <= cfg.warm_attempts;
    if warm_allowed {
        // 2. A claim from an earlier run that did not finish: finish moving it.
        if let Some(claimed) = record.claimed.as_deref()
            && move_instance(cloud, cfg, &group.name, claimed, user_id, false).await? == Move::Attached
        {
            return finish_warm(cloud, group, claimed).await;
        }
        // 3. Claim a fresh one. A lost move (the instance vanished under us) tries again.
        for _ in 0..CLAIM_ROUNDS {
            let Some(Claimed { instance_id, detached }) = claim_from_pool(cloud, cfg, user_id).await? else {
                break;
            };
            write_tags(cloud, &group.name, &[(tag::CLAIMED, instance_id.clone())]).await?;
            if move_instance(cloud, cfg, &group.name, &instance_id, user_id, detached).await? == Move::Attached {
                return finish_warm(cloud, group, &instance_id).await;
            }
        }
        info!(user_id, attempt = record.attempt, "pool cannot serve; taking the cold path");
    } else {
        info!(user_id, attempt = record.attempt, "warm attempts used up; taking the cold path");
    }
    cold(cloud, group).await
}

async fn finish_warm<C: Cloud>(cloud: &C, group: &Group, instance_id: &str) -> Result<Acquired, FlowError> {
    write_tags(
        cloud,
        &group.name,
        &[
            (tag::STATE, UserState::Initializing.as_str().into()),
            (tag::PATH, Path::Warm.as_str().into()),
            (tag::INSTANCE, instance_id.to_owned()),
            (tag::CLAIMED, String::new()),
        ],
    )
    .await?;
    info!(group = %group.name, instance_id, "pool instance attached to user group");
    Ok(Acquired::Warm { instance_id: instance_id.to_owned() })
}

/// The cold path: the user's group launches a fresh instance from its launch template.
/// The path is recorded before the launch is asked for, so a re-run knows not to claim.
async fn cold<C: Cloud>(cloud: &C, group: &Group) -> Result<Acquired, FlowError> {
    write_tags(cloud, &group.name, &[(tag::PATH, Path::Cold.as_str().into()), (tag::CLAIMED, String::new())]).await?;
    cloud.set_desired_capacity(&group.name, 1).await?;
    write_tags(
        cloud,
        &group.name,
        &[(tag::STATE, UserState::Initializing.as_str().into()), (tag::INSTANCE, String::new())],
    )
    .await?;
    cloud.record(Metric::ColdPath);
    info!(group = %group.name, "cold launch requested");
    Ok(Acquired::Cold)
}

/// A pool instance this user now holds the claim lock on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub instance_id: String,
    /// Already detached from the pool (the first-healthy strategy detaches first).
    pub detached: bool,
}

/// Takes the claim lock on a healthy `InService` pool instance, with the configured
/// [`ClaimStrategy`].
///
/// Rendezvous (the default): candidates are ordered by a rendezvous hash of (user, instance): concurrent claimers
/// spread over the pool instead of all fighting for "the first healthy one", and a
/// re-run for the same user tries the same instance first, finding its own claim.
/// Returns `None` when the pool has nothing this user can claim.
pub async fn claim_from_pool<C: Cloud>(cloud: &C, cfg: &Config, user_id: &str) -> Result<Option<Claimed>, FlowError> {
    let mut conflicts = 0_u32;
    let claimed = match cfg.claim_strategy {
        ClaimStrategy::Rendezvous => try_claim(cloud, cfg, user_id, &mut conflicts)
            .await
            .map(|c| c.map(|instance_id| Claimed { instance_id, detached: false })),
        ClaimStrategy::FirstHealthy => first_healthy(cloud, cfg, user_id, &mut conflicts).await,
    };
    cloud.record(Metric::ClaimConflicts(conflicts));
    claimed
}

/// The original strategy, for comparison: take the first healthy `InService` instance
/// and detach it; a failed detach means another claimer got there first, so look
/// again. Under a burst every claimer aims at the same instance. The claim lock is
/// written after the detach (bookkeeping for the rest of the flow), which leaves a
/// crash window the rendezvous strategy does not have.
async fn first_healthy<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
    conflicts: &mut u32,
) -> Result<Option<Claimed>, FlowError> {
    for _ in 0..CLAIM_ROUNDS * CLAIM_TRIES_PER_ROUND {
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
            ClaimOutcome::HeldBy(owner) if owner == user_id => {
                return Ok(Some(Claimed { instance_id: instance_id.to_owned(), detached: true }));
            }
            ClaimOutcome::HeldBy(owner) => {
                warn!(user_id, instance_id, owner, "detached an instance someone else holds; handing it back");
                return_to_pool(cloud, cfg, instance_id).await?;
                *conflicts += 1;
            }
        }
    }
    warn!(user_id, conflicts, "lost every race for the first healthy instance");
    Ok(None)
}

async fn try_claim<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
    conflicts: &mut u32,
) -> Result<Option<String>, FlowError> {
    for _ in 0..CLAIM_ROUNDS {
        let pool = describe_pool(cloud, cfg, user_id).await?;
        let mut candidates: Vec<&str> =
            pool.members.iter().filter(|m| m.claimable()).map(|m| m.instance_id.as_str()).collect();
        cloud.record(Metric::PoolDepth(u32::try_from(candidates.len()).unwrap_or(u32::MAX)));
        if candidates.is_empty() {
            info!(user_id, conflicts, "pool has no claimable instance");
            return Ok(None);
        }
        candidates.sort_by_key(|id| std::cmp::Reverse(fnv1a(&[user_id, id])));
        for instance_id in candidates.into_iter().take(CLAIM_TRIES_PER_ROUND) {
            match cloud.claim(instance_id, user_id).await? {
                ClaimOutcome::Created => {
                    info!(user_id, instance_id, conflicts, "claimed pool instance");
                    return Ok(Some(instance_id.to_owned()));
                }
                ClaimOutcome::HeldBy(owner) if owner == user_id => {
                    info!(user_id, instance_id, "resuming own claim");
                    return Ok(Some(instance_id.to_owned()));
                }
                ClaimOutcome::HeldBy(_) => *conflicts += 1,
            }
        }
    }
    warn!(user_id, conflicts, "every pool candidate was claimed by someone else");
    Ok(None)
}

#[derive(Debug, PartialEq, Eq)]
enum Move {
    Attached,
    /// The instance is gone or taken: its claim is released; claim another.
    Lost,
}

/// Detaches the claimed instance from the pool (the pool refills itself) and attaches
/// it to the user's group. Every error AWS gives for a half-done move is recognised, so
/// a re-run after a crash anywhere in here completes it.
async fn move_instance<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_group: &str,
    instance_id: &str,
    user_id: &str,
    detached: bool,
) -> Result<Move, FlowError> {
    let detach = if detached { Ok(()) } else { cloud.detach_instance(&cfg.pool_group, instance_id).await };
    match detach {
        Ok(()) => info!(user_id, instance_id, "detached from pool"),
        Err(CloudError::NotInGroup { .. }) => {
            // Detached by an earlier run of ours (we hold the claim), or gone.
            match cloud.group_of_instance(instance_id).await? {
                Some(g) if g == user_group => return Ok(Move::Attached),
                Some(g) => {
                    warn!(user_id, instance_id, group = %g, "claimed instance is in another group");
                    return lose(cloud, instance_id).await;
                }
                None => info!(user_id, instance_id, "instance already out of the pool; attaching"),
            }
        }
        Err(CloudError::NotInService { message, .. }) => {
            warn!(user_id, instance_id, message, "claimed instance is leaving the pool");
            return lose(cloud, instance_id).await;
        }
        Err(e) => return Err(e.into()),
    }
    match cloud.attach_instance(user_group, instance_id).await {
        Ok(()) => Ok(Move::Attached),
        Err(CloudError::MaxSizeExceeded { message, .. }) => {
            // The user's group already has its host (a concurrent duplicate run): hand
            // this healthy instance back instead of leaving it outside every group.
            warn!(user_id, instance_id, message, "user group is full; returning instance");
            return_to_pool(cloud, cfg, instance_id).await?;
            Ok(Move::Lost)
        }
        Err(CloudError::Invalid { message, .. }) => {
            // Terminated under us, or refused for a reason we cannot fix. It is out of the
            // pool already: hand it back (if it still runs) so nothing is left outside.
            warn!(user_id, instance_id, message, "claimed instance cannot be attached; handing it back");
            match return_to_pool(cloud, cfg, instance_id).await {
                Ok(()) => {}
                Err(FlowError::Cloud(CloudError::Invalid { message, .. })) => {
                    info!(instance_id, message, "the instance no longer runs");
                    cloud.release(instance_id).await?;
                }
                Err(e) => return Err(e),
            }
            Ok(Move::Lost)
        }
        Err(CloudError::NotFound { resource }) => {
            return_to_pool(cloud, cfg, instance_id).await?;
            Err(FlowError::Inconsistent {
                user_id: user_id.to_owned(),
                message: format!("{resource} vanished while its instance was being attached"),
            })
        }
        Err(e) => Err(e.into()),
    }
}

async fn lose<C: Cloud>(cloud: &C, instance_id: &str) -> Result<Move, FlowError> {
    cloud.release(instance_id).await?;
    Ok(Move::Lost)
}

/// Puts a healthy detached instance back under the pool, then lets the pool terminate
/// it with a decrement, so the pool's size is unchanged and nothing runs outside a group.
pub(crate) async fn return_to_pool<C: Cloud>(cloud: &C, cfg: &Config, instance_id: &str) -> Result<(), FlowError> {
    cloud.attach_instance(&cfg.pool_group, instance_id).await?;
    match cloud.terminate_instance(instance_id, true).await {
        Ok(()) | Err(CloudError::NotInGroup { .. } | CloudError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    cloud.release(instance_id).await?;
    Ok(())
}
