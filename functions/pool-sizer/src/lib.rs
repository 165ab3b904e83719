//! The pool-sizer function: an EventBridge schedule runs one sizing pass that sets the
//! warm pool's desired capacity from the signup rate and the refill time (see
//! `warmpool_core::flow::sizer`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;
use warmpool_core::flow::sizer::{SizerDecision, size_pool};
use warmpool_core::ports::Cloud;
use warmpool_core::{Config, Function};
use warmpool_lambda::{HandlerResult, LambdaEvent, log_failure};

/// Runs one sizing pass; the scheduled event's content is not used.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    _event: LambdaEvent<EventBridgeEvent<Value>>,
) -> HandlerResult<SizerDecision> {
    let result = size_pool(cloud, cfg).await;
    if let Ok(d) = &result {
        tracing::info!(
            signups_per_min = d.rate_per_s * 60.0,
            refill_s = d.refill_s,
            launches_seen = d.launches_seen,
            computed = d.computed,
            previous = d.previous,
            desired = d.desired,
            "pool sized"
        );
    }
    log_failure(Function::PoolSizer, result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warmpool_core::ports::Clock;
    use warmpool_lambda::Context;
    use warmpool_sim::{CloudModel, SimCloud, fixture};

    use super::*;

    /// What the EventBridge schedule sends.
    fn scheduled() -> LambdaEvent<EventBridgeEvent<Value>> {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}))
                .unwrap();
        LambdaEvent::new(event, Context::default())
    }

    /// A signup at `requested_at_ms`, as the signup function's `Signups` metric holds it.
    fn signed_up(cloud: &SimCloud, cfg: &Config, requested_at_ms: u64) {
        cloud.record_signups(&cfg.pool_group, [requested_at_ms]);
    }

    /// Past the metric's delay: every signup recorded so far is readable.
    async fn settle(cloud: &SimCloud) {
        tokio::time::sleep(std::time::Duration::from_secs(cloud.model().metric_delay_s + 60)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pool_shrinks_to_the_minimum_and_a_busy_one_grows() {
        let (cloud, cfg) = fixture::cloud_with_pool(10);
        // No signups ever: no evidence of a rate, the pool keeps its size.
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert_eq!((out.previous, out.desired), (10, 10));
        // One signup, eleven hours ago (within the twelve hours read): the pool shrinks
        // to SIZER_MIN_SIZE (1).
        signed_up(&cloud, &cfg, cloud.now_ms().saturating_sub(11 * 3_600_000));
        settle(&cloud).await;
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert_eq!((out.previous, out.desired), (10, 1));
        assert_eq!(cloud.group_size(&cfg.pool_group).unwrap().desired, 1);
        // Sixty users signed up in the last ten minutes: six a minute, a ten-minute
        // refill by default, so λT ≈ 40 or more and the pool is clamped at the group's
        // MaxSize (30 here) less one.
        for i in 0..60 {
            signed_up(&cloud, &cfg, cloud.now_ms() - i * 10_000);
        }
        settle(&cloud).await;
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert!(out.computed > 29, "{out:?}");
        assert_eq!(out.desired, 29, "{out:?}");
        // Sixty in ten minutes, read three minutes later (the metric's delay): the
        // kernels see well over three a minute.
        assert!(out.rate_per_s * 60.0 > 3.0, "{out:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_young_history_grows_the_pool_but_does_not_shrink_it() {
        let (cloud, cfg) = fixture::cloud_with_pool(10);
        // One signup a minute ago: a rate of a few an hour at most, a pool of a few.
        signed_up(&cloud, &cfg, cloud.now_ms() - 60_000);
        settle(&cloud).await;
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert!(out.computed < 10, "the estimate alone would shrink the pool: {out:?}");
        assert_eq!((out.previous, out.desired), (10, 10), "{out:?}");
        // Once the history is as old as the slow kernel, the estimate is evidence.
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(cfg.sizer.smoothing_s))).await;
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert!(out.desired < 10, "{out:?}");
        assert_eq!(cloud.group_size(&cfg.pool_group).unwrap().desired, out.desired);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_pool_stays_drained() {
        // An operator drains the pool with MaxSize 0: the pool-sizer leaves it alone
        // instead of asking for a size AWS would refuse.
        let (cloud, _bus) = SimCloud::new(CloudModel::default(), 1, 90, 5);
        let cfg = fixture::config(&cloud.subnets(), &[]);
        cloud.create_pool(&cfg.pool_group, &cfg.pool_hook, 0, 0);
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert_eq!((out.previous, out.desired), (0, 0), "{out:?}");
        assert_eq!(cloud.snapshot().calls.get("SetDesiredCapacity"), None);
    }
}
