//! The pool-sizer function: an EventBridge schedule runs one sizing pass that sets the
//! warm pool's desired capacity from the signup rate and the refill time (see
//! `warmpool::flow::sizer`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use warmpool::Config;
use warmpool::flow::sizer::size_pool;
use warmpool::ports::Cloud;

/// Runs one sizing pass; the scheduled event's content is not used.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    _event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Diagnostic> {
    match size_pool(cloud, cfg).await {
        Ok(d) => {
            tracing::info!(
                signups_per_min = d.rate_per_s * 60.0,
                refill_s = d.refill_s,
                launches_seen = d.launches_seen,
                computed = d.computed,
                previous = d.previous,
                desired = d.desired,
                "pool sized"
            );
            Ok(json!({
                "signups_per_min": d.rate_per_s * 60.0,
                "refill_s": d.refill_s,
                "launches_seen": d.launches_seen,
                "computed": d.computed,
                "previous": d.previous,
                "desired": d.desired,
            }))
        }
        Err(err) => {
            tracing::error!(error = %err, kind = err.kind(), "pool sizing failed");
            Err(Diagnostic { error_type: err.kind().to_owned(), error_message: err.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Context;
    use warmpool::ports::Clock;
    use warmpool::sim::fixture;

    use super::*;

    /// What the EventBridge schedule sends.
    fn scheduled() -> LambdaEvent<EventBridgeEvent<Value>> {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}))
                .unwrap();
        LambdaEvent::new(event, Context::default())
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pool_shrinks_to_the_minimum_and_a_busy_one_grows() {
        let (cloud, cfg) = fixture::cloud_with_pool(10);
        // No signups ever: the pool shrinks to SIZER_MIN_SIZE (1).
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert_eq!((out["previous"].as_u64(), out["desired"].as_u64()), (Some(10), Some(1)));
        assert_eq!(cloud.group_size(&cfg.pool_group).unwrap().desired, 1);
        // Sixty users signed up in the last ten minutes: six a minute, a ten-minute
        // refill by default, so λT ≈ 40 or more and the pool is clamped at 25.
        for i in 0..60 {
            let user = warmpool::domain::Id::parse("user_id", &format!("u{i}")).unwrap();
            let record = warmpool::domain::UserRecord::new(&user, &user, cloud.now_ms() - i * 10_000);
            let spec = warmpool::ports::UserGroupSpec {
                name: cfg.user_group(user.as_str()),
                launch_template: cfg.launch_template.clone(),
                subnets: cfg.subnets.clone(),
                tags: record.to_tags(),
            };
            warmpool::ports::AutoScaling::create_user_group(&cloud, &spec).await.unwrap();
        }
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert_eq!(out["desired"].as_u64(), Some(25), "{out}");
        assert!(out["signups_per_min"].as_f64().unwrap() > 4.0, "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_pool_stays_drained() {
        // An operator drains the pool with MaxSize 0: the pool-sizer leaves it alone
        // instead of asking for a size AWS would refuse.
        let (cloud, _bus) = warmpool::sim::SimCloud::new(warmpool::sim::LatencyModel::default(), 1, 90, 5);
        let cfg = fixture::config(&cloud.subnets(), &[]);
        cloud.create_pool(&cfg.pool_group, &cfg.pool_hook, 0, 0);
        let out = handler(&cloud, &cfg, scheduled()).await.unwrap();
        assert_eq!((out["previous"].as_u64(), out["desired"].as_u64()), (Some(0), Some(0)), "{out}");
        assert_eq!(cloud.snapshot().calls.get("SetDesiredCapacity"), None);
    }
}
