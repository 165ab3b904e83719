//! The demo's text rendering: timeline, per-user table, summary.

use std::fmt::Write as _;

use warmpool_sim::demo::DemoRun;

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
    for (label, b) in [("every ready user", s.breakdown), ("the slowest 5%", s.slowest_breakdown)] {
        if let Some(b) = b {
            let _ = writeln!(
                out,
                "where the time went, mean over {label}: work {}, queued {}, redelivery {}, event retry {}, \
                 reconcile sweep {}, failed attempts {}",
                clock(b.work_s),
                clock(b.queued_s),
                clock(b.redelivery_s),
                clock(b.event_retry_s),
                clock(b.sweep_s),
                clock(b.failed_attempts_s)
            );
        }
    }
    let _ = writeln!(
        out,
        "cloud: {} groups, {} terminated, {} outside any group, {} in two groups, {} dead letters, {} stale reads; \
         simulated {}",
        r.cloud.asgs.len(),
        r.cloud.terminated.len(),
        r.cloud.outside.len(),
        r.cloud.in_two_groups.len(),
        r.cloud.dead_letters,
        r.cloud.stale_reads,
        clock(s.simulated_s)
    );
    if s.settle_s > 0.0 {
        let _ = writeln!(out, "after the deadline the cloud settled for {} more", clock(s.settle_s));
    }
    out
}

fn clock(s: f64) -> String {
    if s < 60.0 { format!("{s:.1}s") } else { format!("{}m{:04.1}s", (s / 60.0).floor(), s % 60.0) }
}
