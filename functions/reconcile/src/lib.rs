//! The reconcile function, on two triggers (see `warmpool_core::flow::reconcile`):
//! - the EventBridge schedule runs one sweep, which hands each stalled user to an
//!   invocation of its own and repairs orphaned claims and instances;
//! - the re-drive queue (SQS) brings those re-drives, and Lambda's records of events
//!   lifecycle and command-status failed on, one per invocation.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warmpool_core::flow::reconcile::{ReconcileReport, handle_redrives, sweep};
use warmpool_core::ports::Cloud;
use warmpool_core::{Config, Function};
use warmpool_lambda::{HandlerResult, LambdaEvent, log_failure, queue_records};

/// What invokes reconcile. An SQS event is told apart by its `Records`, which a
/// scheduled event never has.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ReconcileEvent {
    Queue(SqsEvent),
    /// Boxed: the envelope is ten times the size of a batch's.
    Schedule(Box<EventBridgeEvent<Value>>),
}

/// The response: the re-drive queue's failed records, or the sweep's report.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ReconcileResponse {
    Queue(SqsBatchResponse),
    Sweep(ReconcileReport),
}

/// Runs one sweep (the scheduled event's content is not used), or the re-drives of a
/// batch of the re-drive queue (only the failed records are reported, so SQS retries
/// those alone; never an error, which would retry good records too).
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    event: LambdaEvent<ReconcileEvent>,
) -> HandlerResult<ReconcileResponse> {
    match event.payload {
        ReconcileEvent::Queue(batch) => {
            let failed = handle_redrives(cloud, cfg, queue_records(batch)).await;
            let mut response = SqsBatchResponse::default();
            for id in failed {
                response.add_failure(id);
            }
            Ok(ReconcileResponse::Queue(response))
        }
        ReconcileEvent::Schedule(_) => {
            let result = sweep(cloud, cfg).await;
            if let Ok(report) = &result {
                tracing::info!(
                    users_checked = report.users_checked,
                    redriven = report.redriven.len(),
                    claims_repaired = report.claims_repaired,
                    ready_claims_released = report.ready_claims_released,
                    errors = report.errors,
                    "reconcile sweep done"
                );
            }
            log_failure(Function::Reconcile, result).map(ReconcileResponse::Sweep)
        }
    }
}
