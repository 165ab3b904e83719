//! The signup function: SQS batch of signup messages in, partial batch failures out
//! (see `warmpool_core::flow::signup`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use warmpool_core::Config;
use warmpool_core::flow::signup::handle_batch;
use warmpool_core::ports::Cloud;
use warmpool_lambda::{HandlerResult, LambdaEvent, queue_records};

/// Handles one batch. Only the failed records are reported, so SQS retries those
/// alone and dead-letters them after `maxReceiveCount`; a bad record never fails the
/// others. Never returns an error: a whole-batch failure would retry good records.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    event: LambdaEvent<SqsEvent>,
) -> HandlerResult<SqsBatchResponse> {
    let records = queue_records(event.payload);
    let failed = handle_batch(cloud, cfg, records).await;
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    Ok(response)
}
