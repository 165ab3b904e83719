//! Getting the user an instance: claim one from the pool, move it into the user's
//! group, or fall back to a cold launch. Shared by signup and by failover.

use serde::Serialize;
use tracing::{info, warn};

use super::lifecycle::{InitLock, init_sent_earlier, lock_init, record_earlier_init, record_init, user_init_request};
use super::pool_wait::wait_for_pool;
use super::{describe_pool, rendezvous_score, write_tags};
use crate::Config;
use crate::domain::{Path, UserRecord, UserState, tag};
use crate::error::{CloudError, FlowError};
use crate::metrics::Metric;
use crate::ports::{ClaimOutcome, Cloud, Group, MemberState, Membership, init_lock};
use crate::retry;

/// Claim attempts per look at the pool. Few: each try that loses costs a call, and a
/// later look with more candidates left lists the claims instead.
pub const CLAIM_TRIES_PER_ROUND: usize = 3;
pub const CLAIM_ROUNDS: usize = 2;
/// Looks at the pool per claim, each trying [`CLAIM_TRIES_PER_ROUND`] unclaimed
/// candidates; the looks stop as soon as no candidate is left. Ten: with as many
/// claimers as instances at once (a burst on a pool sized for it), five looks left a
/// few claimers cold while unclaimed instances remained (3 of 100 for one seed in 12).
pub const CLAIM_LOOKS: usize = 10;

