//! A signup that finds no pool instance to claim waits for one (`POOL_WAIT_S`) before
//! it launches cold.

use tracing::info;

use super::sizer::refill_time;
use super::{describe_pool, write_tags};
use crate::Config;
use crate::config::WarmTier;
use crate::domain::{Id, RedriveMessage, UserRecord, tag};
use crate::error::FlowError;
use crate::metrics::Metric;
use crate::ports::{Cloud, Group, Launch, LaunchKind, QueuedMessage};

/// How often a user waiting for the pool looks again (s): the delay of the re-drive that
/// brings it back. A pool instance that turns ready waits at most this long for it (a new
/// signup may take it first); each look costs a re-drive, a resume and a claim.
pub const POOL_WAIT_POLL_S: u32 = 15;

/// A miss waits for the pool, within `POOL_WAIT_S` of its first look, instead of
/// launching cold: every claim detaches without a decrement, so the pool is refilling
/// already, and a refill some minutes into its preparation beats a cold launch that starts
/// from nothing. The first look records since when; each look brings the user back
/// [`POOL_WAIT_POLL_S`] later, through a delayed re-drive (the signup queue is FIFO, which
/// takes no per-message delay), and its record write makes that look's `resume` new to
/// the signup queue's deduplication. A first look waits only when a pool launch in flight
/// is due within the wait ([`refill_due`]). The pool is not raised for a waiting user: a raise
/// and its record cannot be written at once, so a death between them would leave the
/// pool off its size for good where nothing resizes it; the pool-sizer answers a burst
/// from the signups it sees. `None`: waiting is off, or over, and the cold path is next.
pub(crate) async fn wait_for_pool<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    group: &Group,
    record: &UserRecord,
) -> Result<Option<u64>, FlowError> {
    let user_id = record.user_id.as_str();
    let wait_ms = u64::from(cfg.pool_wait_s) * 1000;
    if wait_ms == 0 {
        return Ok(None);
    }
    let now = cloud.now_ms();
    // A start read back from the record is no later than now (a tag can say anything).
    let since = record.waiting_since().map_or(now, |s| s.min(now));
    let until_ms = since.saturating_add(wait_ms);
    if now >= until_ms {
        info!(user_id, attempt = record.attempt, waited_s = (now - since) / 1000, "no pool instance came in time");
        return Ok(None);
    }
    if since == now && !refill_due(cloud, cfg, user_id, until_ms).await? {
        // A burst started every refill at once, ten minutes from ready: waiting would
        // only add the wait to the cold launch that follows it.
        info!(user_id, attempt = record.attempt, "no refill in flight is due within the wait; taking the cold path");
        return Ok(None);
    }
    // The previous attempt's instance is retired by now (step 1 above, or the listing
    // showed it leaving, which a read never shows early), and every claim this run made
    // was attached (and returned) or lost and released: the record stops naming either,
    // so the looks to come neither retire an instance again on a listing that lags nor
    // resume a move of an instance another user may hold by then.
    let tags = [
        (tag::WAITING, format!("{}:{since}", record.attempt)),
        (tag::INSTANCE, String::new()),
        (tag::CLAIMED, String::new()),
    ];
    write_tags(cloud, &group.name, &tags).await?;
    if since == now {
        cloud.record(Metric::PoolWait);
    }
    let look = QueuedMessage {
        group_id: None,
        dedup_id: None,
        body: RedriveMessage::user_body(&Id::parse("user id tag", user_id)?),
        // The last look comes at the deadline, not up to a poll after it.
        delay_s: POOL_WAIT_POLL_S.min(u32::try_from(until_ms.saturating_sub(now).div_ceil(1000)).unwrap_or(u32::MAX)),
    };
    cloud.send_batch(&cfg.redrive_queue_url, std::slice::from_ref(&look)).await?;
    info!(user_id, attempt = record.attempt, until_ms, "no pool instance to claim; waiting for one");
    Ok(Some(until_ms))
}

