//! `warmpool simulate`: a workload of signups over simulated hours, through the real
//! handlers on the in-memory cloud, with a static or an adaptive pool; what users
//! waited, what the pool cost, and how many AWS calls it took.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use thiserror::Error;

use crate::platform::{Platform, PlatformOptions};
pub use crate::pricing::Pricing;
use crate::report::{Report, percentile};
use crate::{ClaimStrategy, CloudModel};
use warmpool_core::WarmTier;
use warmpool_core::domain::UserRecord;

/// A problem with the simulator's input.
#[derive(Debug, Error, PartialEq)]
pub enum SimulateError {
    #[error("pool policy {0:?} is not static:N or adaptive:TARGET (such as static:20 or adaptive:0.99)")]
    BadPolicy(String),
    #[error("{path}, line {line}: {value:?} is not a signup time in seconds from the start")]
    BadCsv { path: String, line: usize, value: String },
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("the workload has no signups; check the rate, the hours or the CSV file")]
    Empty,
    #[error(
        "the workload signs up {users} users, each an Auto Scaling group, above the group quota of {quota} \
         (AWS's default is 500 a Region): raise it as the deployment would, with --group-quota (at least {needed})"
    )]
    GroupQuota { users: usize, quota: usize, needed: usize },
}

/// When signups arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// A Poisson process at a steady rate.
    Poisson { per_hour: f64, hours: f64 },
    /// A day whose rate follows a cosine from a trough at midnight to a peak ten times
    /// higher at noon; a Poisson process with that varying rate.
    Diurnal { peak_per_hour: f64, hours: f64 },
    /// Signup times read from a CSV file (seconds from the start, first column).
    Trace { times_s: Vec<f64> },
    /// `users` signups at the same instant, and a cool-down of `cooldown_s` after it over
    /// which the pool is costed (its refills, and an adaptive pool's way back down).
    Burst { users: u32, cooldown_s: f64 },
}

/// The diurnal day's peak over its trough.
pub const DIURNAL_PEAK_TO_TROUGH: f64 = 10.0;

impl Workload {
    /// The diurnal rate (per hour) at `t_s` seconds into the day.
    #[must_use]
    pub fn diurnal_rate(peak_per_hour: f64, t_s: f64) -> f64 {
        let trough = peak_per_hour / DIURNAL_PEAK_TO_TROUGH;
        let phase = (1.0 - (2.0 * std::f64::consts::PI * t_s / 86_400.0).cos()) / 2.0;
        trough + (peak_per_hour - trough) * phase
    }

    /// Signup times (s from the start), sorted; the same seed gives the same times.
    #[must_use]
    pub fn arrivals(&self, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5157_a11e_d0c5_0000);
        let mut poisson = |rate_per_hour: f64, hours: f64, accept: &dyn Fn(f64) -> f64| -> Vec<f64> {
            let mut out = Vec::new();
            if rate_per_hour <= 0.0 {
                return out;
            }
            let end = hours * 3600.0;
            let mut t = 0.0;
            loop {
                // Exponential gaps at the bounding rate; thinning keeps each candidate
                // with probability rate(t)/bound (Lewis and Shedler).
                let u: f64 = rng.random::<f64>();
                t += -(1.0 - u).ln() * 3600.0 / rate_per_hour;
                if t >= end {
                    return out;
                }
                if rng.random::<f64>() < accept(t) {
                    out.push(t);
                }
            }
        };
        match self {
            Self::Poisson { per_hour, hours } => poisson(*per_hour, *hours, &|_| 1.0),
            Self::Diurnal { peak_per_hour, hours } => {
                let peak = *peak_per_hour;
                poisson(peak, *hours, &|t| Self::diurnal_rate(peak, t) / peak)
            }
            Self::Trace { times_s } => {
                let mut t = times_s.clone();
                t.sort_by(f64::total_cmp);
                t
            }
            Self::Burst { users, .. } => vec![0.0; *users as usize],
        }
    }

    /// How long the workload runs (s): what the pool's cost is counted over.
    #[must_use]
    pub fn duration_s(&self, arrivals: &[f64]) -> f64 {
        match self {
            Self::Poisson { hours, .. } | Self::Diurnal { hours, .. } => hours * 3600.0,
            Self::Trace { .. } => arrivals.last().copied().unwrap_or(0.0),
            Self::Burst { cooldown_s, .. } => *cooldown_s,
        }
    }

    /// A short description for reports.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Poisson { per_hour, hours } => format!("poisson {per_hour}/h for {hours} h"),
            Self::Diurnal { peak_per_hour, hours } => format!(
                "diurnal: {:.1}/h at midnight to {peak_per_hour}/h at noon, for {hours} h",
                peak_per_hour / DIURNAL_PEAK_TO_TROUGH
            ),
            Self::Trace { times_s } => format!("trace of {} signups", times_s.len()),
            Self::Burst { users, cooldown_s } => {
                format!("burst of {users} signups at once, costed over {:.1} h", cooldown_s / 3600.0)
            }
        }
    }

    /// Reads signup times from CSV text: one signup per line, its time in seconds from
    /// the start in the first column; a first line that is not a number is a header.
    pub fn parse_csv(path: &str, text: &str) -> Result<Self, SimulateError> {
        let mut times_s = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let first = line.split(',').next().unwrap_or_default().trim();
            if first.is_empty() {
                continue;
            }
            match first.parse::<f64>() {
                Ok(t) if t.is_finite() && t >= 0.0 => times_s.push(t),
                _ if i == 0 => {}
                _ => return Err(SimulateError::BadCsv { path: path.to_owned(), line: i + 1, value: first.to_owned() }),
            }
        }
        if times_s.is_empty() {
            return Err(SimulateError::Empty);
        }
        Ok(Self::Trace { times_s })
    }
}