/// What `acquire` achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "acquired", rename_all = "snake_case")]
pub enum Acquired {
    /// A pool instance is now in the user's group.
    Warm { instance_id: String },
    /// The user's group was asked to launch a fresh instance.
    Cold,
    /// The group already had its instance (a resumed or duplicated run).
    AlreadyAttached { instance_id: String },
    /// No pool instance to claim: the user waits for one (`POOL_WAIT_S`, see
    /// [`super::pool_wait`]), and looks again when a delayed re-drive brings it back; the
    /// cold path after `until_ms`.
    Waiting { until_ms: u64 },
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
    //    launch it asked for has started). Only record it. Not the instance the record
    //    still names: while claiming, that is the last attempt's, which the failover
    //    retired (a read soon after may still show it live).
    let previous = record.instance.as_deref().filter(|_| record.state == UserState::Claiming);
    if let Some(previous) = previous
        && group.members.iter().any(|m| m.live() && m.instance_id == previous)
    {
        // The failover that moved the record on died before it retired this instance
        // (and its retry finds the outcome handled). Retired now: left in the group, it
        // would hold the group's one place, and a cold launch would never start.
        info!(user_id, instance_id = previous, "retiring the previous attempt's instance a failover left behind");
        retire(cloud, previous).await?;
        cloud.release(previous).await?;
    }
    if let Some(member) = group.members.iter().find(|m| m.live() && Some(m.instance_id.as_str()) != previous) {
        let instance_id = member.instance_id.clone();
        info!(user_id, instance_id, "user group already has its instance");
        if record.path == Path::Warm {
            // Attached by a run that died before it recorded the init (a cold launch
            // records its path first): finish what it began.
            finish_warm(cloud, cfg, group, record, &instance_id, Attach::Earlier).await?;
            return Ok(Acquired::AlreadyAttached { instance_id });
        }
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

    let warm_allowed = record.path == Path::Warm && record.warm_allowed(cfg.warm_attempts);
    if warm_allowed {
        // 2. A claim from an earlier run that did not finish: finish moving it.
        if let Some(claimed) = record.claimed.as_deref()
            && move_instance(cloud, cfg, &group.name, claimed, user_id, MoveFrom::Resumed).await?.attached()
        {
            return finish_warm(cloud, cfg, group, record, claimed, Attach::Now).await;
        }
        // 3. Claim a fresh one. A lost move (the instance vanished under us) tries again.
        for _ in 0..CLAIM_ROUNDS {
            let Some(Claimed { instance_id, detached }) = cloud.claim_from_pool(cfg, user_id).await? else {
                break;
            };
            write_tags(cloud, &group.name, &[(tag::CLAIMED, instance_id.clone())]).await?;
            if move_instance(cloud, cfg, &group.name, &instance_id, user_id, MoveFrom::from(detached)).await?.attached()
            {
                return finish_warm(cloud, cfg, group, record, &instance_id, Attach::Now).await;
            }
        }
        if let Some(until_ms) = wait_for_pool(cloud, cfg, group, record).await? {
            return Ok(Acquired::Waiting { until_ms });
        }
        info!(user_id, attempt = record.attempt, "pool cannot serve; taking the cold path");
    } else {
        info!(user_id, attempt = record.attempt, "warm attempts used up; taking the cold path");
    }
    cold(cloud, group).await
}

/// A pool instance is in the user's group: its user-init is sent now, in this
/// invocation (a prepared instance's agent is online), rather than by lifecycle on the
/// attach's launch event: one invocation fewer on the warm path, and a death here is
/// retried with the signup message (`SIGNUP_RETRY_S`) instead of Lambda's asynchronous
/// retries a minute apart. The init is sent under the instance's init lock: a run that
/// resumes this one (a duplicated or re-driven message right behind it) finds it taken
/// even when its read of the record, and SSM's listing, miss the init; a lock left by a
/// run that died long ago is taken over, and SSM asked first. If SSM refuses (the agent
/// is not ready), the record says `initializing` with no command, and lifecycle or a
/// re-drive sends the init once the agent answers.
async fn finish_warm<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
    instance_id: &str,
    attach: Attach,
) -> Result<Acquired, FlowError> {
    let mut record = record.clone();
    record.path = Path::Warm;
    let acquired = Acquired::Warm { instance_id: instance_id.to_owned() };
    let lock = lock_init(cloud, &record, instance_id).await?;
    // An instance an earlier run attached may have had its init sent, recorded and
    // finished, and its lock released with the user's ready, all after this run read the
    // record (group tags lag their writes): ask SSM even when the lock was free.
    if (!matches!(lock, InitLock::Taken) || attach == Attach::Earlier)
        && let Some(earlier) = init_sent_earlier(cloud, cfg, instance_id).await?
    {
        // A run that died after sending it (this is its retry), or one right before this
        // (a duplicated or re-driven message behind it in the user's FIFO group).
        record_earlier_init(cloud, cfg, group, &record, &earlier, Some(Path::Warm), true).await?;
        return Ok(acquired);
    }
    if matches!(lock, InitLock::Busy) {
        // Locked moments ago, and SSM lists nothing yet: that run is sending it, or has
        // and records it (neither its record nor SSM's listing may show it yet), or died.
        // The message's retry looks again: it finds the init recorded, or the lock stale.
        return Err(FlowError::NotYet(format!(
            "another run is sending the user-init of {instance_id}; the retry looks again"
        )));
    }
    match cloud.send_command(&user_init_request(cfg, &record, instance_id)).await {
        Ok(command_id) => {
            record_init(cloud, &group.name, instance_id, &command_id, Some(Path::Warm)).await?;
            info!(group = %group.name, instance_id, command_id, attempt = record.attempt,
                "pool instance attached to user group; user-init sent");
        }
        Err(CloudError::AgentNotReady { .. }) => {
            // Whoever sends it later (lifecycle, a re-drive) takes the lock afresh; the
            // claim stays with the user.
            cloud.release(&init_lock(instance_id)).await?;
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
            warn!(group = %group.name, instance_id, "pool instance attached, but its SSM agent is not ready; \
                lifecycle or a re-drive sends the init");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(acquired)
}

/// Who attached the instance [`finish_warm`] sends the init of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attach {
    /// This run, just now: no init can have been sent to it for this user.
    Now,
    /// An earlier run (found in the user's group): it may have sent the init too.
    Earlier,
}

/// The cold path: the user's group launches a fresh instance from its launch template.
/// The record moves first (`initializing`, `path=cold`: a re-run knows not to claim),
/// in one write, then the launch is asked for: two calls, each a chance to die. A run
/// that died between the two leaves a record whose launch was never asked for, which
/// [`finish_cold`] completes (on the message's retry; the sweep re-drives it too).
async fn cold<C: Cloud>(cloud: &C, group: &Group) -> Result<Acquired, FlowError> {
    write_tags(
        cloud,
        &group.name,
        &[
            (tag::STATE, UserState::Initializing.as_str().into()),
            (tag::PATH, Path::Cold.as_str().into()),
            (tag::CLAIMED, String::new()),
            (tag::INSTANCE, String::new()),
        ],
    )
    .await?;
    cloud.set_desired_capacity(&group.name, 1).await?;
    cloud.record(Metric::ColdPath);
    info!(group = %group.name, "cold launch requested");
    Ok(Acquired::Cold)
}

/// A cold attempt recorded but whose launch was never asked for (`initializing`,
/// `path=cold`, desired 0, no instance): asks for it. `false` when the record is
/// anything else.
pub(crate) async fn finish_cold<C: Cloud>(cloud: &C, group: &Group, record: &UserRecord) -> Result<bool, FlowError> {
    let unasked = record.state == UserState::Initializing
        && record.path == Path::Cold
        && record.instance.is_none()
        && group.desired_capacity == 0
        && !group.members.iter().any(crate::ports::Member::live);
    if unasked {
        info!(group = %group.name, "cold launch recorded but never asked for; asking now");
        cloud.set_desired_capacity(&group.name, 1).await?;
        cloud.record(Metric::ColdPath);
    }
    Ok(unasked)
}

/// A pool instance this user now holds the claim lock on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub instance_id: String,
    /// Already detached from the pool (a strategy that detaches before it claims).
    pub detached: bool,
}

