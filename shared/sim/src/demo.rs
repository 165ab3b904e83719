//! The demo's run: a burst (or a spread) of signups through the real handlers on the
//! local platform, with optional faults; the CLI renders it.

use crate::{CloudModel, Faults};

use crate::platform::{Platform, PlatformOptions};
use crate::report::Report;

/// How long an unfinished run may settle after its deadline (one hour), until nothing
/// runs outside a group.
pub const SETTLE_MAX_MS: u64 = 3_600_000;

/// The demo's knobs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub users: u32,
    pub pool: u32,
    pub seed: u64,
    /// The cloud's latencies and failure rates.
    pub model: CloudModel,
    /// Signups arrive spread evenly over this many seconds (0: all at once).
    pub spread_s: f64,
    /// Simulated time after which the run stops even if users are not finished.
    pub deadline_s: u64,
    /// Share of AWS calls after which the calling function dies.
    pub crash_rate: f64,
    /// Share of AWS call attempts throttled (retried with backoff, as the SDK does).
    pub throttle_rate: f64,
    /// Share of EventBridge events lost.
    pub drop_events: f64,
    /// Share of EventBridge events delivered twice.
    pub duplicate_events: f64,
    /// Users who finished long ago, present from the start (`--live-users`).
    pub live_users: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            users: 30,
            pool: 10,
            seed: 1,
            model: CloudModel::default(),
            spread_s: 0.0,
            deadline_s: 6 * 3600,
            crash_rate: 0.0,
            throttle_rate: 0.0,
            drop_events: 0.0,
            duplicate_events: 0.0,
            live_users: 0,
        }
    }
}

/// What a demo run produced.
#[derive(Debug, Clone)]
pub struct DemoRun {
    pub report: Report,
    pub timeline: Vec<(f64, String)>,
    pub settled: bool,
}

/// Runs the demo on a fresh paused-time runtime (simulated minutes take milliseconds).
pub fn run(opts: &DemoOptions) -> std::io::Result<DemoRun> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    Ok(rt.block_on(run_async(opts)))
}

async fn run_async(opts: &DemoOptions) -> DemoRun {
    let mut model = opts.model.clone();
    if opts.live_users > 0 {
        // A deployment holding that many users has had its group quota raised.
        model.group_quota = model.group_quota.max(opts.live_users as usize + opts.users as usize + 1);
    }
    let platform = Platform::start(PlatformOptions {
        model,
        seed: opts.seed,
        pool: opts.pool,
        faults: Faults { crash_rate: opts.crash_rate, throttle_rate: opts.throttle_rate, ..Faults::default() },
        drop_events: opts.drop_events,
        duplicate_events: opts.duplicate_events,
        // Lost and duplicated events also arrive out of order.
        event_jitter_s: if opts.drop_events > 0.0 || opts.duplicate_events > 0.0 { 30 } else { 0 },
        live_users: opts.live_users,
        ..PlatformOptions::default()
    });
    let users: Vec<String> = (1..=opts.users).map(|i| format!("u-{i:04}")).collect();
    let gap = if opts.users > 1 { opts.spread_s / f64::from(opts.users - 1) } else { 0.0 };
    {
        let platform = platform.clone();
        let users = users.clone();
        tokio::spawn(async move {
            for u in &users {
                platform.signup(u);
                if gap > 0.0 {
                    tokio::time::sleep(std::time::Duration::from_secs_f64(gap)).await;
                }
            }
        });
    }
    tokio::task::yield_now().await;
    let settled = platform.run_until_settled(&users, opts.deadline_s).await;
    let simulated_s = platform.cloud().elapsed_ms() as f64 / 1000.0;
    if !settled {
        // Users are unfinished and moves may be in flight: the cloud settles, faults and
        // all, until nothing runs outside a group (or the bound passes).
        let start = platform.cloud().elapsed_ms();
        while !platform.snapshot().outside.is_empty() && platform.cloud().elapsed_ms() - start < SETTLE_MAX_MS {
            tokio::time::sleep(std::time::Duration::from_mins(1)).await;
        }
    }
    let settle_s = platform.cloud().elapsed_ms() as f64 / 1000.0 - simulated_s;
    let mut report = Report::build(platform.config(), &platform.snapshot(), &users, simulated_s);
    report.summary.settle_s = settle_s;
    let elapsed_s = usize::try_from(platform.cloud().elapsed_ms().div_ceil(1000)).unwrap_or(usize::MAX);
    report.api = platform.cloud().api_usage(0, elapsed_s, &crate::simulate::SCHEDULED);
    let timeline = platform.cloud().timeline().into_iter().map(|e| (e.at_ms as f64 / 1000.0, e.text)).collect();
    DemoRun { report, timeline, settled }
}
