//! The lifecycle function: Auto Scaling events from EventBridge in, SSM Run Commands out
//! (see `warmpool_core::flow::lifecycle`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;
use warmpool_core::events::AsgEvent;
use warmpool_core::flow::lifecycle::{LifecycleOutcome, handle_event};
use warmpool_core::ports::Cloud;
use warmpool_core::{Config, Function};
use warmpool_lambda::{HandlerResult, LambdaEvent, log_failure};

/// Handles one event. An error makes Lambda retry the asynchronous invocation (twice,
/// then it sends the event's record to the re-drive queue, which reconcile drains); its
/// `errorType` is `Retryable`, `NonRetryable` or `InvalidInput`.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> HandlerResult<LifecycleOutcome> {
    let e = event.payload;
    let result = match AsgEvent::parse(&e.detail_type, e.detail) {
        Ok(parsed) => handle_event(cloud, cfg, &parsed).await,
        Err(err) => Err(err),
    };
    log_failure(Function::Lifecycle, result)
}
