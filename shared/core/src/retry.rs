//! The one backoff policy every retry loop follows: backon's exponential backoff,
//! doubling from a first delay up to a cap, without jitter (a simulated run must repeat
//! for its seed; the SDK jitters its own retries). Each loop names its schedule here.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Doubling delays from `first` up to `cap`, at most `times` of them (`None`: no end).
#[must_use]
pub fn doubling(first: Duration, cap: Duration, times: Option<usize>) -> ExponentialBuilder {
    let b = ExponentialBuilder::new().with_factor(2.0).with_min_delay(first).with_max_delay(cap);
    match times {
        Some(n) => b.with_max_times(n),
        None => b.without_max_times(),
    }
}

/// Polling the SSM agent: every 10 s (the caller stops at its deadline, measured on its
/// clock, API calls included). An attached pool instance's agent is online at the first
/// look; a fresh instance's comes up about half a minute after it runs. Few polls:
/// each is a call that can fail, and a failure costs the event a minute (Lambda's
/// retry), while a late look costs at most 10 s.
pub fn agent_poll() -> impl Iterator<Item = Duration> {
    doubling(Duration::from_secs(10), Duration::from_secs(10), None).build()
}

/// Waiting for a detach to finish: every 4 s, for 8 s (AWS detaches in seconds,
/// sometimes tens of seconds; past this the invocation hands the move to its retry,
/// `SIGNUP_RETRY_S` later, within the signup function's 15 s timeout). Few polls: each
/// is a call that can fail, and a failure costs the signup its retry delay, while a
/// late look costs at most 4 s.
pub fn detach_poll() -> impl Iterator<Item = Duration> {
    doubling(Duration::from_secs(4), Duration::from_secs(4), Some(2)).build()
}

/// `SendCommand` answered `InvalidInstanceId` right after the agent looked online: two
/// more tries, 2 s apart (registration is still propagating).
pub fn command_resend() -> impl Iterator<Item = Duration> {
    doubling(Duration::from_secs(2), Duration::from_secs(2), Some(2)).build()
}

/// Reading again what an event says just changed (an attach its Launch Successful
/// reports), when `Describe*` does not show it yet: twice, 2 s apart. EC2 documents its
/// API as eventually consistent and advises describing again with backoff from a couple
/// of seconds; Auto Scaling documents nothing, and is treated the same.
pub fn consistency_reread() -> impl Iterator<Item = Duration> {
    doubling(Duration::from_secs(2), Duration::from_secs(2), Some(2)).build()
}

/// The SDK's standard retry mode on throttling, as the in-memory cloud applies it: four
/// retries (five attempts) from 100 ms, doubling.
pub fn sdk_throttle() -> impl Iterator<Item = Duration> {
    doubling(Duration::from_millis(100), Duration::from_secs(20), Some(4)).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole milliseconds, as the loops sleep them (backon scales by an `f32` factor,
    /// so 100 ms doubled is 200.000003 ms).
    fn ms(i: impl Iterator<Item = Duration>) -> Vec<u128> {
        i.map(|d| d.as_millis()).collect()
    }

    #[test]
    fn schedules() {
        assert_eq!(ms(agent_poll().take(4)), [10_000, 10_000, 10_000, 10_000]);
        assert_eq!(ms(command_resend()), [2_000, 2_000]);
        assert_eq!(ms(consistency_reread()), [2_000, 2_000]);
        let detach = ms(detach_poll());
        assert_eq!((detach.len(), detach[0], detach[1], detach.iter().sum::<u128>()), (2, 4_000, 4_000, 8_000));
        assert_eq!(ms(sdk_throttle()), [100, 200, 400, 800]);
    }
}
