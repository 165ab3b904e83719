//! SQS as the cloud holds it: the FIFO signup queue and the standard re-drive queue
//! (each with its dead-letter queue) that the event source mappings poll, and the FIFO
//! ready queue the flow writes to. Queues are addressed by URL, as in SQS.

use std::collections::BTreeMap;

use warmpool_core::error::CloudError;
use warmpool_core::ports::{Clock, Notifier, QueueDepth, QueueDepths, QueuedMessage, WorkQueues};

use super::SimCloud;
use super::access::{Access, queue_arn};
use crate::queue::{Received, SimQueue};

pub const SIGNUP_QUEUE: &str = "signup";
pub const READY_QUEUE: &str = "ready";
pub const REDRIVE_QUEUE: &str = "redrive";
/// The signup queue's dead-letter queue, where signup also sends what it rejects.
pub const SIGNUP_DLQ: &str = "signup-dlq";

/// The re-drive queue's visibility timeout (s) and receives before its dead-letter
/// queue, as `template.yaml` sets them (a test holds them together).
pub const REDRIVE_VISIBILITY_S: u64 = 360;
pub const REDRIVE_MAX_RECEIVE: u32 = 5;

/// The queue a URL names (the fixture's URLs).
fn queue_of(url: &str) -> Option<&'static str> {
    use crate::fixture::{READY_QUEUE_URL, REDRIVE_QUEUE_URL, SIGNUP_DLQ_URL, SIGNUP_QUEUE_URL};
    [
        (SIGNUP_QUEUE_URL, SIGNUP_QUEUE),
        (REDRIVE_QUEUE_URL, REDRIVE_QUEUE),
        (READY_QUEUE_URL, READY_QUEUE),
        (SIGNUP_DLQ_URL, SIGNUP_DLQ),
    ]
    .into_iter()
    .find_map(|(u, q)| (u == url).then_some(q))
}

/// SQS's answer to a URL that names no queue.
fn no_such_queue(operation: &str, url: &str) -> CloudError {
    CloudError::NotFound { resource: format!("queue {url} ({operation}: QueueDoesNotExist)") }
}

/// The queues by name.
#[derive(Debug)]
pub(super) struct Queues {
    pub(super) queues: BTreeMap<String, SimQueue>,
}

/// The ready queue's visibility timeout (SQS's default, 30 s); nothing consumes it here.
const READY_VISIBILITY_MS: u64 = 30_000;

