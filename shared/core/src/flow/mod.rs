//! The flow: plain async functions over the [`Cloud`](crate::ports::Cloud) ports.
//!
//! Every step is idempotent and resumable: the user's record lives in the tags of the
//! user's group, each step writes only the keys it changes, and a step re-run after a
//! crash (SQS redelivery, Lambda async retry) finds where the last run stopped.

pub mod acquire;
pub mod command_status;
mod erlang;
pub mod lifecycle;
pub mod outside;
mod pool_hook;
pub mod pool_wait;
pub mod reconcile;
mod repair;
pub mod retention;
pub mod signup;
pub mod sizer;
pub mod sizer_record;
pub mod warm_tier;

use crate::Config;
use crate::domain::{Id, UserRecord, tag};
use crate::error::{CloudError, FlowError};
use crate::ports::{Cloud, Group};
use crate::retry;

/// Whose an instance is, by the group Auto Scaling lists it in.
pub(crate) enum InstanceOwner {
    User(Id),
    /// In no group (left, or terminated).
    NoGroup,
    /// In a group that is not a user's (the pool, or another).
    NotAUser,
}

/// The owner of `instance_id`: one `DescribeAutoScalingInstances`, the group's user.
pub(crate) async fn owner_of_instance<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    instance_id: &str,
) -> Result<InstanceOwner, FlowError> {
    let Some(membership) = cloud.instance_membership(instance_id).await? else {
        return Ok(InstanceOwner::NoGroup);
    };
    match cfg.user_of_group(&membership.group) {
        Some(raw) => Ok(InstanceOwner::User(Id::parse("user group's user id", raw)?)),
        None => Ok(InstanceOwner::NotAUser),
    }
}

/// Reads a user's group and record. `Ok(None)` when the group does not exist or does
/// not carry a warmpool record.
pub(crate) async fn load_user<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
) -> Result<Option<(Group, UserRecord)>, FlowError> {
    let name = cfg.user_group(user_id);
    let Some(group) = cloud.describe_group(&name).await? else {
        return Ok(None);
    };
    match UserRecord::from_tags(&group.tags) {
        Some(record) if record.user_id == user_id => Ok(Some((group, record))),
        Some(record) => Err(FlowError::Inconsistent {
            user_id: user_id.to_owned(),
            message: format!("group {name} carries the record of user {:?}, not this user's", record.user_id),
        }),
        None => Err(FlowError::Inconsistent {
            user_id: user_id.to_owned(),
            message: format!("group {name} exists but its warmpool tags are missing or unreadable"),
        }),
    }
}

/// [`load_user`] until `shown` holds of what it reads, reading again on the
/// [`retry::consistency_reread`] schedule: for a change an event reports a moment after
/// it happened, which `DescribeAutoScalingGroups` may not show yet. Returns the last read.
pub(crate) async fn load_user_showing<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    user_id: &str,
    shown: impl Fn(&Group, &UserRecord) -> bool,
) -> Result<Option<(Group, UserRecord)>, FlowError> {
    let mut delays = retry::consistency_reread();
    loop {
        let read = load_user(cloud, cfg, user_id).await?;
        let Some(delay) = delays.next() else { return Ok(read) };
        match &read {
            Some((group, record)) if !shown(group, record) => cloud.sleep_ms(delay.as_millis() as u64).await,
            _ => return Ok(read),
        }
    }
}

/// The pool group, which must exist: a missing one is a deployment mistake
/// (`POOL_ASG_NAME`), reported for `user_id` (empty when no user is involved).
pub async fn describe_pool<C: Cloud>(cloud: &C, cfg: &Config, user_id: &str) -> Result<Group, FlowError> {
    cloud.describe_group(&cfg.pool_group).await?.ok_or_else(|| FlowError::Inconsistent {
        user_id: user_id.to_owned(),
        message: format!("the pool group {} does not exist; check POOL_ASG_NAME", cfg.pool_group),
    })
}

/// Whether an operator is draining the pool (`warmpool drain`: the pool group carries
/// [`tag::DRAINING`](crate::domain::tag::DRAINING)): no instance is handed out, nobody
/// waits for a refill, and the pool-sizer leaves the pool alone.
#[must_use]
pub fn draining(pool: &Group) -> bool {
    pool.tags.contains_key(tag::DRAINING)
}

/// Writes some keys of the record (and only those) to the group's tags, with the
/// time of the write.
pub(crate) async fn write_tags<C: Cloud>(cloud: &C, group: &str, tags: &[(&str, String)]) -> Result<(), CloudError> {
    let mut owned: Vec<(String, String)> = tags.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    owned.push((tag::UPDATED_AT.to_owned(), cloud.now_ms().to_string()));
    cloud.tag_group(group, &owned).await
}

/// Waits, within the configured budget (`AGENT_WAIT_S`, on the clock, API calls
/// included), until the SSM agent of `instance_id` is online, polling on the
/// [`retry::agent_poll`] schedule. Returns whether it had to wait (the agent was not
/// online at the first look).
pub(crate) async fn wait_for_agent<C: Cloud>(cloud: &C, cfg: &Config, instance_id: &str) -> Result<bool, FlowError> {
    let deadline = cloud.now_ms() + u64::from(cfg.agent_wait_s) * 1000;
    let mut delays = retry::agent_poll();
    let mut polls = 0_u32;
    loop {
        polls += 1;
        if cloud.agent_online(instance_id).await? {
            let waited = polls > 1;
            if waited {
                tracing::info!(instance_id, polls, "SSM agent came online");
            }
            return Ok(waited);
        }
        let delay_ms = delays.next().map_or(u64::MAX, |d| d.as_millis() as u64);
        if cloud.now_ms().saturating_add(delay_ms) > deadline {
            return Err(FlowError::NotYet(format!(
                "the SSM agent of {instance_id} is not online after {polls} checks over {}s; \
                 the event will be retried",
                cfg.agent_wait_s
            )));
        }
        cloud.sleep_ms(delay_ms).await;
    }
}

/// The rendezvous (highest-random-weight) score of `instance_id` for `user_id`: each
/// claimer ranks the pool's instances by it and tries them best first, so concurrent
/// claimers spread over the pool, and a re-run for the same user ranks the same instance
/// first. 64-bit FNV-1a over both ids (each followed by a 0xff separator, which no id
/// contains): stable across processes and versions, which a rendezvous order must be.
#[must_use]
pub fn rendezvous_score(user_id: &str, instance_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [user_id, instance_id] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::rendezvous_score;

    #[test]
    fn the_rendezvous_score_is_pinned() {
        // Test vectors: a change of the hash would reorder every claimer's candidates
        // during a rolling deployment, and is a breaking change.
        assert_eq!(rendezvous_score("", ""), 0x0a99_c907_b6f6_4763);
        assert_eq!(rendezvous_score("u-0001", "i-0a1b2c3d00000001"), 0xb93a_756a_ebbe_62cd);
        assert_ne!(rendezvous_score("ab", "c"), rendezvous_score("a", "bc"), "the separator keeps ids apart");
    }
}
