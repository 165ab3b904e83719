//! The queueing formulas the pool-sizer sizes with: Erlang B for a pool whose misses go
//! cold (a loss system), Erlang C for one whose misses wait for a refill (a delay system).

/// Erlang B, `B(n, load)`: the share of arrivals a loss system of `n` servers turns
/// away under `load` erlangs (arrival rate times mean holding time).
#[must_use]
pub fn erlang_b(n: u32, load: f64) -> f64 {
    erlang_b_by_size(load).nth(n as usize).unwrap_or(0.0)
}

/// `B(0, load)`, `B(1, load)`, ... by the stable recurrence `B(0) = 1`,
/// `B(k) = load·B(k−1) / (k + load·B(k−1))`.
fn erlang_b_by_size(load: f64) -> impl Iterator<Item = f64> {
    std::iter::successors(Some((0_u32, 1.0_f64)), move |&(k, b)| {
        let k = k.checked_add(1)?;
        Some((k, load * b / (f64::from(k) + load * b)))
    })
    .map(|(_, b)| b)
}

/// Erlang C, `C(n, load)`: the share of arrivals that find all `n` servers busy in a
/// system whose arrivals wait for a server instead of leaving, `n·B / (n − load·(1 − B))`
/// with `B = B(n, load)`; 1 when the load is `n` or more (the queue never empties).
#[must_use]
pub fn erlang_c(n: u32, load: f64) -> f64 {
    erlang_c_from_b(n, load, erlang_b(n, load))
}

/// `C(n, load)` from `b = B(n, load)` already in hand.
fn erlang_c_from_b(n: u32, load: f64, b: f64) -> f64 {
    let n = f64::from(n);
    let room = n - load * (1.0 - b);
    if load >= n || room <= 0.0 { 1.0 } else { (n * b / room).min(1.0) }
}

/// The smallest pool that serves `target` of signups at their first look, when they
/// arrive at a rate that keeps `mean` refills in flight (λT).
///
/// Misses that go cold take nothing: the pool is a loss system and the share of
/// signups that find it empty is Erlang B. Misses that wait (`waits`: `POOL_WAIT_S` above
/// 0) take the next refill to finish, so the places stay busy longer and the pool is a
/// delay system: Erlang C. A miss that gives up after `POOL_WAIT_S` takes nothing, so the
/// truth lies between the two; C, the larger, is the one that keeps the target (with
/// Erlang B the simulated steady pool served 0.977 warm at the first look for a target of
/// 0.99).
#[must_use]
pub fn pool_size_for(mean: f64, target: f64, waits: bool) -> u32 {
    let miss = (1.0 - target).clamp(0.0, 1.0);
    if !mean.is_finite() || mean <= 0.0 {
        // No signups expected: nobody is turned away, and one instance covers the first.
        return 1;
    }
    // B falls with n, to 0 in floating point soon after n passes the load, so the walk
    // ends for any target (one of 1 ends where B underflows); C follows B down once n
    // is past the load.
    let n = erlang_b_by_size(mean)
        .enumerate()
        .map(|(n, b)| {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let share = if waits { erlang_c_from_b(n, mean, b) } else { b };
            (n, share)
        })
        .find(|(_, share)| *share <= miss)
        .map_or(u32::MAX, |(n, _)| n);
    n.max(1)
}