/// The flow's claim: candidates are the pool's healthy `InService` members ordered by
/// [`rendezvous_score`] for this user, so concurrent claimers spread over the pool
/// instead of all fighting for "the first healthy one", and a re-run for the same user
/// tries the same instance first and finds its own claim. The claim is a Parameter
/// Store lock written before anyone detaches. Returns `None` when the pool has nothing
/// this user can claim. (This is [`Cloud::claim_from_pool`]'s default; only the
/// simulator swaps in another strategy, to measure the original design against it.)
pub async fn rendezvous_claim<C: Cloud>(cloud: &C, cfg: &Config, user_id: &str) -> Result<Option<Claimed>, FlowError> {
    let mut conflicts = 0_u32;
    let claimed = try_claim(cloud, cfg, user_id, &mut conflicts).await;
    cloud.record(Metric::ClaimConflicts(conflicts));
    Ok(claimed?.map(|instance_id| Claimed { instance_id, detached: false }))
}

async fn try_claim<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
    conflicts: &mut u32,
) -> Result<Option<String>, FlowError> {
    // Every call can be an invocation's last, so a claim that loses spends as few as it
    // can. An instance held by someone else is not tried again. The first try of the
    // first look reads the holder when it is refused: the instance this user ranks
    // first is where a run of its own that died between its claim and its record left
    // that claim (rendezvous order is stable). Other refusals are not read (one call,
    // not two). A look after a lost round lists the claims (a call per ten) only when
    // more candidates are left than it would try; the listing also finds a claim of
    // this user's own. (One left on an instance this user ranks lower and never reaches
    // is released by the sweep's housekeeping.)
    let mut lost: Vec<String> = Vec::new();
    for round in 0..CLAIM_LOOKS {
        let pool = describe_pool(cloud, cfg, user_id).await?;
        if super::draining(&pool) {
            info!(user_id, "the pool is draining; it hands out no instance");
            return Ok(None);
        }
        // Only instances launched from our launch template: one attached to the pool from
        // elsewhere (by hand, or by someone who should not) is never given to a user.
        let ours = |m: &&crate::ports::Member| m.launch_template.as_deref() == Some(cfg.launch_template.as_str());
        let claimable: Vec<&str> =
            pool.members.iter().filter(ours).filter(|m| m.claimable()).map(|m| m.instance_id.as_str()).collect();
        let mut candidates: Vec<&str> = claimable.iter().copied().filter(|id| !lost.iter().any(|l| l == id)).collect();
        if round > 0 && candidates.len() > CLAIM_TRIES_PER_ROUND {
            for claim in cloud.list_claims().await? {
                if claim.owner == user_id && claimable.contains(&claim.instance_id.as_str()) {
                    info!(user_id, instance_id = claim.instance_id, "resuming own claim");
                    return Ok(Some(claim.instance_id));
                }
                lost.push(claim.instance_id);
            }
            candidates.retain(|id| !lost.iter().any(|l| l == id));
        }
        cloud.record(Metric::PoolDepth(u32::try_from(candidates.len()).unwrap_or(u32::MAX)));
        if candidates.is_empty() {
            info!(user_id, conflicts, "pool has no claimable instance");
            return Ok(None);
        }
        candidates.sort_by_key(|id| std::cmp::Reverse(rendezvous_score(user_id, id)));
        for (i, instance_id) in candidates.into_iter().take(CLAIM_TRIES_PER_ROUND).enumerate() {
            let won = if round == 0 && i == 0 {
                match cloud.claim(instance_id, user_id).await? {
                    ClaimOutcome::Created => true,
                    ClaimOutcome::HeldBy(claim) if claim.owner == user_id => {
                        info!(user_id, instance_id, "resuming own claim");
                        return Ok(Some(instance_id.to_owned()));
                    }
                    ClaimOutcome::HeldBy(_) => false,
                }
            } else {
                cloud.claim_if_unclaimed(instance_id, user_id).await?
            };
            if won {
                info!(user_id, instance_id, conflicts, "claimed pool instance");
                return Ok(Some(instance_id.to_owned()));
            }
            *conflicts += 1;
            lost.push(instance_id.to_owned());
        }
    }
    warn!(user_id, conflicts, "every pool candidate was claimed by someone else");
    Ok(None)
}

