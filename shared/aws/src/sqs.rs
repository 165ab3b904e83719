//! [`Notifier`] over `aws-sdk-sqs`.

use super::AwsCloud;
use super::errors::{Subject, classify};
use warmpool_core::error::CloudError;
use warmpool_core::ports::Notifier;

impl Notifier for AwsCloud {
    async fn send_ready(&self, user_id: &str, dedup_id: &str, body: &str) -> Result<(), CloudError> {
        self.sqs
            .send_message()
            .queue_url(&self.ready_queue_url)
            .message_body(body)
            .message_group_id(user_id)
            .message_deduplication_id(dedup_id)
            .send()
            .await
            .map_err(|e| {
                classify("SendMessage", Subject { resource: Some(&self.ready_queue_url), ..Subject::default() }, &e)
            })?;
        Ok(())
    }
}
