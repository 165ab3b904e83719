//! The command-status function: SSM command-status events in; a ready user, a failover
//! or a completed pool lifecycle hook out (see `warmpool_core::flow::command_status`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;
use warmpool_core::events::SsmEvent;
use warmpool_core::flow::command_status::{StatusOutcome, handle_event};
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
) -> HandlerResult<StatusOutcome> {
    let e = event.payload;
    let result = match SsmEvent::parse(&e.detail_type, e.detail) {
        Ok(parsed) => handle_event(cloud, cfg, &parsed).await,
        Err(err) => Err(err),
    };
    log_failure(Function::CommandStatus, result)
}
