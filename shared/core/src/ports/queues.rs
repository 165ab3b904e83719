//! What an operator reads of a queue (not a function: the functions only send).

use std::future::Future;

use serde::Serialize;

use crate::error::CloudError;

/// A queue's approximate depth (`GetQueueAttributes`: SQS's counts are approximate and
/// lag by up to a minute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// `ApproximateNumberOfMessages`: waiting to be received.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: received, not yet deleted.
    pub in_flight: u64,
    /// `ApproximateNumberOfMessagesDelayed`.
    pub delayed: u64,
}

/// The depth of a queue by its URL.
pub trait QueueDepths: Send + Sync {
    /// `GetQueueAttributes` of the three counts; `NotFound` for a queue that is gone.
    fn queue_depth(&self, url: &str) -> impl Future<Output = Result<QueueDepth, CloudError>> + Send;
}

/// A message as an operator reads it off a queue (a dead-letter queue, to show it or
/// send it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueMessage {
    pub message_id: String,
    #[serde(skip)]
    pub receipt_handle: String,
    pub body: String,
    /// FIFO `MessageGroupId`.
    pub group_id: Option<String>,
    /// `ApproximateReceiveCount`.
    pub receive_count: u32,
}

/// Reading and deleting messages: the operator's `replay-dlq` (the functions receive
/// through their event source mappings, not through these).
pub trait QueueMessages: Send + Sync {
    /// `ReceiveMessage` of up to `max` (at most 10) messages, hidden for `visibility_s`
    /// (0: left visible, a look that takes nothing), with their group and receive count.
    fn receive(
        &self,
        url: &str,
        max: u32,
        visibility_s: u32,
    ) -> impl Future<Output = Result<Vec<QueueMessage>, CloudError>> + Send;
    /// `DeleteMessage`.
    fn delete_message(&self, url: &str, receipt_handle: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}
