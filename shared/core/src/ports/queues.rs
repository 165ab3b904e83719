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
