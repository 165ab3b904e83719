//! The reconcile function: an EventBridge schedule runs one sweep that re-drives
//! stalled users and repairs orphaned claims (see `warmpool_core::flow::reconcile`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;
use warmpool_core::flow::reconcile::{ReconcileReport, sweep};
use warmpool_core::ports::Cloud;
use warmpool_core::{Config, Function};
use warmpool_lambda::{HandlerResult, LambdaEvent, log_failure};

/// Runs one sweep; the scheduled event's content is not used.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    _event: LambdaEvent<EventBridgeEvent<Value>>,
) -> HandlerResult<ReconcileReport> {
    let result = sweep(cloud, cfg).await;
    if let Ok(report) = &result {
        tracing::info!(
            users_checked = report.users_checked,
            redriven = report.redriven.len(),
            claims_repaired = report.claims_repaired,
            errors = report.errors,
            "reconcile sweep done"
        );
    }
    log_failure(Function::Reconcile, result)
}
