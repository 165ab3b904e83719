//! The lifecycle function: Auto Scaling events from EventBridge in, SSM Run Commands out.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use warmpool::Config;
use warmpool::events::AsgEvent;
use warmpool::flow::lifecycle::handle_event;
use warmpool::ports::Cloud;

/// Handles one event. An error makes Lambda retry the asynchronous invocation (twice,
/// then its on-failure destination); its `errorType` is `Retryable`, `NonRetryable`
/// or `InvalidInput`.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Diagnostic> {
    let e = event.payload;
    let result = match AsgEvent::parse(&e.detail_type, e.detail) {
        Ok(parsed) => handle_event(cloud, cfg, &parsed).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(outcome) => Ok(json!({ "outcome": format!("{outcome:?}") })),
        Err(err) => {
            tracing::error!(error = %err, kind = err.kind(), detail_type = %e.detail_type, "lifecycle event failed");
            Err(Diagnostic { error_type: err.kind().to_owned(), error_message: err.to_string() })
        }
    }
}