/// How the pool is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PoolPolicy {
    /// A fixed desired capacity.
    Static(u32),
    /// The pool-sizer function, every minute, for this warm-hit target.
    Adaptive(f64),
}

impl PoolPolicy {
    pub fn parse(s: &str) -> Result<Self, SimulateError> {
        let bad = || SimulateError::BadPolicy(s.to_owned());
        match s.split_once(':') {
            Some(("static", n)) => n.trim().parse().map(Self::Static).map_err(|_| bad()),
            Some(("adaptive", t)) => {
                t.trim().parse::<f64>().ok().filter(|t| *t > 0.0 && *t < 1.0).map(Self::Adaptive).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }

    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Static(n) => format!("static:{n}"),
            Self::Adaptive(t) => format!("adaptive:{t}"),
        }
    }
}

/// The simulator's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateOptions {
    pub workload: Workload,
    pub policy: PoolPolicy,
    pub claim: ClaimStrategy,
    pub seed: u64,
    /// The adaptive pool's size at the start (the static pool starts at its size).
    pub initial_pool: u32,
    /// The pool's second tier (`POOL_WARM_TIER`); adaptive pools only.
    pub warm_tier: WarmTier,
    /// Prepared, stopped instances in the warm tier at the start.
    pub initial_warm: u32,
    /// The adaptive pool's bounds.
    pub min_pool: u32,
    pub max_pool: u32,
    /// The cloud's latencies and failure rates.
    pub model: CloudModel,
    /// How often the pool is sampled for its cost and the plot (s).
    pub sample_every_s: u64,
    /// How long after the last signup unfinished users are waited for (s).
    pub drain_s: u64,
    /// Configuration variables to set (name, value), as the template would.
    pub set: Vec<(String, String)>,
    /// What a pool instance costs.
    pub pricing: Pricing,
    /// Users who finished long ago, present from the start (each with its group and
    /// host). The account's group quota is taken as raised to hold them and the run's.
    pub live_users: u32,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            workload: Workload::Diurnal { peak_per_hour: 120.0, hours: 24.0 },
            policy: PoolPolicy::Adaptive(0.99),
            claim: ClaimStrategy::Rendezvous,
            seed: 1,
            initial_pool: 10,
            warm_tier: WarmTier::None,
            initial_warm: 10,
            min_pool: 1,
            max_pool: 200,
            model: CloudModel::default(),
            sample_every_s: 10,
            drain_s: 3 * 3600,
            set: Vec::new(),
            pricing: Pricing::default(),
            live_users: 0,
        }
    }
}

/// Time to ready (s) of one group of users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    pub users: usize,
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub p95_s: Option<f64>,
    pub p99_s: Option<f64>,
}

