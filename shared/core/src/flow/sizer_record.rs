//! The pool-sizer's last decision, kept on the pool group ([`tag::SIZER`]) so that an
//! operator sees what it estimated, what it asked for and when it last ran
//! (`warmpool status`) without reading its logs or its metrics.
//!
//! The record is written when the decision changes (the pool's size, the size computed
//! for the target, the warm tier's size) and otherwise every [`RECORD_EVERY_MS`]: one
//! `CreateOrUpdateTags` at most a minute, usually one every ten, on the pool group alone,
//! whatever the number of users. Its age is the sizer's heartbeat: a record older than
//! [`STALE_AFTER_MS`] on a pool that is not draining means the sizer has stopped running
//! (its schedule, its role, its errors). A failed write is logged and left to the next
//! run: the sizing is done by then, and the record only reports it.

use tracing::warn;

use super::sizer::SizerDecision;
use crate::domain::tag;
use crate::ports::{Cloud, Group};

/// How often an unchanged decision is written again (ms).
pub const RECORD_EVERY_MS: u64 = 10 * 60_000;

/// A record older than this (ms) on a pool that is not draining: the sizer is not
/// running (it writes one at least every [`RECORD_EVERY_MS`]).
pub const STALE_AFTER_MS: u64 = 2 * RECORD_EVERY_MS;

/// One decision, as kept in the tag.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SizerRecord {
    /// When the run made it (ms since the epoch).
    pub at_ms: u64,
    /// Estimated signups an hour.
    pub rate_per_h: f64,
    /// Estimated refill time of the running pool (s).
    pub refill_s: u32,
    /// The size computed for the target, before the bounds.
    pub computed: u32,
    /// The desired capacity it set.
    pub desired: u32,
    /// The warm tier's size it set, when the pool has one.
    pub warm: Option<u32>,
}

impl SizerRecord {
    /// The record of a run's decision made at `at_ms`.
    #[must_use]
    pub fn of(decision: &SizerDecision, at_ms: u64) -> Self {
        Self {
            at_ms,
            rate_per_h: (decision.rate_per_s * 3600.0 * 10.0).round() / 10.0,
            refill_s: clamp_u32(decision.refill_s.round()),
            computed: decision.computed,
            desired: decision.desired,
            warm: decision.warm.as_ref().map(|w| w.size),
        }
    }

    /// The tag's value: `at=..;rate_per_h=..;refill_s=..;computed=..;desired=..`, and
    /// `;warm=..` with a warm tier (well under the 256 characters a tag value may hold).
    #[must_use]
    pub fn encode(&self) -> String {
        let base = format!(
            "at={};rate_per_h={:.1};refill_s={};computed={};desired={}",
            self.at_ms, self.rate_per_h, self.refill_s, self.computed, self.desired
        );
        match self.warm {
            Some(w) => format!("{base};warm={w}"),
            None => base,
        }
    }

    /// Reads a tag's value; `None` when it is not one [`encode`](Self::encode) wrote.
    #[must_use]
    pub fn decode(value: &str) -> Option<Self> {
        let mut fields = std::collections::BTreeMap::new();
        for pair in value.split(';') {
            let (k, v) = pair.split_once('=')?;
            if fields.insert(k.trim(), v.trim()).is_some() {
                return None;
            }
        }
        let rate_per_h: f64 = fields.remove("rate_per_h")?.parse().ok()?;
        if !rate_per_h.is_finite() || rate_per_h < 0.0 {
            return None;
        }
        let record = Self {
            at_ms: fields.remove("at")?.parse().ok()?,
            rate_per_h,
            refill_s: fields.remove("refill_s")?.parse().ok()?,
            computed: fields.remove("computed")?.parse().ok()?,
            desired: fields.remove("desired")?.parse().ok()?,
            warm: fields.remove("warm").map(str::parse).transpose().ok()?,
        };
        fields.is_empty().then_some(record)
    }

    /// Whether `self`, the run's decision, is to be written over `kept`, the record the
    /// pool carries: none kept or unreadable, a changed decision, or `kept` is
    /// [`RECORD_EVERY_MS`] old.
    #[must_use]
    pub fn due_over(&self, kept: Option<&Self>) -> bool {
        kept.is_none_or(|k| {
            (k.desired, k.computed, k.warm) != (self.desired, self.computed, self.warm)
                || self.at_ms.saturating_sub(k.at_ms) >= RECORD_EVERY_MS
        })
    }