/// `DetachInstances` of a claimed pool member (the pool launches a replacement).
async fn detach_from_pool<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
    instance_id: &str,
) -> Result<(), FlowError> {
    match cloud.detach_instance(&cfg.pool_group, instance_id).await {
        Ok(()) => info!(user_id, instance_id, "detaching from pool"),
        // Detached (or detaching) by an earlier run of ours, since we hold the claim, or
        // leaving the pool: where the instance is now decides.
        Err(CloudError::NotInGroup { .. } | CloudError::NotInService { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Where a move starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoveFrom {
    /// A fresh claim on a pool member: detach it.
    Pool,
    /// Detached already (a strategy that detaches before it claims).
    Detached,
    /// A claim an earlier run recorded: it may have detached it, or not got that far.
    Resumed,
}

impl From<bool> for MoveFrom {
    fn from(detached: bool) -> Self {
        if detached { Self::Detached } else { Self::Pool }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Move {
    /// Attached now.
    Attached,
    /// Found in the user's group already: an earlier run attached it.
    WasAttached,
    /// The instance is gone or taken: its claim is released; claim another.
    Lost,
}

impl Move {
    /// Whether the instance is in the user's group (this run or an earlier one put it
    /// there).
    fn attached(&self) -> bool {
        matches!(self, Self::Attached | Self::WasAttached)
    }
}

/// Detaches the claimed instance from the pool (the pool refills itself), waits until
/// the detach is done, and attaches it to the user's group. Every error AWS gives for a half-done move is recognised, so
/// a re-run after a crash anywhere in here completes it.
async fn move_instance<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_group: &str,
    instance_id: &str,
    user_id: &str,
    from: MoveFrom,
) -> Result<Move, FlowError> {
    // A resumed move looks first: the run that failed most likely detached it already
    // (a detach longer than the wait is handed to the retry), and asking again would be
    // a second `DetachInstances` for one claim.
    let settled = match from {
        MoveFrom::Pool => {
            detach_from_pool(cloud, cfg, user_id, instance_id).await?;
            wait_detached(cloud, instance_id, Some(&cfg.pool_group)).await?
        }
        MoveFrom::Detached => wait_detached(cloud, instance_id, Some(&cfg.pool_group)).await?,
        MoveFrom::Resumed => match cloud.instance_membership(instance_id).await? {
            Some(m) if m.group == cfg.pool_group && m.state == MemberState::InService => {
                detach_from_pool(cloud, cfg, user_id, instance_id).await?;
                wait_detached(cloud, instance_id, Some(&cfg.pool_group)).await?
            }
            Some(m) if m.state == MemberState::Detaching => {
                wait_detached(cloud, instance_id, Some(&cfg.pool_group)).await?
            }
            seen => seen,
        },
    };
    // AWS detaches asynchronously: the instance stays listed in the pool, `Detaching`,
    // and cannot be attached anywhere until it is out.
    match settled {
        None => {}
        Some(m) if m.group == user_group => return Ok(Move::WasAttached),
        Some(m) if m.group == cfg.pool_group && matches!(m.state, MemberState::Detaching | MemberState::InService) => {
            // Still detaching after the wait (or, read too soon after our detach, still
            // shown `InService`): keep the claim (the instance is on its way out of the
            // pool, ours); the retry of this message resumes the move here.
            return Err(FlowError::NotYet(format!(
                "{instance_id} is still detaching from {}; the move resumes on the retry",
                m.group
            )));
        }
        Some(m) => {
            // Leaving the pool some other way (terminating), or taken into another group.
            warn!(user_id, instance_id, group = %m.group, state = ?m.state, "claimed instance is not ours to move");
            return lose(cloud, instance_id).await;
        }
    }
    match cloud.attach_instance(user_group, instance_id).await {
        Ok(()) => Ok(Move::Attached),
        Err(CloudError::AlreadyInGroup { message, .. }) => {
            // The attach's answer is the truth, and the listing we acted on lagged it: an
            // earlier run attached it (its record write may not show yet either), or it
            // is still leaving the pool, or another group took it.
            match membership_shown(cloud, instance_id).await? {
                Some(m) if m.group == user_group => {
                    info!(
                        user_id,
                        instance_id, aws_message = %message, "attach refused: an earlier run attached the instance already"
                    );
                    Ok(Move::WasAttached)
                }
                Some(m) if m.group == cfg.pool_group => Err(FlowError::NotYet(format!(
                    "{instance_id} is still in {} ({:?}); the move resumes on the retry",
                    m.group, m.state
                ))),
                Some(m) => {
                    warn!(user_id, instance_id, group = %m.group, aws_message = %message, "claimed instance was taken into another group");
                    lose(cloud, instance_id).await
                }
                None => Err(FlowError::NotYet(format!(
                    "{instance_id} is in a group Auto Scaling does not list yet; the move resumes on the retry"
                ))),
            }
        }
        Err(CloudError::MaxSizeExceeded { message, .. }) => {
            // The user's group already has its host (a concurrent duplicate run): hand
            // this healthy instance back instead of leaving it outside every group.
            warn!(user_id, instance_id, aws_message = %message, "user group is full; returning instance");
            return_to_pool(cloud, cfg, instance_id).await?;
            Ok(Move::Lost)
        }
        Err(CloudError::Invalid { message, .. }) => {
            // Terminated under us, or refused for a reason we cannot fix. It is out of the
            // pool already: hand it back (if it still runs) so nothing is left outside.
            warn!(user_id, instance_id, aws_message = %message, "claimed instance cannot be attached; handing it back");
            match return_to_pool(cloud, cfg, instance_id).await {
                Ok(()) => {}
                Err(FlowError::Cloud(CloudError::Invalid { message, .. })) => {
                    info!(instance_id, aws_message = %message, "the instance no longer runs");
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

/// Where the instance is once it is no longer `Detaching` (or still detaching when the
/// [`retry::detach_poll`] schedule runs out): `None` when it is in no group. With
/// `detached_from`, the group we just asked to detach it: shown `InService` there is
/// the state from before our detach (`Describe*` is eventually consistent), so it is
/// waited for too.
async fn wait_detached<C: Cloud>(
    cloud: &C,
    instance_id: &str,
    detached_from: Option<&str>,
) -> Result<Option<Membership>, FlowError> {
    let mut delays = retry::detach_poll();
    loop {
        let membership = cloud.instance_membership(instance_id).await?;
        let leaving = membership.as_ref().is_some_and(|m| {
            m.state == MemberState::Detaching
                || (m.state == MemberState::InService && detached_from == Some(m.group.as_str()))
        });
        match (leaving, delays.next()) {
            (true, Some(delay)) => {
                cloud.sleep_ms(delay.as_millis() as u64).await;
            }
            _ => return Ok(membership),
        }
    }
}

/// The instance's membership, read again ([`retry::consistency_reread`]) while it shows
/// none: for an instance AWS just said is in a group.
async fn membership_shown<C: Cloud>(cloud: &C, instance_id: &str) -> Result<Option<Membership>, FlowError> {
    let mut delays = retry::consistency_reread();
    loop {
        let membership = cloud.instance_membership(instance_id).await?;
        match (&membership, delays.next()) {
            (None, Some(delay)) => cloud.sleep_ms(delay.as_millis() as u64).await,
            _ => return Ok(membership),
        }
    }
}

async fn lose<C: Cloud>(cloud: &C, instance_id: &str) -> Result<Move, FlowError> {
    cloud.release(instance_id).await?;
    Ok(Move::Lost)
}

/// Puts a healthy detached instance back under the pool, then lets the pool terminate
/// it with a decrement, so the pool's size is unchanged and nothing runs outside a group.
/// An instance still `Detaching` is waited for first (an attach before the detach is done
/// is refused); one that is already in a group (an earlier hand-back attached it and then
/// died) is only retired from there.
pub async fn return_to_pool<C: Cloud>(cloud: &C, cfg: &Config, instance_id: &str) -> Result<(), FlowError> {
    match wait_detached(cloud, instance_id, None).await? {
        None => {
            cloud.attach_instance(&cfg.pool_group, instance_id).await?;
            retire(cloud, instance_id).await?;
        }
        Some(m) if m.state == MemberState::Detaching => {
            return Err(FlowError::NotYet(format!(
                "{instance_id} is still detaching from {}; it is handed back on the retry",
                m.group
            )));
        }
        Some(_) => retire(cloud, instance_id).await?,
    }
    cloud.release(instance_id).await?;
    Ok(())
}

/// Terminates an instance of a group for good: with a decrement, so the group does not
/// replace it, unless the group is at its `MinSize` (the pool-sizer may have lowered the
/// pool's desired capacity since the instance was attached), where AWS refuses the
/// decrement; then without it, and the group launches a replacement it needs anyway.
/// An instance already gone is fine.
pub async fn retire<C: Cloud>(cloud: &C, instance_id: &str) -> Result<(), FlowError> {
    let result = match cloud.terminate_instance(instance_id, true).await {
        Err(CloudError::BelowMinSize { group, message }) => {
            info!(instance_id, group, aws_message = %message, "group at its MinSize; terminating without the decrement");
            cloud.terminate_instance(instance_id, false).await
        }
        other => other,
    };
    match result {
        Ok(()) | Err(CloudError::NotInGroup { .. } | CloudError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