/// Whether a pool refill is expected to be ready by `until_ms`: a launch in progress (the
/// pool's scaling activities) that started a refill time before, or one the pool owes
/// and has not started yet (fewer live members than its desired capacity: a detach just
/// done), which starts about now. The refill time is the pool-sizer's estimate from the
/// launches that completed.
///
/// With a warm tier, a start out of it counts as such a launch, with the starts' own
/// mean time; a launch into the warm pool does not (it refills the warm pool, not the
/// running one), and the refill the pool owes is expected in a start's time. None is due
/// from a draining pool. (A user already waiting when a drain begins looks until its
/// wait ends, then goes cold: at most `POOL_WAIT_S`.)
async fn refill_due<C: Cloud>(cloud: &C, cfg: &Config, user_id: &str, until_ms: u64) -> Result<bool, FlowError> {
    let now = cloud.now_ms();
    let pool = describe_pool(cloud, cfg, user_id).await?;
    if super::draining(&pool) {
        // A draining pool hands nothing out, whatever it launches.
        return Ok(false);
    }
    let launches = cloud.recent_launches(&cfg.pool_group).await?;
    let of = |kind: LaunchKind| launches.iter().filter(|l| l.kind == kind).cloned().collect::<Vec<_>>();
    let (new, started) = (of(LaunchKind::New), of(LaunchKind::FromWarmPool));
    let mean_ms = |list: &[Launch], default_s: u32| (refill_time(list, now, f64::from(default_s)).0 * 1000.0) as u64;
    let new_ms = mean_ms(&new, cfg.sizer.default_refill_s);
    let start_ms = mean_ms(&started, cfg.sizer.default_start_s);
    if launch_due(&new, new_ms, now, until_ms) || launch_due(&started, start_ms, now, until_ms) {
        return Ok(true);
    }
    let takes_ms = if cfg.sizer.warm_tier == WarmTier::None { new_ms } else { start_ms };
    let live = pool.members.iter().filter(|m| m.live()).count();
    Ok(live < pool.desired_capacity as usize && now.saturating_add(takes_ms) <= until_ms)
}

/// Whether one of `launches` is in flight and expected by `until_ms`, a launch taking
/// `takes_ms`. One in flight for twice that is stuck (in the hook until its timeout, say)
/// and not counted on; a late one may end any moment.
fn launch_due(launches: &[Launch], takes_ms: u64, now: u64, until_ms: u64) -> bool {
    launches.iter().any(|l| {
        let stuck = now.saturating_sub(l.started_ms) > takes_ms.saturating_mul(2);
        l.ended_ms.is_none() && !stuck && l.started_ms.saturating_add(takes_ms).max(now) <= until_ms
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_is_due_when_in_flight_expected_in_time_and_not_stuck() {
        let at = |started_ms: u64, ended_ms: Option<u64>| Launch {
            kind: LaunchKind::New,
            started_ms,
            ended_ms,
            succeeded: ended_ms.is_some(),
        };
        // A refill takes 600 s; now is 1000 s; the wait ends at 1240 s.
        let due = |l: Launch| launch_due(&[l], 600_000, 1_000_000, 1_240_000);
        assert!(due(at(500_000, None)), "started 500 s ago: ready in 100 s");
        assert!(!due(at(900_000, None)), "started 100 s ago: ready in 500 s, after the wait");
        assert!(due(at(300_000, None)), "late by 100 s: may end any moment");
        assert!(due(at(0, None)), "in flight for 1000 s, under twice 600 s: late");
        assert!(!launch_due(&[at(0, None)], 600_000, 1_300_000, 1_540_000), "in flight for 1300 s: stuck");
        assert!(!due(at(500_000, Some(990_000))), "ended already");
        assert!(!launch_due(&[], 600_000, 1_000_000, 1_240_000));
    }
}
