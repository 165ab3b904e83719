//! [`WorkQueues`] and [`Notifier`] over `aws-sdk-sqs`.

use super::AwsCloud;
use super::errors::{Subject, classify};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use warmpool_core::error::CloudError;
use warmpool_core::ports::{Notifier, QueueDepth, QueueDepths, QueuedMessage, WorkQueues};

impl WorkQueues for AwsCloud {
    async fn retry_after(&self, queue_url: &str, receipt_handle: &str, seconds: u32) -> Result<(), CloudError> {
        self.sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| {
                classify("ChangeMessageVisibility", Subject { resource: Some(queue_url), ..Subject::default() }, &e)
            })?;
        Ok(())
    }

    async fn send_batch(&self, queue_url: &str, messages: &[QueuedMessage]) -> Result<(), CloudError> {
        let invalid = |message: String| CloudError::Invalid { operation: "SendMessageBatch".into(), message };
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&m.body)
                        .set_message_group_id(m.group_id.clone())
                        .set_message_deduplication_id(m.dedup_id.clone())
                        .set_delay_seconds((m.delay_s > 0).then(|| i32::try_from(m.delay_s).unwrap_or(i32::MAX)))
                        .build()
                        .map_err(|e| invalid(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out =
                self.sqs.send_message_batch().queue_url(queue_url).set_entries(Some(entries)).send().await.map_err(
                    |e| classify("SendMessageBatch", Subject { resource: Some(queue_url), ..Subject::default() }, &e),
                )?;
            if let Some(failed) = out.failed().first() {
                return Err(invalid(format!(
                    "{} of {} messages refused; first: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

impl Notifier for AwsCloud {
    async fn send_ready(&self, queue_url: &str, user_id: &str, dedup_id: &str, body: &str) -> Result<(), CloudError> {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .message_group_id(user_id)
            .message_deduplication_id(dedup_id)
            .send()
            .await
            .map_err(|e| classify("SendMessage", Subject { resource: Some(queue_url), ..Subject::default() }, &e))?;
        Ok(())
    }
}

impl QueueDepths for AwsCloud {
    async fn queue_depth(&self, url: &str) -> Result<QueueDepth, CloudError> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", Subject { resource: Some(url), ..Subject::default() }, &e))?;
        let count = |name: QueueAttributeName| -> Result<u64, CloudError> {
            match out.attributes().and_then(|a| a.get(&name)) {
                None => Ok(0),
                Some(v) => v.parse().map_err(|_| CloudError::Invalid {
                    operation: "GetQueueAttributes".into(),
                    message: format!("{name} of {url} is {v:?}, not a count"),
                }),
            }
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
        })
    }
}