impl Percentiles {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self {
            users: v.len(),
            p50_s: percentile(&v, 50.0),
            p90_s: percentile(&v, 90.0),
            p95_s: percentile(&v, 95.0),
            p99_s: percentile(&v, 99.0),
        }
    }
}

/// Time to ready by path.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TimeToReady {
    /// Served from the pool (at once, or after waiting for it).
    pub warm: Percentiles,
    pub cold: Percentiles,
    /// The users who found no pool instance and waited for one (`POOL_WAIT_S`), served
    /// warm or, past the wait, cold.
    pub waited: Percentiles,
    pub all: Percentiles,
}

/// What one run produced (`--json` prints these).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub policy: String,
    pub claim_strategy: String,
    pub signups: usize,
    pub ready: usize,
    pub failed: usize,
    pub unfinished: usize,
    /// Signups that found a pool instance at their first look, over all signups: what the
    /// pool itself delivered, and what the pool-sizer's target means.
    pub warm_hit_rate: f64,
    /// Signups that found none and waited for the pool (`POOL_WAIT_S`), over all signups...
    pub waited_rate: f64,
    /// ...and those of them a pool instance served within the wait.
    pub waited_served_warm_rate: f64,
    pub failovers: u32,
    pub time_to_ready: TimeToReady,
    /// Pool instances (booting, preparing or waiting) integrated over the workload's
    /// duration: what the pool costs.
    pub idle_instance_hours: f64,
    /// The part of it spent launching and preparing (not yet claimable)...
    pub preparing_instance_hours: f64,
    /// ...and the part spent ready (`InService`, claimable).
    pub ready_instance_hours: f64,
    /// Warm tier instances stopped (prepared and parked) over the workload's duration:
    /// they pay for their volumes only. (Those preparing or stopping run, and count in
    /// `idle_instance_hours`.)
    pub stopped_instance_hours: f64,
    /// What the pool cost over the workload's duration (US dollars, at `pricing`).
    pub cost_usd: f64,
    pub mean_pool_size: f64,
    pub max_pool_size: u32,
    /// AWS calls over signups, by operation (every function, the pool's upkeep included).
    pub calls_per_signup: BTreeMap<String, f64>,
    pub calls_per_signup_total: f64,
    /// `DetachInstances` calls on the pool per instance detached.
    pub detach_attempts_per_claim: Option<f64>,
    /// Claim-lock attempts that found the instance taken, per claim.
    pub claim_conflicts_per_claim: Option<f64>,
    pub simulated_hours: f64,
    /// Users who had finished before the run began (`--live-users`).
    pub live_users: u32,
    /// What the run's API calls cost over the workload, by service: the busiest minute's
    /// rate, the calls the account's buckets throttled, and the scheduled functions'
    /// calls per minute.
    pub api: crate::ApiUsage,
    /// Invariant violations in the ground truth at the end (must be empty).
    pub violations: Vec<String>,
}

/// One sample of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PoolSample {
    pub t_s: f64,
    /// Claimable (`InService`) instances.
    pub ready: u32,
    /// Every instance of the pool that is not leaving.
    pub live: u32,
    pub desired: u32,
    /// Warm tier instances running (preparing or stopping)...
    pub warm_running: u32,
    /// ...and stopped, prepared.
    pub warm_stopped: u32,
}

/// One user's outcome, for the plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserPoint {
    pub signup_s: f64,
    pub ready_after_s: Option<f64>,
    /// Served from the pool (ground truth: where its host was launched).
    pub warm: bool,
    /// Found no pool instance and waited for one (the record's `waiting` tag).
    pub waited: bool,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRun {
    pub summary: RunSummary,
    pub samples: Vec<PoolSample>,
    pub users: Vec<UserPoint>,
}

/// Runs one simulation on a fresh paused-time runtime.
pub fn run(opts: &SimulateOptions, progress: &ProgressBar) -> Result<SimRun, SimulateError> {
    let arrivals = opts.workload.arrivals(opts.seed);
    if arrivals.is_empty() {
        return Err(SimulateError::Empty);
    }
    // Users are never deleted here: each keeps its group, and the pool has one.
    let needed = arrivals.len() + opts.live_users as usize + 1;
    let mut opts = opts.clone();
    if opts.live_users > 0 {
        // A deployment that serves thousands has had its quota raised (README, quotas).
        opts.model.group_quota = opts.model.group_quota.max(needed);
    }
    let opts = &opts;
    if needed > opts.model.group_quota {
        return Err(SimulateError::GroupQuota { users: arrivals.len(), quota: opts.model.group_quota, needed });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimulateError::Io { path: "tokio runtime".into(), message: e.to_string() })?;
    Ok(rt.block_on(run_async(opts, &arrivals, progress)))
}

