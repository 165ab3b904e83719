//! Where each user's time to ready went: the waits the recovery mechanisms impose
//! (a signup waiting out the queue's visibility timeout, an event waiting for Lambda's
//! retry, a stalled user waiting for the reconcile sweep), the attempts lost to a
//! failover, and the rest, the work itself (claim, detach, boot, preparation, init).
//!
//! The platform and the cloud report each wait as it ends, as an interval of simulated
//! time; a user's intervals are attributed without overlap (a part already attributed
//! is not counted twice), so the parts add up to the user's time to ready.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why a user waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wait {
    /// The signup message waited on the queue for its first delivery.
    Queued,
    /// A failed signup or re-drive invocation's message waited to come back.
    Redelivery,
    /// A failed event invocation waited for Lambda's asynchronous retry.
    EventRetry,
    /// The user's record stopped moving until the reconcile sweep re-drove it (a lost
    /// event, a dead-lettered signup, an invocation that died after its retries).
    Sweep,
    /// An attempt that failed (its init failed or timed out) before the failover.
    FailedAttempt,
}

/// One user's time to ready, by where it went (seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Breakdown {
    pub queued_s: f64,
    pub redelivery_s: f64,
    pub event_retry_s: f64,
    pub sweep_s: f64,
    pub failed_attempts_s: f64,
    /// Everything else: claiming, detaching, booting, preparing, initialising.
    pub work_s: f64,
}

impl Breakdown {
    fn slot(&mut self, wait: Wait) -> &mut f64 {
        match wait {
            Wait::Queued => &mut self.queued_s,
            Wait::Redelivery => &mut self.redelivery_s,
            Wait::EventRetry => &mut self.event_retry_s,
            Wait::Sweep => &mut self.sweep_s,
            Wait::FailedAttempt => &mut self.failed_attempts_s,
        }
    }

    fn waits_s(&self) -> f64 {
        self.queued_s + self.redelivery_s + self.event_retry_s + self.sweep_s + self.failed_attempts_s
    }

    /// The breakdown of a user ready after `total_s`: the rest is work.
    #[must_use]
    pub fn completed(mut self, total_s: f64) -> Self {
        self.work_s = (total_s - self.waits_s()).max(0.0);
        self
    }

    /// The mean of each part over `parts`.
    #[must_use]
    pub fn mean(parts: &[Self]) -> Option<Self> {
        if parts.is_empty() {
            return None;
        }
        let n = parts.len() as f64;
        let sum = |f: fn(&Self) -> f64| parts.iter().map(f).sum::<f64>() / n;
        Some(Self {
            queued_s: sum(|b| b.queued_s),
            redelivery_s: sum(|b| b.redelivery_s),
            event_retry_s: sum(|b| b.event_retry_s),
            sweep_s: sum(|b| b.sweep_s),
            failed_attempts_s: sum(|b| b.failed_attempts_s),
            work_s: sum(|b| b.work_s),
        })
    }
}

#[derive(Debug, Default, Clone)]
struct UserWaits {
    /// Up to when (epoch ms) the user's time is attributed.
    accounted_until_ms: u64,
    parts: Breakdown,
    /// When the user's last queue-driven invocation failed (its message waits to be
    /// seen again).
    message_failed_ms: Option<u64>,
}

/// The waits of every user so far.
#[derive(Debug, Default)]
pub(crate) struct WaitLog {
    users: BTreeMap<String, UserWaits>,
}

impl WaitLog {
    /// `user` waited for `wait` from `from_ms` to `to_ms`; the part not attributed yet
    /// is attributed to it.
    pub(crate) fn add(&mut self, user: &str, wait: Wait, from_ms: u64, to_ms: u64) {
        let u = self.users.entry(user.to_owned()).or_default();
        let from = from_ms.max(u.accounted_until_ms);
        if to_ms > from {
            *u.parts.slot(wait) += (to_ms - from) as f64 / 1000.0;
            u.accounted_until_ms = to_ms;
        }
    }

    /// Everything of `user`'s time up to `at_ms` not attributed yet went to `wait`.
    pub(crate) fn add_since_accounted(&mut self, user: &str, wait: Wait, at_ms: u64) {
        let from = self.users.get(user).map_or(0, |u| u.accounted_until_ms);
        if from > 0 {
            self.add(user, wait, from, at_ms);
        }
    }

    /// A message about `user` was received: a `signup` message's `first` delivery ends
    /// its queued wait; a redelivery (of either queue's message) ends the wait since
    /// the last failed invocation.
    pub(crate) fn message_received(&mut self, user: &str, signup: bool, first: bool, sent_ms: u64, now_ms: u64) {
        if first {
            if signup {
                let u = self.users.entry(user.to_owned()).or_default();
                u.accounted_until_ms = u.accounted_until_ms.max(sent_ms);
                self.add(user, Wait::Queued, sent_ms, now_ms);
            }
        } else {
            let failed = self.users.get(user).and_then(|u| u.message_failed_ms).unwrap_or(sent_ms);
            self.add(user, Wait::Redelivery, failed, now_ms);
        }
    }

    /// An invocation handling a message about `user` failed at `at_ms`.
    pub(crate) fn message_failed(&mut self, user: &str, at_ms: u64) {
        self.users.entry(user.to_owned()).or_default().message_failed_ms = Some(at_ms);
    }

    /// The attributed parts of every user (work not filled in).
    pub(crate) fn all(&self) -> BTreeMap<String, Breakdown> {
        self.users.iter().map(|(u, w)| (u.clone(), w.parts)).collect()
    }

    /// The attributed parts of `user` (work not filled in).
    pub(crate) fn of(&self, user: &str) -> Breakdown {
        self.users.get(user).map(|u| u.parts).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::{Breakdown, Wait, WaitLog};

    #[test]
    fn overlapping_waits_are_counted_once_and_the_rest_is_work() {
        let mut log = WaitLog::default();
        log.message_received("u", true, true, 1_000, 1_500);
        log.message_failed("u", 11_000);
        log.message_received("u", true, false, 1_000, 101_000);
        // A sweep wait that began before the redelivery ended counts only its new part.
        log.add("u", Wait::Sweep, 50_000, 161_000);
        log.add_since_accounted("u", Wait::FailedAttempt, 200_000);
        let expected = Breakdown {
            queued_s: 0.5,
            redelivery_s: 90.0,
            event_retry_s: 0.0,
            sweep_s: 60.0,
            failed_attempts_s: 39.0,
            work_s: 400.0 - 0.5 - 90.0 - 60.0 - 39.0,
        };
        assert_eq!(log.of("u").completed(400.0), expected);
        assert_eq!(Breakdown::mean(&[]), None);
    }
}