impl Queues {
    /// A FIFO signup queue (visibility timeout, dead-letter after `max_receive`
    /// receives), the standard re-drive queue and the FIFO ready queue.
    pub(super) fn new(visibility_ms: u64, max_receive: u32) -> Self {
        Self {
            queues: BTreeMap::from([
                (SIGNUP_QUEUE.to_owned(), SimQueue::new(true, visibility_ms, max_receive)),
                (REDRIVE_QUEUE.to_owned(), SimQueue::new(false, REDRIVE_VISIBILITY_S * 1000, REDRIVE_MAX_RECEIVE)),
                (READY_QUEUE.to_owned(), SimQueue::new(true, READY_VISIBILITY_MS, u32::MAX)),
                (SIGNUP_DLQ.to_owned(), SimQueue::new(true, READY_VISIBILITY_MS, u32::MAX)),
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

    /// An event source mapping's `ReceiveMessage` from `queue` ([`SIGNUP_QUEUE`],
    /// [`REDRIVE_QUEUE`]).
    pub fn receive_from(&self, queue: &str, max: usize) -> Vec<Received> {
        let now = self.now_ms();
        let mut w = self.world();
        w.sqs.queues.get_mut(queue).map(|q| q.receive(max, now)).unwrap_or_default()
    }

    /// An event source mapping's `DeleteMessage` on `queue`.
    pub fn delete_from(&self, queue: &str, receipt_handle: &str) -> bool {
        let mut w = self.world();
        w.sqs.queues.get_mut(queue).is_some_and(|q| q.delete(receipt_handle))
    }

    /// Messages on `queue` not yet deleted.
    #[must_use]
    pub fn backlog(&self, queue: &str) -> usize {
        self.world().sqs.queues.get(queue).map_or(0, SimQueue::len)
    }

    /// Lambda sends an invocation record to a function's on-failure destination (the
    /// re-drive queue): no call of any function, the platform's own.
    pub fn send_to_destination(&self, body: &str) {
        let now = self.now_ms();
        let mut w = self.world();
        if let Some(q) = w.sqs.queues.get_mut(REDRIVE_QUEUE) {
            q.send(body.to_owned(), None, now);
        }
        self.note(&mut w, "invocation record to the on-failure destination".to_owned());
    }
}

impl WorkQueues for SimCloud {
    async fn retry_after(&self, queue_url: &str, receipt_handle: &str, seconds: u32) -> Result<(), CloudError> {
        self.authorize(vec![Access::new("sqs:ChangeMessageVisibility", queue_arn(queue_url))]);
        self.call("ChangeMessageVisibility").await?;
        let result = async {
            let queue = queue_of(queue_url).ok_or_else(|| no_such_queue("ChangeMessageVisibility", queue_url))?;
            let now = self.now_ms();
            let mut w = self.world();
            let changed = w
                .sqs
                .queues
                .get_mut(queue)
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
        .await;
        self.answer("ChangeMessageVisibility", result)
    }

    async fn send_batch(&self, queue_url: &str, messages: &[QueuedMessage]) -> Result<(), CloudError> {
        let queue = queue_of(queue_url).ok_or_else(|| no_such_queue("SendMessageBatch", queue_url))?;
        for chunk in messages.chunks(10) {
            self.authorize(vec![Access::new("sqs:SendMessage", queue_arn(queue_url))]);
            self.call("SendMessageBatch").await?;
            let now = self.now_ms();
            let mut w = self.world();
            let Some(q) = w.sqs.queues.get_mut(queue) else { return Err(no_such_queue("SendMessageBatch", queue_url)) };
            // SQS refuses a FIFO message without a group id, and a standard one with a
            // group or deduplication id. (Our FIFO queues could deduplicate by content;
            // the flow always sets the id, and the model asks for it.)
            if let Some(bad) = chunk.iter().find(|m| q.is_fifo() != (m.group_id.is_some() && m.dedup_id.is_some())) {
                let wanted = if q.is_fifo() { "needs" } else { "takes no" };
                return Err(CloudError::Invalid {
                    operation: "SendMessageBatch".into(),
                    message: format!("queue {queue_url} {wanted} MessageGroupId and MessageDeduplicationId: {bad:?}"),
                });
            }
            // SQS: DelaySeconds is 0 to 900, and per message only on a standard queue
            // (SQS Developer Guide, "Amazon SQS message timers").
            if let Some(bad) = chunk.iter().find(|m| m.delay_s > 900 || (q.is_fifo() && m.delay_s > 0)) {
                return Err(CloudError::Invalid {
                    operation: "SendMessageBatch".into(),
                    message: format!("InvalidParameterValue: DelaySeconds {} on queue {queue_url}", bad.delay_s),
                });
            }
            let mut sent = Vec::new();
            for m in chunk {
                if let (Some(group), Some(dedup)) = (&m.group_id, &m.dedup_id) {
                    if q.send_deduplicated(m.body.clone(), group.clone(), dedup, now) {
                        sent.push(format!("{queue} message for {group}"));
                    }
                } else {
                    q.send_delayed(m.body.clone(), None, now, u64::from(m.delay_s) * 1000);
                    sent.push(format!("{queue} message {} (delay {} s)", m.body, m.delay_s));
                }
            }
            for text in sent {
                self.note(&mut w, text);
            }
        }
        // A lost response to any of the batch's calls: every message stands.
        self.answer("SendMessageBatch", Ok(()))
    }
}

impl Notifier for SimCloud {
    async fn send_ready(&self, queue_url: &str, user_id: &str, dedup_id: &str, body: &str) -> Result<(), CloudError> {
        self.authorize(vec![Access::new("sqs:SendMessage", queue_arn(queue_url))]);
        self.call("SendMessage").await?;
        let result = async {
            // A function whose configuration lacks the ready queue (an empty URL) cannot send
            // there: SQS refuses a URL that names no queue.
            if queue_of(queue_url) != Some(READY_QUEUE) {
                return Err(no_such_queue("SendMessage", queue_url));
            }
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
        .await;
        self.answer("SendMessage", result)
    }
}

impl QueueDepths for SimCloud {
    /// `GetQueueAttributes`: a queue's messages waiting and in flight; a dead-letter
    /// queue's, its source queue's dead letters (and, for the signup DLQ, the rejects the
    /// signup function sends there).
    async fn queue_depth(&self, url: &str) -> Result<QueueDepth, CloudError> {
        use crate::fixture::{READY_DLQ_URL, REDRIVE_DLQ_URL};
        self.authorize(vec![Access::new("sqs:GetQueueAttributes", queue_arn(url))]);
        self.call("GetQueueAttributes").await?;
        let now = self.now_ms();
        let result = {
            let w = self.world();
            let dead_of = |q: &str| w.sqs.queues.get(q).map_or(0, |q| q.dead_letters().len() as u64);
            match (queue_of(url), url) {
                (Some(SIGNUP_DLQ), _) => {
                    let (visible, in_flight) = w.sqs.queues.get(SIGNUP_DLQ).map_or((0, 0), |q| q.depth(now));
                    Ok(QueueDepth { visible: visible + dead_of(SIGNUP_QUEUE), in_flight, delayed: 0 })
                }
                (Some(queue), _) => {
                    let (visible, in_flight) = w.sqs.queues.get(queue).map_or((0, 0), |q| q.depth(now));
                    Ok(QueueDepth { visible, in_flight, delayed: 0 })
                }
                (None, u) if u == REDRIVE_DLQ_URL => {
                    Ok(QueueDepth { visible: dead_of(REDRIVE_QUEUE), ..QueueDepth::default() })
                }
                (None, u) if u == READY_DLQ_URL => {
                    Ok(QueueDepth { visible: dead_of(READY_QUEUE), ..QueueDepth::default() })
                }
                (None, _) => Err(no_such_queue("GetQueueAttributes", url)),
            }
        };
        self.answer("GetQueueAttributes", result)
    }
}
