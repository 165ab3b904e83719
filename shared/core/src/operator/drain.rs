//! `warmpool drain` and `warmpool resume`: take the pool (both tiers) to zero safely,
//! and bring it back as it was.
//!
//! A drain first marks the pool group ([`tag::DRAINING`], whose value keeps the sizes to
//! come back to): from then on a signup claims nothing from the pool and waits for no
//! refill (it goes cold), and the pool-sizer leaves the pool alone. Then it waits until no
//! claim is left on an instance still in the pool (a move in flight finishes: its detach
//! and attach take seconds), and only then sets the pool's sizes to zero, and its warm
//! pool's, so Auto Scaling terminates no instance a user is being given. Every step is
//! safe to repeat: a second drain keeps the sizes the first one saved, and goes on from
//! where it is. A resume puts the saved sizes back and removes the mark; with no mark it
//! does nothing.

use serde::Serialize;

use super::{Deployment, OperatorError, pool_group};
use crate::domain::tag;
use crate::ports::{Cloud, Group, MemberState, WarmPoolSize};

/// The sizes a drain saved: the pool's, and its warm pool's when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SavedSizes {
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    /// The warm pool's `MinSize` and `MaxGroupPreparedCapacity`.
    pub warm: Option<(u32, u32)>,
}

impl SavedSizes {
    /// The mark's value: `min,max,desired` and, with a warm pool, `;warm=min,max`.
    #[must_use]
    pub fn encode(&self) -> String {
        let base = format!("{},{},{}", self.min, self.max, self.desired);
        match self.warm {
            Some((min, max)) => format!("{base};warm={min},{max}"),
            None => base,
        }
    }

    /// Reads a mark's value; `None` when it is not one [`encode`](Self::encode) wrote.
    #[must_use]
    pub fn decode(value: &str) -> Option<Self> {
        let (base, warm) = match value.split_once(";warm=") {
            Some((base, warm)) => (base, Some(warm)),
            None => (value, None),
        };
        let numbers = |s: &str| -> Option<Vec<u32>> { s.split(',').map(|n| n.trim().parse().ok()).collect() };
        let [min, max, desired] = numbers(base)?[..] else { return None };
        let warm = match warm {
            None => None,
            Some(w) => {
                let [min, max] = numbers(w)?[..] else { return None };
                Some((min, max))
            }
        };
        Some(Self { min, max, desired, warm })
    }
}

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// The sizes `resume` will restore.
    pub saved: SavedSizes,
    /// Whether this run marked the pool (false: an earlier drain had).
    pub marked_now: bool,
    /// Moves that were in flight when the drain began waiting for them.
    pub moves_waited_for: usize,
}

/// What a resume did: the sizes it restored, or `None` when the pool was not drained.
pub type ResumeReport = Option<SavedSizes>;

/// Instances of the pool a move may still take: claimed and still in the group, or
/// being detached from it.
async fn moves_in_flight<C: Cloud>(cloud: &C, pool: &Group) -> Result<Vec<String>, OperatorError> {
    let claims = cloud.list_claims().await?;
    Ok(pool
        .members
        .iter()
        .filter(|m| m.state == MemberState::Detaching || claims.iter().any(|c| c.instance_id == m.instance_id))
        .map(|m| m.instance_id.clone())
        .collect())
}