    /// Whether the sizer has stopped writing: older than [`STALE_AFTER_MS`] at `now_ms`.
    #[must_use]
    pub fn stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.at_ms) > STALE_AFTER_MS
    }
}

fn clamp_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and whole: the cast is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = x as u32;
        n
    }
}

/// The record the pool group carries, if any (and readable).
#[must_use]
pub fn kept(pool: &Group) -> Option<SizerRecord> {
    pool.tags.get(tag::SIZER).and_then(|v| SizerRecord::decode(v))
}

/// Writes the run's decision to the pool group when it is due (see
/// [`SizerRecord::due_over`]); a failed write is logged, not returned.
pub(crate) async fn keep<C: Cloud>(cloud: &C, pool: &Group, decision: &SizerDecision, now_ms: u64) {
    let record = SizerRecord::of(decision, now_ms);
    if !record.due_over(kept(pool).as_ref()) {
        return;
    }
    if let Err(e) = cloud.tag_group(&pool.name, &[(tag::SIZER.to_owned(), record.encode())]).await {
        warn!(pool = %pool.name, error = %e, "could not record the pool-sizer's decision on the pool group; the next run tries again");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(at_ms: u64) -> SizerRecord {
        SizerRecord { at_ms, rate_per_h: 61.5, refill_s: 570, computed: 19, desired: 18, warm: None }
    }

    #[test]
    fn a_record_reads_back_as_written_with_and_without_a_warm_tier() {
        let r = record(1_700_000_000_000);
        assert_eq!(r.encode(), "at=1700000000000;rate_per_h=61.5;refill_s=570;computed=19;desired=18");
        assert_eq!(SizerRecord::decode(&r.encode()), Some(r.clone()));
        let w = SizerRecord { warm: Some(4), ..r };
        assert!(w.encode().ends_with(";warm=4"));
        assert_eq!(SizerRecord::decode(&w.encode()), Some(w.clone()));
        assert!(w.encode().len() < 256, "a tag value holds 256 characters");
    }

    #[test]
    fn anything_else_in_the_tag_is_not_a_record() {
        for bad in [
            "",
            "at=1",
            "at=x;rate_per_h=1;refill_s=1;computed=1;desired=1",
            "at=1;rate_per_h=-1;refill_s=1;computed=1;desired=1",
            "at=1;rate_per_h=NaN;refill_s=1;computed=1;desired=1",
            "at=1;rate_per_h=1;refill_s=1;computed=1;desired=1;warm=",
            "at=1;rate_per_h=1;refill_s=1;computed=1;desired=1;extra=2",
            "at=1;at=2;rate_per_h=1;refill_s=1;computed=1;desired=1",
            "3,4,5",
        ] {
            assert_eq!(SizerRecord::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_record_is_written_on_a_change_or_when_ten_minutes_old() {
        let kept = record(0);
        assert!(record(60_000).due_over(None), "nothing kept yet");
        assert!(!record(RECORD_EVERY_MS - 1).due_over(Some(&kept)), "unchanged and young");
        assert!(record(RECORD_EVERY_MS).due_over(Some(&kept)), "unchanged but ten minutes old");
        assert!(SizerRecord { desired: 17, ..record(1) }.due_over(Some(&kept)));
        assert!(SizerRecord { computed: 20, ..record(1) }.due_over(Some(&kept)));
        assert!(SizerRecord { warm: Some(2), ..record(1) }.due_over(Some(&kept)));
        assert!(
            !SizerRecord { rate_per_h: 70.0, refill_s: 600, ..record(1) }.due_over(Some(&kept)),
            "an estimate alone"
        );
    }

    #[test]
    fn a_record_older_than_twenty_minutes_is_stale() {
        let r = record(1_000);
        assert!(!r.stale(1_000 + STALE_AFTER_MS));
        assert!(r.stale(1_000 + STALE_AFTER_MS + 1));
        assert!(!r.stale(0), "a clock behind the record is no staleness");
    }

    #[test]
    fn a_decision_rounds_to_what_the_tag_keeps() {
        let d = SizerDecision {
            rate_per_s: 61.54 / 3600.0,
            refill_s: 569.6,
            launches_seen: 3,
            computed: 19,
            previous: 17,
            desired: 18,
            warm: None,
        };
        let r = SizerRecord::of(&d, 5);
        assert_eq!((r.rate_per_h, r.refill_s, r.computed, r.desired, r.warm), (61.5, 570, 19, 18, None));
    }
}
