//! `warmpool demo`: signups through the three real handlers on the in-memory cloud.

use std::fmt::Write as _;

use warmpool::sim::{Faults, LatencyModel};

use crate::platform::{Platform, PlatformOptions};
use crate::report::Report;

/// The demo's knobs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub users: u32,
    pub pool: u32,
    pub seed: u64,
    pub init_failure_rate: f64,
    pub agent_delay_s: f64,
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
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            users: 30,
            pool: 10,
            seed: 1,
            init_failure_rate: 0.0,
            agent_delay_s: LatencyModel::default().agent_delay_s,
            spread_s: 0.0,
            deadline_s: 6 * 3600,
            crash_rate: 0.0,
            throttle_rate: 0.0,
            drop_events: 0.0,
            duplicate_events: 0.0,
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
    let model = LatencyModel {
        init_failure_rate: opts.init_failure_rate,
        agent_delay_s: opts.agent_delay_s,
        ..LatencyModel::default()
    };
    let platform = Platform::start(PlatformOptions {
        model,
        seed: opts.seed,
        pool: opts.pool,
        faults: Faults { crash_rate: opts.crash_rate, throttle_rate: opts.throttle_rate, at_call: None },
        drop_events: opts.drop_events,
        duplicate_events: opts.duplicate_events,
        // Lost and duplicated events also arrive out of order.
        event_jitter_s: if opts.drop_events > 0.0 || opts.duplicate_events > 0.0 { 30 } else { 0 },
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
    let report = Report::build(platform.config(), &platform.snapshot(), &users, simulated_s);
    let timeline = platform.cloud().timeline().into_iter().map(|e| (e.at_ms as f64 / 1000.0, e.text)).collect();
    DemoRun { report, timeline, settled }
}

/// The human-readable rendering: timeline, per-user table, summary.
#[must_use]
pub fn render_text(run: &DemoRun, timeline_lines: usize) -> String {
    let mut out = String::new();
    let r = &run.report;
    let _ = writeln!(out, "== timeline (simulated time, from the cloud's own record)");
    for (t, text) in run.timeline.iter().take(timeline_lines) {
        let _ = writeln!(out, "{:>9}  {text}", clock(*t));
    }
    if run.timeline.len() > timeline_lines {
        let _ = writeln!(
            out,
            "           … {} more lines (--timeline N to show more)",
            run.timeline.len() - timeline_lines
        );
    }
    let _ = writeln!(out, "\n== users");
    let _ = writeln!(
        out,
        "{:<10} {:<21} {:<5} {:>8} {:<12} {:>10}  reason",
        "user", "instance", "path", "attempts", "state", "ready"
    );
    for u in &r.users {
        let _ = writeln!(
            out,
            "{:<10} {:<21} {:<5} {:>8} {:<12} {:>10}  {}",
            u.user_id,
            u.instance_id.as_deref().unwrap_or("-"),
            u.path,
            u.attempts,
            u.state,
            u.ready_after_s.map_or("-".to_owned(), clock),
            u.reason.as_deref().unwrap_or("")
        );
    }
    let s = &r.summary;
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), clock);
    let _ = writeln!(out, "\n== summary");
    let _ = writeln!(
        out,
        "users {}: ready {} (warm {}, cold {}), failed {}, unfinished {}; failovers {}",
        s.users, s.ready, s.warm, s.cold, s.failed, s.not_finished, s.failovers
    );
    let _ = writeln!(
        out,
        "time to ready: p50 {}  p95 {}  max {}  (warm p50 {}, cold p50 {})",
        opt(s.p50_s),
        opt(s.p95_s),
        opt(s.max_s),
        opt(s.warm_p50_s),
        opt(s.cold_p50_s)
    );
    let _ = writeln!(
        out,
        "cloud: {} groups, {} terminated, {} outside any group, {} in two groups, {} dead letters; simulated {}",
        r.cloud.asgs.len(),
        r.cloud.terminated.len(),
        r.cloud.outside.len(),
        r.cloud.in_two_groups.len(),
        r.cloud.dead_letters,
        clock(s.simulated_s)
    );
    out
}

fn clock(s: f64) -> String {
    if s < 60.0 { format!("{s:.1}s") } else { format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0) }
}