async fn run_async(opts: &SimulateOptions, arrivals: &[f64], progress: &ProgressBar) -> SimRun {
    let (pool, sizer_every_s, max) = match opts.policy {
        PoolPolicy::Static(n) => (n, 0, n + 10),
        PoolPolicy::Adaptive(_) => (opts.initial_pool, 60, opts.max_pool + 5),
    };
    let mut overrides = vec![
        ("SIZER_MIN_SIZE".to_owned(), opts.min_pool.to_string()),
        ("SIZER_MAX_SIZE".to_owned(), opts.max_pool.max(opts.min_pool).to_string()),
    ];
    let mut warm_pool = 0;
    if let PoolPolicy::Adaptive(target) = opts.policy {
        overrides.push(("SIZER_TARGET_HIT_RATE".to_owned(), target.to_string()));
        if let Some(state) = opts.warm_tier.pool_state() {
            overrides.push(("POOL_WARM_TIER".to_owned(), state.to_ascii_lowercase()));
            warm_pool = opts.initial_warm;
        }
    }
    overrides.extend(opts.set.iter().cloned());
    let platform = Platform::start(PlatformOptions {
        model: opts.model.clone(),
        seed: opts.seed,
        pool,
        pool_max: Some(max),
        warm_pool,
        pool_sizer_every_s: sizer_every_s,
        overrides,
        claim_strategy: opts.claim,
        live_users: opts.live_users,
        ..PlatformOptions::default()
    });
    let users: Vec<String> = (1..=arrivals.len()).map(|i| format!("u-{i:06}")).collect();
    {
        let platform = platform.clone();
        let plan: Vec<(f64, String)> = arrivals.iter().copied().zip(users.iter().cloned()).collect();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for (t, user) in plan {
                tokio::time::sleep_until(start + Duration::from_secs_f64(t)).await;
                platform.signup(&user);
            }
        });
    }
    let duration_s = opts.workload.duration_s(arrivals);
    let every = opts.sample_every_s.max(1);
    let pool_group = platform.config().pool_group.clone();
    let mut samples = Vec::new();
    let mut live_seconds = 0.0;
    let mut ready_seconds = 0.0;
    let mut stopped_seconds = 0.0;
    progress.reset();
    progress.set_length(duration_s.max(1.0) as u64);
    progress.set_message(format!("{} ({})", opts.policy.label(), opts.claim.as_str()));
    let mut t = 0.0;
    loop {
        if let Some(g) = platform.cloud().group_size(&pool_group) {
            samples.push(PoolSample {
                t_s: t,
                ready: g.in_service,
                live: g.live,
                desired: g.desired,
                warm_running: g.warm_running,
                warm_stopped: g.warm_stopped,
            });
            if t < duration_s {
                let span = (every as f64).min(duration_s - t);
                live_seconds += f64::from(g.live + g.warm_running) * span;
                ready_seconds += f64::from(g.in_service.min(g.live)) * span;
                stopped_seconds += f64::from(g.warm_stopped) * span;
            }
        }
        progress.set_position(t as u64);
        if t >= duration_s {
            break;
        }
        tokio::time::sleep(Duration::from_secs(every)).await;
        t += every as f64;
    }
    // Let the last signups finish (their pool cost is not counted: the workload is over).
    let drain_end = tokio::time::Instant::now() + Duration::from_secs(opts.drain_s);
    while !platform.all_final(&users) && tokio::time::Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    progress.finish_and_clear();
    let seconds = PoolSeconds { live: live_seconds, ready: ready_seconds, stopped: stopped_seconds };
    summarize(opts, &platform, arrivals, &users, samples, seconds, duration_s)
}

/// Pool instance-seconds over the workload: running (the pool's members not leaving and
/// the warm tier's running instances), ready among them, and stopped in the warm tier.
#[derive(Clone, Copy)]
struct PoolSeconds {
    live: f64,
    ready: f64,
    stopped: f64,
}

