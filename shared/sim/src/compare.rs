//! Comparing pools fairly: the static pool at the same warm-hit rate as a run (found
//! by simulation, then interpolated between the two sizes around that rate), and the
//! mean and spread of a figure over seeds.

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::simulate::{self, PoolPolicy, SimRun, SimulateError, SimulateOptions};

/// The search for the smallest static pool that reaches a warm-hit target.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticSearch {
    /// The smallest size found, and its run.
    pub best: Option<(u32, SimRun)>,
    /// The largest size tried that misses the target (one below `best`), and its run.
    pub below: Option<(u32, SimRun)>,
    /// Every size tried, with its warm-hit rate.
    pub tried: Vec<(u32, f64)>,
    /// The invariant violations of every run the search made (not only the two it
    /// keeps), each with its size: a static pool breaks the same invariants as any other.
    pub violations: Vec<(u32, String)>,
}

/// Finds the smallest static pool size whose run reaches `target` warm hits on the same
/// workload and seed, by doubling and then bisecting (the warm-hit rate grows with the
/// pool). Sizes above `max` are not tried.
pub fn smallest_static(
    opts: &SimulateOptions,
    target: f64,
    max: u32,
    progress: &ProgressBar,
) -> Result<StaticSearch, SimulateError> {
    let mut tried = Vec::new();
    let mut violations = Vec::new();
    let mut runs: BTreeMap<u32, SimRun> = BTreeMap::new();
    let mut attempt = |n: u32, tried: &mut Vec<(u32, f64)>| -> Result<bool, SimulateError> {
        let run = simulate::run(&SimulateOptions { policy: PoolPolicy::Static(n), ..opts.clone() }, progress)?;
        let ok = run.summary.warm_hit_rate >= target;
        tried.push((n, run.summary.warm_hit_rate));
        violations.extend(run.summary.violations.iter().map(|v| (n, v.clone())));
        runs.insert(n, run);
        Ok(ok)
    };
    // Doubling: find a size that reaches the target.
    let mut lo = 0_u32; // known to miss (0 serves nobody)
    let mut hi = 4_u32.min(max.max(1));
    loop {
        if attempt(hi, &mut tried)? {
            break;
        }
        if hi >= max {
            let below = runs.remove(&hi).map(|r| (hi, r));
            return Ok(StaticSearch { best: None, below, tried, violations });
        }
        lo = hi;
        hi = (hi * 2).min(max);
    }
    // Bisect between a miss (lo) and a hit (hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if attempt(mid, &mut tried)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let best = runs.remove(&hi).map(|r| (hi, r));
    let below = runs.remove(&lo).map(|r| (lo, r));
    Ok(StaticSearch { best, below, tried, violations })
}

/// A static pool at exactly a given warm-hit rate: linear between the largest size that
/// misses it and the smallest that reaches it (a pool of 0 serves nobody and costs
/// nothing). A fractional size stands for a pool that alternates between the two.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EqualStatic {
    pub size: f64,
    pub warm_hit_rate: f64,
    pub cost_usd: f64,
    pub idle_instance_hours: f64,
}

impl StaticSearch {
    /// The static pool at `hit_rate`, the rate this search looked for; `None` when no
    /// size up to the search's bound reached it.
    #[must_use]
    pub fn at(&self, hit_rate: f64) -> Option<EqualStatic> {
        let (n, hi) = self.best.as_ref()?;
        let hi = &hi.summary;
        let (m, lo_hit, lo_cost, lo_idle) = match &self.below {
            Some((m, r)) => (f64::from(*m), r.summary.warm_hit_rate, r.summary.cost_usd, r.summary.idle_instance_hours),
            None => (0.0, 0.0, 0.0, 0.0),
        };
        let span = hi.warm_hit_rate - lo_hit;
        let f = if span > 0.0 { ((hit_rate - lo_hit) / span).clamp(0.0, 1.0) } else { 1.0 };
        let lerp = |a: f64, b: f64| a + f * (b - a);
        Some(EqualStatic {
            size: lerp(m, f64::from(*n)),
            warm_hit_rate: lerp(lo_hit, hi.warm_hit_rate),
            cost_usd: lerp(lo_cost, hi.cost_usd),
            idle_instance_hours: lerp(lo_idle, hi.idle_instance_hours),
        })
    }
}

/// The mean and spread of one figure over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values.
    #[must_use]
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len() as f64;
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n;
        let var =
            if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        Some(Self {
            mean,
            sd: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{Pricing, RunSummary, TimeToReady};

    fn run_with(hit: f64, cost: f64) -> SimRun {
        let summary = RunSummary {
            policy: String::new(),
            claim_strategy: String::new(),
            signups: 100,
            ready: 100,
            failed: 0,
            unfinished: 0,
            warm_hit_rate: hit,
            waited_rate: 0.0,
            waited_served_warm_rate: 0.0,
            failovers: 0,
            time_to_ready: TimeToReady::default(),
            idle_instance_hours: cost / Pricing::default().running_usd_per_hour(),
            preparing_instance_hours: 0.0,
            ready_instance_hours: 0.0,
            stopped_instance_hours: 0.0,
            cost_usd: cost,
            mean_pool_size: 0.0,
            max_pool_size: 0,
            calls_per_signup: BTreeMap::new(),
            calls_per_signup_total: 0.0,
            detach_attempts_per_claim: None,
            claim_conflicts_per_claim: None,
            simulated_hours: 0.0,
            live_users: 0,
            api: crate::ApiUsage::default(),
            violations: Vec::new(),
        };
        SimRun { summary, samples: Vec::new(), users: Vec::new() }
    }

    #[test]
    fn the_static_pool_at_a_rate_lies_between_the_sizes_around_it() {
        let search = StaticSearch {
            best: Some((20, run_with(0.99, 10.0))),
            below: Some((19, run_with(0.97, 9.0))),
            tried: Vec::new(),
            violations: Vec::new(),
        };
        let at = search.at(0.985).unwrap();
        assert!((at.size - 19.75).abs() < 1e-9, "{at:?}");
        assert!((at.warm_hit_rate - 0.985).abs() < 1e-9);
        assert!((at.cost_usd - 9.75).abs() < 1e-9);
        // At the reaching size's own rate: that size.
        assert!((search.at(0.99).unwrap().size - 20.0).abs() < 1e-9);
        // With no size below tried (the first size reached it), from an empty pool.
        let first = StaticSearch {
            best: Some((1, run_with(0.5, 2.0))),
            below: None,
            tried: Vec::new(),
            violations: Vec::new(),
        };
        let half = first.at(0.25).unwrap();
        assert!((half.size - 0.5).abs() < 1e-9 && (half.cost_usd - 1.0).abs() < 1e-9, "{half:?}");
        assert_eq!(StaticSearch { best: None, below: None, tried: Vec::new(), violations: Vec::new() }.at(0.9), None);
    }

    #[test]
    fn a_spread_has_its_mean_sample_deviation_and_range() {
        let s = Spread::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.sd - (5.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.min - 1.0).abs() < 1e-12 && (s.max - 4.0).abs() < 1e-12);
        assert!(Spread::of(&[7.0]).unwrap().sd.abs() < 1e-12);
        assert_eq!(Spread::of(&[]), None);
    }
}
