//! An SQS event's records as the flow reads them ([`QueueRecord`]).

use aws_lambda_events::event::sqs::SqsEvent;
use warmpool_core::flow::signup::QueueRecord;

/// The records of an SQS event. A record without a `messageId` is skipped (logged): it
/// could not be reported as failed (an empty `itemIdentifier` fails the whole batch),
/// and SQS always sets it.
#[must_use]
pub fn queue_records(event: SqsEvent) -> Vec<QueueRecord> {
    event
        .records
        .into_iter()
        .filter_map(|r| {
            let Some(message_id) = r.message_id.filter(|id| !id.is_empty()) else {
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
        .collect()
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
    use super::{queue_records, queue_url};

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

    #[test]
    fn records_carry_what_the_flow_reads_and_ones_without_an_id_are_skipped() {
        let event = serde_json::from_value(serde_json::json!({ "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": "{}",
                "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000"},
                "messageAttributes": {},
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:warmpool-redrive",
            },
            { "messageId": "", "body": "{}", "attributes": {}, "messageAttributes": {} },
        ]}))
        .unwrap();
        let records = queue_records(event);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!((r.message_id.as_str(), r.group_id.as_deref(), r.receive_count), ("m-1", None, 3));
        assert_eq!(r.sent_at_ms, Some(1_700_000_000_000));
        assert_eq!(
            r.receipt,
            Some(("https://sqs.eu-west-1.amazonaws.com/123456789012/warmpool-redrive".to_owned(), "r-1".to_owned()))
        );
    }
}
