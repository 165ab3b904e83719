//! The signup function: SQS batch of signup messages in, partial batch failures out
//! (see `warmpool_core::flow::signup`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use warmpool_core::Config;
use warmpool_core::flow::signup::{QueueRecord, handle_batch};
use warmpool_core::ports::Cloud;
use warmpool_lambda::{HandlerResult, LambdaEvent};

/// Handles one batch. Only the failed records are reported, so SQS retries those
/// alone and dead-letters them after `maxReceiveCount`; a bad record never fails the
/// others. Never returns an error: a whole-batch failure would retry good records.
pub async fn handler<C: Cloud>(
    cloud: &C,
    cfg: &Config,
    event: LambdaEvent<SqsEvent>,
) -> HandlerResult<SqsBatchResponse> {
    let records: Vec<QueueRecord> = event
        .payload
        .records
        .into_iter()
        .filter_map(|r| {
            let Some(message_id) = r.message_id.filter(|id| !id.is_empty()) else {
                // Without an id the record cannot be reported as failed (an empty
                // itemIdentifier fails the whole batch); SQS always sets it.
                tracing::error!("SQS record without a messageId skipped");
                return None;
            };
            let receipt = r.event_source_arn.as_deref().and_then(queue_url).zip(r.receipt_handle);
            Some(QueueRecord {
                message_id,
                group_id: r.attributes.get("MessageGroupId").cloned(),
                body: r.body.unwrap_or_default(),
                sent_at_ms: r.attributes.get("SentTimestamp").and_then(|v| v.parse().ok()),
                receipt,
                receive_count: r.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1),
            })
        })
        .collect();
    let failed = handle_batch(cloud, cfg, records).await;
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    Ok(response)
}

/// The queue URL of an SQS queue ARN (`arn:PARTITION:sqs:REGION:ACCOUNT:NAME`).
#[must_use]
pub fn queue_url(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    let (Some("arn"), Some(partition), Some("sqs"), Some(region), Some(account), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let suffix = if partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
    Some(format!("https://sqs.{region}.{suffix}/{account}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::queue_url;

    #[test]
    fn queue_urls_from_arns() {
        assert_eq!(
            queue_url("arn:aws:sqs:us-east-1:123456789012:warmpool-signup.fifo").as_deref(),
            Some("https://sqs.us-east-1.amazonaws.com/123456789012/warmpool-signup.fifo")
        );
        assert_eq!(
            queue_url("arn:aws-cn:sqs:cn-north-1:123456789012:q").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q")
        );
        assert_eq!(queue_url("arn:aws:sns:us-east-1:123456789012:topic"), None);
        assert_eq!(queue_url("arn:aws:sqs:us-east-1:123456789012:q:extra"), None);
        assert_eq!(queue_url(""), None);
    }
}
