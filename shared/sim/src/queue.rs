//! An SQS queue: visibility timeout, redelivery, FIFO message groups and a
//! dead-letter queue after `max_receive_count` receives.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

/// One message as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub group_id: Option<String>,
    pub sent_at_ms: u64,
    pub receive_count: u32,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    group_id: Option<String>,
    sent_at_ms: u64,
    receive_count: u32,
    visible_at_ms: u64,
    receipt: u64,
}

/// A queue with its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SimQueue {
    fifo: bool,
    visibility_timeout_ms: u64,
    max_receive_count: u32,
    messages: Vec<Message>,
    dead: Vec<Received>,
    next_id: u64,
    /// FIFO deduplication ids seen, with when (ms): a repeat within five minutes is
    /// accepted and dropped, as SQS does.
    dedup: BTreeMap<String, u64>,
    /// Every message ever enqueued (the record of what was sent; deletes leave it).
    sent: Vec<Received>,
}

impl SimQueue {
    #[must_use]
    pub fn new(fifo: bool, visibility_timeout_ms: u64, max_receive_count: u32) -> Self {
        Self {
            fifo,
            visibility_timeout_ms,
            max_receive_count,
            messages: Vec::new(),
            dead: Vec::new(),
            next_id: 0,
            dedup: BTreeMap::new(),
            sent: Vec::new(),
        }
    }

    /// `SendMessage`; returns the message id.
    pub fn send(&mut self, body: String, group_id: Option<String>, now_ms: u64) -> String {
        self.send_delayed(body, group_id, now_ms, 0)
    }

    /// `SendMessage` with `DelaySeconds` (as milliseconds): not received before then.
    pub fn send_delayed(&mut self, body: String, group_id: Option<String>, now_ms: u64, delay_ms: u64) -> String {
        self.next_id += 1;
        let id = format!("msg-{:06}", self.next_id);
        let group_id = if self.fifo { group_id } else { None };
        self.sent.push(Received {
            message_id: id.clone(),
            receipt_handle: String::new(),
            body: body.clone(),
            group_id: group_id.clone(),
            sent_at_ms: now_ms,
            receive_count: 0,
        });
        self.messages.push(Message {
            id: id.clone(),
            body,
            group_id,
            sent_at_ms: now_ms,
            receive_count: 0,
            visible_at_ms: now_ms + delay_ms,
            receipt: 0,
        });
        id
    }

    /// `SendMessage` with a `MessageDeduplicationId` (FIFO): a repeat of the id within
    /// the five-minute deduplication interval is accepted but not enqueued. Returns
    /// whether the message was enqueued.
    pub fn send_deduplicated(&mut self, body: String, group_id: String, dedup_id: &str, now_ms: u64) -> bool {
        const INTERVAL_MS: u64 = 5 * 60 * 1000;
        if self.dedup.get(dedup_id).is_some_and(|t| now_ms < t + INTERVAL_MS) {
            return false;
        }
        self.dedup.insert(dedup_id.to_owned(), now_ms);
        self.send(body, Some(group_id), now_ms);
        true
    }

    /// `ReceiveMessage` of up to `max` messages. On a FIFO queue a message group with a
    /// message in flight delivers nothing more until that message is deleted or visible
    /// again. A message received more than `max_receive_count` times moves to the DLQ.
    pub fn receive(&mut self, max: usize, now_ms: u64) -> Vec<Received> {
        let mut out = Vec::new();
        // Nothing visible (the usual poll while everything is in flight): no scan with
        // bookkeeping. Big bursts made the full scan quadratic.
        if self.messages.iter().all(|m| m.visible_at_ms > now_ms) {
            return out;
        }
        // Groups with an earlier message in flight, by hash (no allocation per message).
        let mut blocked: HashSet<u64> = HashSet::new();
        let group_key = |g: &Option<String>| {
            g.as_ref().map(|g| {
                let mut h = DefaultHasher::new();
                g.hash(&mut h);
                h.finish()
            })
        };
        let mut i = 0;
        while i < self.messages.len() && out.len() < max {
            let m = &self.messages[i];
            let group = group_key(&m.group_id);
            if group.is_some_and(|g| blocked.contains(&g)) {
                i += 1;
                continue;
            }
            if m.visible_at_ms > now_ms {
                if let Some(g) = group {
                    blocked.insert(g);
                }
                i += 1;
                continue;
            }
            if m.receive_count >= self.max_receive_count {
                let m = self.messages.remove(i);
                self.dead.push(Received {
                    message_id: m.id,
                    receipt_handle: String::new(),
                    body: m.body,
                    group_id: m.group_id,
                    sent_at_ms: m.sent_at_ms,
                    receive_count: m.receive_count,
                });
                continue;
            }
            self.next_id += 1;
            let receipt = self.next_id;
            let vt = self.visibility_timeout_ms;
            let m = &mut self.messages[i];
            m.receive_count += 1;
            m.visible_at_ms = now_ms + vt;
            m.receipt = receipt;
            out.push(Received {
                message_id: m.id.clone(),
                receipt_handle: format!("{}#{receipt}", m.id),
                body: m.body.clone(),
                group_id: m.group_id.clone(),
                sent_at_ms: m.sent_at_ms,
                receive_count: m.receive_count,
            });
            if let Some(g) = group {
                blocked.insert(g);
            }
            i += 1;
        }
        out
    }

