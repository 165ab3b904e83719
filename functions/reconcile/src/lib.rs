//! The reconcile function: an EventBridge schedule runs one sweep that re-drives
//! stalled users and repairs orphaned claims (see `warmpool::flow::reconcile`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use warmpool::Config;
use warmpool::flow::reconcile::sweep;
use warmpool::ports::Cloud;

/// Runs one sweep; the scheduled event's content is not used.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    _event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Diagnostic> {
    match sweep(cloud, cfg).await {
        Ok(report) => {
            tracing::info!(
                users_checked = report.users_checked,
                redriven = report.redriven.len(),
                claims_repaired = report.claims_repaired,
                errors = report.errors,
                "reconcile sweep done"
            );
            Ok(json!({
                "users_checked": report.users_checked,
                "redriven": report.redriven,
                "claims_repaired": report.claims_repaired,
                "errors": report.errors,
            }))
        }
        Err(err) => {
            tracing::error!(error = %err, kind = err.kind(), "reconcile sweep failed");
            Err(Diagnostic { error_type: err.kind().to_owned(), error_message: err.to_string() })
        }
    }
}
