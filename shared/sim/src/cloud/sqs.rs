//! SQS as the cloud holds it: the FIFO signup queue (with its dead-letter queue) that
//! the event source mapping polls, and the FIFO ready queue the flow writes to.

use std::collections::BTreeMap;

use warmpool_core::error::CloudError;
use warmpool_core::ports::{Clock, Notifier, QueuedMessage, SignupQueue};

use super::SimCloud;
use crate::queue::{Received, SimQueue};

pub const SIGNUP_QUEUE: &str = "signup";
pub const READY_QUEUE: &str = "ready";

/// The queues by name.
#[derive(Debug)]
pub(super) struct Queues {
    pub(super) queues: BTreeMap<String, SimQueue>,
}

/// The ready queue's visibility timeout (SQS's default, 30 s); nothing consumes it here.
const READY_VISIBILITY_MS: u64 = 30_000;

impl Queues {
    /// A FIFO signup queue (visibility timeout, dead-letter after `max_receive`
    /// receives) and the FIFO ready queue.
    pub(super) fn new(visibility_ms: u64, max_receive: u32) -> Self {
        Self {
            queues: BTreeMap::from([
                (SIGNUP_QUEUE.to_owned(), SimQueue::new(true, visibility_ms, max_receive)),
                (READY_QUEUE.to_owned(), SimQueue::new(true, READY_VISIBILITY_MS, u32::MAX)),
            ]),
        }
    }
}

impl SimCloud {
    /// Puts a message on the signup queue (a producer's `SendMessage`).
    pub fn send_signup(&self, body: &str, group_id: &str) -> String {
        let now = self.now_ms();
        let mut w = self.world();
        w.sqs
            .queues
            .get_mut(SIGNUP_QUEUE)
            .map(|q| q.send(body.to_owned(), Some(group_id.to_owned()), now))
            .unwrap_or_default()
    }

    /// The event source mapping's `ReceiveMessage`.
    pub fn receive_signups(&self, max: usize) -> Vec<Received> {
        let now = self.now_ms();
        let mut w = self.world();
        w.sqs.queues.get_mut(SIGNUP_QUEUE).map(|q| q.receive(max, now)).unwrap_or_default()
    }

    /// The event source mapping's `DeleteMessage`.
    pub fn delete_signup(&self, receipt_handle: &str) -> bool {
        let mut w = self.world();
        w.sqs.queues.get_mut(SIGNUP_QUEUE).is_some_and(|q| q.delete(receipt_handle))
    }

    /// Messages on the signup queue not yet deleted.
    #[must_use]
    pub fn signup_backlog(&self) -> usize {
        self.world().sqs.queues.get(SIGNUP_QUEUE).map_or(0, SimQueue::len)
    }
}

impl SignupQueue for SimCloud {
    async fn retry_after(&self, _queue_url: &str, receipt_handle: &str, seconds: u32) -> Result<(), CloudError> {
        self.call("ChangeMessageVisibility").await?;
        let now = self.now_ms();
        let mut w = self.world();
        let changed = w
            .sqs
            .queues
            .get_mut(SIGNUP_QUEUE)
            .is_some_and(|q| q.change_visibility(receipt_handle, u64::from(seconds) * 1000, now));
        if changed {
            Ok(())
        } else {
            // SQS: ReceiptHandleIsInvalid (deleted, or received again since).
            Err(CloudError::Invalid {
                operation: "ChangeMessageVisibility".into(),
                message: format!("ReceiptHandleIsInvalid: {receipt_handle}"),
            })
        }
    }

    async fn send_signups(&self, _queue_url: &str, messages: &[QueuedMessage]) -> Result<(), CloudError> {
        for chunk in messages.chunks(10) {
            self.call("SendMessageBatch").await?;
            let now = self.now_ms();
            let mut w = self.world();
            for m in chunk {
                let enqueued = w
                    .sqs
                    .queues
                    .get_mut(SIGNUP_QUEUE)
                    .is_some_and(|q| q.send_deduplicated(m.body.clone(), m.group_id.clone(), &m.dedup_id, now));
                if enqueued {
                    self.note(&mut w, format!("resume message for {}", m.group_id));
                }
            }
        }
        Ok(())
    }
}

impl Notifier for SimCloud {
    async fn send_ready(&self, user_id: &str, dedup_id: &str, body: &str) -> Result<(), CloudError> {
        self.call("SendMessage").await?;
        let now = self.now_ms();
        let mut w = self.world();
        let enqueued = w
            .sqs
            .queues
            .get_mut(READY_QUEUE)
            .is_some_and(|q| q.send_deduplicated(body.to_owned(), user_id.to_owned(), dedup_id, now));
        let text = if enqueued {
            format!("ready message for {user_id}")
        } else {
            format!("ready message for {user_id} deduplicated by the FIFO queue")
        };
        self.note(&mut w, text);
        Ok(())
    }
}