/// Drains the pool: mark, wait for the moves in flight (at most `wait_s`, looking every
/// `poll_s`), then both tiers to zero.
pub async fn drain<C: Cloud>(
    cloud: &C,
    dep: &Deployment,
    wait_s: u64,
    poll_s: u64,
) -> Result<DrainReport, OperatorError> {
    let group = pool_group(cloud, dep).await?;
    let warm = cloud.describe_warm_pool(&dep.pool_group).await?;
    let (saved, marked_now) = if let Some(saved) = group.tags.get(tag::DRAINING).and_then(|v| SavedSizes::decode(v)) {
        (saved, false)
    } else {
        let saved = SavedSizes {
            min: group.min_size,
            max: group.max_size,
            desired: group.desired_capacity,
            warm: warm.as_ref().map(|w| (w.min_size, w.max_group_prepared_capacity.unwrap_or(group.max_size))),
        };
        cloud.tag_group(&dep.pool_group, &[(tag::DRAINING.to_owned(), saved.encode())]).await?;
        tracing::info!(pool = %dep.pool_group, saved = %saved.encode(), "pool marked draining");
        (saved, true)
    };
    let started = cloud.now_ms();
    let mut waited_for = 0;
    // Read after the mark: a claim made before it shows in this read.
    let group = loop {
        let group = pool_group(cloud, dep).await?;
        let moving = moves_in_flight(cloud, &group).await?;
        waited_for = waited_for.max(moving.len());
        if moving.is_empty() {
            break group;
        }
        let waited = cloud.now_ms().saturating_sub(started) / 1000;
        if waited >= wait_s {
            return Err(OperatorError::MovesInFlight {
                pool: dep.pool_group.clone(),
                instances: moving,
                waited_s: waited,
            });
        }
        cloud.sleep_ms(poll_s * 1000).await;
    };
    if group.min_size != 0 || group.max_size != 0 || group.desired_capacity != 0 {
        cloud.update_group_sizes(&dep.pool_group, 0, 0, 0).await?;
    }
    if let (Some(state), Some(w)) = (warm_state(dep, warm.as_ref()), warm.as_ref())
        && (w.min_size != 0 || w.max_group_prepared_capacity != Some(0))
    {
        cloud
            .put_warm_pool(&dep.pool_group, state, WarmPoolSize { min_size: 0, max_group_prepared_capacity: 0 })
            .await?;
    }
    Ok(DrainReport { saved, marked_now, moves_waited_for: waited_for })
}

/// The warm pool's `PoolState` to keep on `PutWarmPool` (which resets what it is not
/// given): the stack's `PoolWarmTier`, when the pool has a warm pool.
fn warm_state<'a>(dep: &'a Deployment, warm: Option<&crate::ports::WarmPool>) -> Option<&'a str> {
    warm.map(|_| dep.warm_pool_state.as_deref().unwrap_or("Stopped"))
}

/// Resumes a drained pool: the saved sizes back, then the mark removed (so the pool-sizer
/// and the signups take over from sizes that are already right).
pub async fn resume<C: Cloud>(cloud: &C, dep: &Deployment) -> Result<ResumeReport, OperatorError> {
    let group = pool_group(cloud, dep).await?;
    let Some(mark) = group.tags.get(tag::DRAINING) else { return Ok(None) };
    let saved = SavedSizes::decode(mark)
        .ok_or_else(|| OperatorError::BadMark { pool: dep.pool_group.clone(), value: mark.clone() })?;
    cloud.update_group_sizes(&dep.pool_group, saved.min, saved.max, saved.desired).await?;
    if let Some((min_size, max_group_prepared_capacity)) = saved.warm {
        let warm = cloud.describe_warm_pool(&dep.pool_group).await?;
        if let Some(state) = warm_state(dep, warm.as_ref()) {
            cloud.put_warm_pool(&dep.pool_group, state, WarmPoolSize { min_size, max_group_prepared_capacity }).await?;
        }
    }
    cloud.untag_group(&dep.pool_group, &[tag::DRAINING]).await?;
    Ok(Some(saved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_sizes_round_trip_and_a_foreign_mark_is_refused() {
        for saved in [
            SavedSizes { min: 1, max: 60, desired: 12, warm: None },
            SavedSizes { min: 0, max: 5, desired: 0, warm: Some((10, 10)) },
        ] {
            assert_eq!(SavedSizes::decode(&saved.encode()), Some(saved));
        }
        for bad in ["", "yes", "1,2", "1,2,3,4", "1,2,x", "1,2,3;warm=4", "1,2,3;warm=a,b"] {
            assert_eq!(SavedSizes::decode(bad), None, "{bad:?}");
        }
    }
}