    /// `DeleteMessage` by receipt handle; a stale receipt (the message was received
    /// again since) deletes nothing, as in SQS.
    pub fn delete(&mut self, receipt_handle: &str) -> bool {
        let Some((id, receipt)) = receipt_handle.rsplit_once('#') else { return false };
        let Ok(receipt) = receipt.parse::<u64>() else { return false };
        let before = self.messages.len();
        self.messages.retain(|m| !(m.receipt == receipt && m.id == id));
        before != self.messages.len()
    }

    /// `ChangeMessageVisibility`: the message with this receipt comes back `ms` from
    /// `now_ms`. False when the receipt is not current (deleted, or received again).
    pub fn change_visibility(&mut self, receipt_handle: &str, ms: u64, now_ms: u64) -> bool {
        let Some((id, receipt)) = receipt_handle.rsplit_once('#') else { return false };
        let Ok(receipt) = receipt.parse::<u64>() else { return false };
        match self.messages.iter_mut().find(|m| m.receipt == receipt && m.id == id) {
            Some(m) => {
                m.visible_at_ms = now_ms + ms;
                true
            }
            None => false,
        }
    }

    /// Whether this is a FIFO queue.
    #[must_use]
    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// Messages not yet deleted (in flight or waiting).
    #[must_use]
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Bodies of every message not yet deleted, oldest first.
    #[must_use]
    pub fn bodies(&self) -> Vec<String> {
        self.messages.iter().map(|m| m.body.clone()).collect()
    }

    /// Every message sent at or after `since_ms`, deleted since or not.
    #[must_use]
    pub fn sent_since(&self, since_ms: u64) -> Vec<Received> {
        let from = self.sent.partition_point(|m| m.sent_at_ms < since_ms);
        self.sent[from..].to_vec()
    }

    /// Messages waiting (visible) and received but not deleted (in flight) at `now_ms`;
    /// a delayed message counts as in flight (SQS counts it as delayed; the flow sends
    /// delays only to the re-drive queue, which no operator report splits).
    #[must_use]
    pub fn depth(&self, now_ms: u64) -> (u64, u64) {
        let visible = self.messages.iter().filter(|m| m.visible_at_ms <= now_ms).count() as u64;
        (visible, self.messages.len() as u64 - visible)
    }

    /// The dead-letter queue.
    #[must_use]
    pub fn dead_letters(&self) -> &[Received] {
        &self.dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivers_after_visibility_timeout_then_dead_letters() {
        let mut q = SimQueue::new(false, 1_000, 2);
        q.send("a".into(), None, 0);
        assert_eq!(q.receive(10, 0).len(), 1);
        assert!(q.receive(10, 500).is_empty(), "invisible while in flight");
        let again = q.receive(10, 1_000);
        assert_eq!(again[0].receive_count, 2);
        assert!(q.receive(10, 2_000).is_empty());
        assert_eq!(q.dead_letters().len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn fifo_groups_deliver_one_at_a_time_in_order() {
        let mut q = SimQueue::new(true, 1_000, 5);
        q.send("u1-a".into(), Some("u1".into()), 0);
        q.send("u1-b".into(), Some("u1".into()), 0);
        q.send("u2-a".into(), Some("u2".into()), 0);
        let first = q.receive(10, 0);
        let bodies: Vec<_> = first.iter().map(|r| r.body.as_str()).collect();
        assert_eq!(bodies, ["u1-a", "u2-a"]);
        assert!(q.receive(10, 10).is_empty());
        assert!(q.delete(&first[0].receipt_handle));
        assert_eq!(q.receive(10, 20)[0].body, "u1-b");
    }

    #[test]
    fn fifo_deduplicates_within_five_minutes() {
        let mut q = SimQueue::new(true, 1_000, 5);
        assert!(q.send_deduplicated("a".into(), "g".into(), "d1", 0));
        assert!(!q.send_deduplicated("a".into(), "g".into(), "d1", 299_999));
        assert!(q.send_deduplicated("b".into(), "g".into(), "d2", 1));
        assert!(q.send_deduplicated("a".into(), "g".into(), "d1", 300_000));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn stale_receipt_deletes_nothing() {
        let mut q = SimQueue::new(false, 100, 5);
        q.send("a".into(), None, 0);
        let r1 = q.receive(1, 0);
        let _r2 = q.receive(1, 100);
        assert!(!q.delete(&r1[0].receipt_handle));
        assert_eq!(q.len(), 1);
    }
}

/// The messages an event source mapping's invocations are handling: a message received
/// again while an invocation still handles it (its visibility timeout ran out first, as
/// SQS does whatever the consumer is doing) is an overlap, counted.
#[derive(Debug, Default)]
pub struct InFlight {
    handling: std::sync::Mutex<BTreeMap<String, u32>>,
    overlaps: std::sync::atomic::AtomicU64,
}

impl InFlight {
    /// An invocation starts on `batch`.
    pub fn start(&self, batch: &[Received]) {
        let mut handling = self.handling.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for m in batch {
            let n = handling.entry(m.message_id.clone()).or_default();
            if *n > 0 {
                self.overlaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            *n += 1;
        }
    }

    /// The invocation on `batch` ended.
    pub fn end(&self, batch: &[Received]) {
        let mut handling = self.handling.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for m in batch {
            if let Some(n) = handling.get_mut(&m.message_id) {
                *n -= 1;
                if *n == 0 {
                    handling.remove(&m.message_id);
                }
            }
        }
    }

    /// Messages received again while an invocation still handled them.
    #[must_use]
    pub fn overlaps(&self) -> u64 {
        self.overlaps.load(std::sync::atomic::Ordering::Relaxed)
    }
}
