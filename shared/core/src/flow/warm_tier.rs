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

use super::sizer::{recommend_at, scale_in_window};
use crate::error::FlowError;
use crate::ports::{Cloud, WarmPoolSize};
use crate::{Config, SizerConfig};

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

/// How much rarer the warm tier's misses are than the running pool's.
pub const WARM_MISS_FACTOR: f64 = 10.0;

/// How long the warm tier keeps the largest size recommended (s) before it shrinks.
/// Its forecast covers a ten-minute preparation, so it turns with every clump of
/// signups; a warm tier that follows it down is empty when the next clump comes, and
/// the running pool then refills in ten minutes instead of two. A parked instance costs
/// its volume only (8 GB of gp3, about $0.0009 an hour, against $0.0036 to prepare one
/// again). Measured on the simulated diurnal day, seeds 1–3: with no hold 0.9937,
/// 0.9839 and 0.9787 hits at the first look for $9.74 a day on average; an hour's hold,
/// 0.9949, 0.9925 and 0.9944 for $9.89; four hours', no better hits for $10.15 (more
/// instances parked, and prepared, than the day needs).
pub const WARM_HOLD_S: u64 = 3600;

/// The warm tier's target: a running pool sized for its start time has no buffer for
/// a ten-minute refill, so a warm-tier miss is close to a user's miss; and a parked
/// instance costs its volume only (an eighth of a cent an hour against two cents
/// running), so the warm tier aims [`WARM_MISS_FACTOR`] times fewer misses.
#[must_use]
pub fn warm_target(target: f64) -> f64 {
    1.0 - (1.0 - target) / WARM_MISS_FACTOR
}

/// The warm tier's size for the signups seen by `now`, refilled in `prep_s`: Erlang B
/// (its misses do not wait: the group launches anew) at [`warm_target`], the largest of
/// the forecasts over the scale-in window (each minute) and [`WARM_HOLD_S`] (each ten
/// minutes).
#[must_use]
pub fn warm_size(arrivals: &[u64], now: u64, prep_s: f64, sizer: &SizerConfig) -> u32 {
    let target = warm_target(sizer.target_hit_rate);
    let hold = (1..=WARM_HOLD_S / 600).map(|k| k * 600_000);
    recommend_at(arrivals, now, prep_s, (target, false), sizer, scale_in_window(sizer).chain(hold)).1
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

/// Sizes the warm tier (its `PoolState` is `pool_state`), within the running pool's
/// bounds (`SIZER_MAX_SIZE`; nothing while the pool group's `MaxSize` is 0, drained).
/// `None` when the group has no warm pool (the template creates it with the pool; a
/// pool-sizer configured for one that is missing says so and sizes the running pool
/// alone).
pub(crate) async fn size_warm_tier<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    pool_state: &str,
    stock: &Stock<'_>,
    pool_max_size: u32,
) -> Result<Option<WarmTierDecision>, FlowError> {
    let Some(current) = cloud.describe_warm_pool(&cfg.pool_group).await? else {
        warn!(
            pool = %cfg.pool_group,
            "POOL_WARM_TIER is set but the pool group has no warm pool; sizing the running pool alone \
             (check the stack's PoolWarmTier)"
        );
        return Ok(None);
    };
    let computed = warm_size(stock.arrivals, stock.now_ms, stock.prep_s, &cfg.sizer);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WarmTier;
    use crate::flow::sizer::pool_size_for;

    /// The deployed settings with a warm tier (the sizer tests' own, otherwise).
    fn sizer() -> SizerConfig {
        let base = crate::flow::sizer::tests::sizer();
        SizerConfig { max_size: 200, fast_s: 900, scale_in_delay_s: 600, warm_tier: WarmTier::Stopped, ..base }
    }

    #[test]
    fn the_warm_tier_aims_ten_times_fewer_misses() {
        assert!((warm_target(0.99) - 0.999).abs() < 1e-12);
        assert!((warm_target(0.9) - 0.99).abs() < 1e-12);
    }

    /// A signup a minute for three hours, then none: the warm tier is sized for λT = 10
    /// at 0.999 while they come, keeps that size for the hold after they stop, and
    /// shrinks once the hold is over.
    #[test]
    fn the_warm_tier_holds_its_size_for_an_hour_after_the_signups_stop() {
        let cfg = sizer();
        let arrivals: Vec<u64> = (0..180).map(|m| m * 60_000).collect();
        let stop = 180 * 60_000;
        let during = warm_size(&arrivals, stop, 600.0, &cfg);
        let expected = pool_size_for(10.0, 0.999, false);
        assert!(during.abs_diff(expected) <= 2, "{during} for λT = 10, Erlang B at 0.999 says {expected}");
        let hold_ms = WARM_HOLD_S * 1000;
        assert_eq!(warm_size(&arrivals, stop + hold_ms - 10 * 60_000, 600.0, &cfg), during, "held");
        let after = warm_size(&arrivals, stop + hold_ms + 20 * 60_000, 600.0, &cfg);
        assert!(after < during, "shrinks after the hold: {after} vs {during}");
    }
}