/// The scheduled functions: their calls are the work that must not grow with history.
pub const SCHEDULED: [&str; 2] = ["reconcile", "pool-sizer"];

/// Reads the run's outcome from the cloud's ground truth.
fn summarize(
    opts: &SimulateOptions,
    platform: &Platform,
    arrivals: &[f64],
    users: &[String],
    samples: Vec<PoolSample>,
    seconds: PoolSeconds,
    duration_s: f64,
) -> SimRun {
    let PoolSeconds { live: live_seconds, ready: ready_seconds, stopped: stopped_seconds } = seconds;
    let pool_group = &platform.config().pool_group;
    let simulated_s = platform.cloud().elapsed_ms() as f64 / 1000.0;
    let snap = platform.snapshot();
    let report = Report::build(platform.config(), &snap, users, simulated_s);
    let points: Vec<UserPoint> = report
        .users
        .iter()
        .zip(arrivals)
        .map(|(u, t)| UserPoint {
            signup_s: *t,
            ready_after_s: if u.state == "ready" { u.ready_after_s } else { None },
            warm: u.state == "ready" && u.path == "warm",
            waited: snap
                .tags
                .get(&platform.config().user_group(&u.user_id))
                .and_then(UserRecord::from_tags)
                .is_some_and(|r| r.waiting.is_some()),
        })
        .collect();
    let times = |keep: &dyn Fn(&UserPoint) -> bool| -> Vec<f64> {
        points.iter().filter(|p| keep(p)).filter_map(|p| p.ready_after_s).collect()
    };
    let share =
        |keep: &dyn Fn(&UserPoint) -> bool| points.iter().filter(|p| keep(p)).count() as f64 / users.len() as f64;
    let signups = users.len();
    let s = &report.summary;
    let detach = platform.cloud().detach_stats(pool_group);
    let conflicts = snap.metrics.get("ClaimConflicts").copied();
    let calls_per_signup: BTreeMap<String, f64> =
        snap.calls.iter().map(|(op, n)| (op.clone(), *n as f64 / signups as f64)).collect();
    let summary = RunSummary {
        policy: match opts.warm_tier.pool_state() {
            Some(state) if matches!(opts.policy, PoolPolicy::Adaptive(_)) => {
                format!("{}+{}", opts.policy.label(), state.to_ascii_lowercase())
            }
            _ => opts.policy.label(),
        },
        claim_strategy: opts.claim.as_str().to_owned(),
        signups,
        ready: s.ready,
        failed: s.failed,
        unfinished: s.not_finished,
        warm_hit_rate: share(&|p| p.warm && !p.waited),
        waited_rate: share(&|p| p.waited),
        waited_served_warm_rate: share(&|p| p.waited && p.warm),
        failovers: s.failovers,
        time_to_ready: TimeToReady {
            warm: Percentiles::of(times(&|p| p.warm)),
            cold: Percentiles::of(times(&|p| !p.warm)),
            waited: Percentiles::of(times(&|p| p.waited)),
            all: Percentiles::of(times(&|_| true)),
        },
        idle_instance_hours: live_seconds / 3600.0,
        preparing_instance_hours: (live_seconds - ready_seconds) / 3600.0,
        ready_instance_hours: ready_seconds / 3600.0,
        stopped_instance_hours: stopped_seconds / 3600.0,
        cost_usd: live_seconds / 3600.0 * opts.pricing.running_usd_per_hour()
            + stopped_seconds / 3600.0 * opts.pricing.volume_usd_per_hour(),
        mean_pool_size: if duration_s > 0.0 { live_seconds / duration_s } else { 0.0 },
        max_pool_size: samples.iter().map(|s| s.live).max().unwrap_or(0),
        calls_per_signup_total: calls_per_signup.values().sum(),
        calls_per_signup,
        detach_attempts_per_claim: (detach.succeeded > 0).then(|| detach.attempts as f64 / detach.succeeded as f64),
        claim_conflicts_per_claim: conflicts.filter(|(n, _)| *n > 0).map(|(n, sum)| sum / n as f64),
        simulated_hours: simulated_s / 3600.0,
        live_users: opts.live_users,
        api: platform.cloud().api_usage(0, duration_s.ceil() as usize, &SCHEDULED),
        violations: report.violations(),
    };
    SimRun { summary, samples, users: points }
}

#[cfg(test)]
mod tests;
