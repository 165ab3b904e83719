//! `warmpool replay-dlq`: what is in the dead-letter queues, and, after a fix, each
//! message sent back to the queue it came from.
//!
//! A look receives with a visibility timeout of 0, so it takes nothing. A redrive moves
//! one message at a time: sent to its source queue first (a FIFO message with its own
//! message group, and a deduplication id from its dead-letter message id), deleted from
//! the dead-letter queue after. A run that dies between the two leaves the message in
//! the dead-letter queue, and the next run sends it again: within SQS's five minutes the
//! FIFO queues drop the repeat, and after that the functions' own idempotency absorbs it
//! (a signup for an existing user resumes it; a re-drive of a user who needs none is a
//! no-op). SQS's own redrive (`StartMessageMoveTask`) does the same for standard queues.

use serde::Serialize;

use super::{Deployment, OperatorError};
use crate::ports::{Cloud, QueueMessage, QueueMessages, QueuedMessage};

/// A dead-letter queue and the queue its messages came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterQueue {
    /// `signup`, `re-drive` or `ready`.
    pub name: &'static str,
    pub url: String,
    pub source_url: String,
    /// The source is FIFO: a message goes back with a group and a deduplication id.
    pub fifo: bool,
}

/// The deployment's three dead-letter queues.
#[must_use]
pub fn dead_letter_queues(dep: &Deployment) -> Vec<DeadLetterQueue> {
    vec![
        DeadLetterQueue {
            name: "signup",
            url: dep.signup_dlq_url.clone(),
            source_url: dep.signup_queue_url.clone(),
            fifo: true,
        },
        DeadLetterQueue {
            name: "re-drive",
            url: dep.redrive_dlq_url.clone(),
            source_url: dep.redrive_queue_url.clone(),
            fifo: false,
        },
        DeadLetterQueue {
            name: "ready",
            url: dep.ready_dlq_url.clone(),
            source_url: dep.ready_queue_url.clone(),
            fifo: true,
        },
    ]
}

/// What one dead-letter queue holds (up to ten messages are shown; `status` counts them all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetters {
    pub queue: DeadLetterQueue,
    pub messages: Vec<QueueMessage>,
}

/// Looks at each dead-letter queue (`only`: the one of that name) without taking anything.
pub async fn look<C: Cloud + QueueMessages>(
    cloud: &C,
    dep: &Deployment,
    only: Option<&str>,
) -> Result<Vec<DeadLetters>, OperatorError> {
    let mut out = Vec::new();
    for queue in dead_letter_queues(dep).into_iter().filter(|q| only.is_none_or(|n| n == q.name)) {
        let mut messages: Vec<QueueMessage> = cloud.receive(&queue.url, 10, 0).await?;
        messages.dedup_by(|a, b| a.message_id == b.message_id);
        out.push(DeadLetters { queue, messages });
    }
    Ok(out)
}

/// Sends the messages of each dead-letter queue (`only`: the one of that name) back to
/// their source queue, at most `max` a queue; returns how many each sent back.
pub async fn redrive<C: Cloud + QueueMessages>(
    cloud: &C,
    dep: &Deployment,
    only: Option<&str>,
    max: usize,
) -> Result<Vec<(&'static str, usize)>, OperatorError> {
    let mut moved = Vec::new();
    for queue in dead_letter_queues(dep).into_iter().filter(|q| only.is_none_or(|n| n == q.name)) {
        let mut count = 0;
        while count < max {
            // Hidden for a minute while this run moves them: long enough for ten sends.
            let batch = cloud.receive(&queue.url, 10, 60).await?;
            if batch.is_empty() {
                break;
            }
            for message in batch.into_iter().take(max - count) {
                let back = QueuedMessage {
                    group_id: queue
                        .fifo
                        .then(|| message.group_id.clone().unwrap_or_else(|| message.message_id.clone())),
                    dedup_id: queue.fifo.then(|| format!("redrive-{}", message.message_id)),
                    body: message.body.clone(),
                    delay_s: 0,
                };
                cloud.send_batch(&queue.source_url, std::slice::from_ref(&back)).await?;
                cloud.delete_message(&queue.url, &message.receipt_handle).await?;
                count += 1;
            }
        }
        tracing::info!(queue = queue.name, moved = count, "dead letters sent back to their queue");
        moved.push((queue.name, count));
    }
    Ok(moved)
}
