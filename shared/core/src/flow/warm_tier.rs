//! The pool's second tier (`POOL_WARM_TIER`): an EC2 Auto Scaling warm pool on the pool
//! group, of prepared instances kept stopped (or hibernated), paying for their volumes
//! only.
//!
//! Two stocks in series. A claim detaches a running pool instance; the group, keeping
//! its desired capacity, starts a warmed instance to replace it (a minute or two: the
//! start, the agent's return, the hook), and the warm pool, one short, launches and
//! prepares a new instance into itself (the full launch and pool-prep, some ten
//! minutes). The running tier is a loss system refilled in the start time, sized as the
//! single-tier pool is (see [`super::sizer`]) with that refill; the warm tier is one
//! refilled in the preparation time, sized with Erlang B at the same target: while it
//! holds a prepared instance, the running pool refills in a minute, and when it is empty
//! the group launches and prepares a new instance itself.
//!
//! `PutWarmPool` sets both `MinSize` and `MaxGroupPreparedCapacity` to the warm tier's
//! size, only when either differs. Auto Scaling keeps the warm pool at the larger of
//! `MinSize` and `MaxGroupPreparedCapacity` less the group's desired capacity; with the
//! two equal the size is absolute (the API reference's words), whatever the running
//! pool's desired capacity does between two runs.

use tracing::{info, warn};

use super::sizer::recommend;
use crate::Config;
use crate::error::FlowError;
use crate::ports::{Cloud, WarmPoolSize};

/// What one run decided for the warm tier.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WarmTierDecision {
    /// Estimated preparation time (launch to prepared, s).
    pub refill_s: f64,
    /// Completed launches the estimate rests on.
    pub launches_seen: usize,
    /// The unclamped warm tier size for the target.
    pub computed: u32,
    /// Prepared instances parked in the warm pool now.
    pub ready: u32,
    /// The warm pool's `MinSize` before this run.
    pub previous: u32,
    /// Its `MinSize` after this run.
    pub size: u32,
}

/// What the warm tier is sized from: the signups, and the pool's launches into it.
pub(crate) struct Stock<'a> {
    pub(crate) arrivals: &'a [u64],
    pub(crate) now_ms: u64,
    /// Mean preparation time of the pool's recent new instances (s).
    pub(crate) prep_s: f64,
    pub(crate) preps_seen: usize,
    /// The history is too young to shrink on (see [`super::sizer::size_pool`]).
    pub(crate) young: bool,
}

/// Sizes the warm tier, within the running pool's bounds (`SIZER_MAX_SIZE`; nothing while the pool group's `MaxSize` is 0, drained).
/// `None` when the group has no warm pool (the template creates it with the pool; a
/// pool-sizer configured for one that is missing says so and sizes the running pool
/// alone).
pub(crate) async fn size_warm_tier<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    stock: &Stock<'_>,
    pool_max_size: u32,
) -> Result<Option<WarmTierDecision>, FlowError> {
    let Some(pool_state) = cfg.sizer.warm_tier.pool_state() else {
        return Ok(None);
    };
    let Some(current) = cloud.describe_warm_pool(&cfg.pool_group).await? else {
        warn!(
            pool = %cfg.pool_group,
            "POOL_WARM_TIER is set but the pool group has no warm pool; sizing the running pool alone \
             (check the stack's PoolWarmTier)"
        );
        return Ok(None);
    };
    // Misses of the warm tier do not wait: the group launches anew (Erlang B).
    let (_, computed) = recommend(stock.arrivals, stock.now_ms, stock.prep_s, false, &cfg.sizer);
    let wanted = if stock.young { computed.max(current.min_size) } else { computed };
    let size = if pool_max_size == 0 { 0 } else { wanted.min(cfg.sizer.max_size) };
    let target = WarmPoolSize { min_size: size, max_group_prepared_capacity: size };
    let ready = current.instances.iter().filter(|i| i.ready()).count() as u32;
    if current.min_size != target.min_size
        || current.max_group_prepared_capacity != Some(target.max_group_prepared_capacity)
    {
        cloud.put_warm_pool(&cfg.pool_group, pool_state, target).await?;
        info!(
            pool = %cfg.pool_group,
            previous = current.min_size,
            size,
            prep_s = stock.prep_s,
            "warm tier resized"
        );
    }
    Ok(Some(WarmTierDecision {
        refill_s: stock.prep_s,
        launches_seen: stock.preps_seen,
        computed,
        ready,
        previous: current.min_size,
        size,
    }))
}
