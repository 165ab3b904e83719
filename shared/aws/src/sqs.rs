//! [`WorkQueues`] and [`Notifier`] over `aws-sdk-sqs`.

use super::AwsCloud;
use super::errors::{Subject, classify};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};
use warmpool_core::error::CloudError;
use warmpool_core::ports::{Notifier, QueueDepth, QueueDepths, QueueMessage, QueueMessages, QueuedMessage, WorkQueues};

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

impl QueueMessages for AwsCloud {
    async fn receive(&self, url: &str, max: u32, visibility_s: u32) -> Result<Vec<QueueMessage>, CloudError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(i32::try_from(visibility_s).unwrap_or(i32::MAX))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", Subject { resource: Some(url), ..Subject::default() }, &e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let attribute = |name: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&name)).cloned();
                Some(QueueMessage {
                    message_id: m.message_id()?.to_owned(),
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    group_id: attribute(MessageSystemAttributeName::MessageGroupId),
                    receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0),
                })
            })
            .collect())
    }

    async fn delete_message(&self, url: &str, receipt_handle: &str) -> Result<(), CloudError> {
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| classify("DeleteMessage", Subject { resource: Some(url), ..Subject::default() }, &e))?;
        Ok(())
    }
}
