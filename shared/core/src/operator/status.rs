//! `warmpool status`: the pool, the users, what needs an operator, and the queues.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Deployment, OperatorError, pool_group};
use crate::domain::{UserRecord, UserState};
use crate::flow::sizer_record::{self, SizerRecord};
use crate::ports::{Cloud, MemberState, QueueDepth, QueueDepths};

/// One look at a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub stack: String,
    /// When it was taken (ms since the epoch).
    pub at_ms: u64,
    pub pool: PoolStatus,
    pub users: UserCounts,
    /// Users in flight whose record has not changed for longer than the stall threshold
    /// (`ReconcileStallSeconds`); the sweep re-drives them, so one that stays here
    /// needs a look (its group's `warmpool:reason`, the functions' logs).
    pub stalled: Vec<StalledUser>,
    /// Instances of the hosts' launch template in no group and with no claim: the sweep
    /// terminates them once older than the stall threshold.
    pub orphans: Vec<String>,
    /// Instances in no group under a claim: moves in flight (seconds), or a claim the
    /// repair will hand back.
    pub moving: Vec<String>,
    /// Claims on instances: the instance, its holder, its age (s).
    pub claims: Vec<(String, String, u64)>,
    pub queues: Vec<QueueStatus>,
}

/// The pool group and its warm tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStatus {
    pub group: String,
    pub min_size: u32,
    pub max_size: u32,
    /// What the pool-sizer (adaptive) or the stack (static) last asked for.
    pub desired: u32,
    /// Instances by lifecycle state (`InService`, `Pending:Wait`, ...).
    pub by_state: BTreeMap<String, u32>,
    /// Healthy and `InService`: what a signup can claim now.
    pub claimable: u32,
    /// The warm tier, when the pool has one: its size and instances by `Warmed:*` state.
    pub warm: Option<WarmStatus>,
    /// `warmpool drain` has marked the pool: it hands out nothing, and the pool-sizer
    /// leaves it alone until `warmpool resume`.
    pub draining: bool,
    /// The pool-sizer's last decision (its estimate of the signup rate and the refill
    /// time, and the sizes it set), from the pool group's `warmpool:sizer` tag; `None`
    /// for a static pool or before the sizer's first run.
    pub sizer: Option<SizerRecord>,
    /// The sizer's record is older than it lets one get while running, and the pool is
    /// not draining: the pool-sizer has stopped (its schedule, its role, its errors).
    pub sizer_stale: bool,
}

/// The stopped second tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmStatus {
    pub min_size: u32,
    pub max_prepared: Option<u32>,
    pub by_state: BTreeMap<String, u32>,
}

/// Users by state: how many, and the oldest's age since its last change (s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCounts {
    pub total: u32,
    pub by_state: BTreeMap<String, (u32, u64)>,
}

/// A user in flight past the stall threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StalledUser {
    pub user_id: String,
    pub state: String,
    pub attempt: u32,
    /// Seconds since its record last changed.
    pub unchanged_s: u64,
    pub reason: Option<String>,
}

/// One queue's depth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    pub name: &'static str,
    pub url: String,
    pub depth: QueueDepth,
    /// A dead-letter queue: anything in it needs an operator.
    pub dead_letter: bool,
}

fn state_name(s: MemberState) -> &'static str {
    match s {
        MemberState::Pending => "Pending",
        MemberState::PendingWait => "Pending:Wait",
        MemberState::InService => "InService",
        MemberState::Standby => "Standby",
        MemberState::Terminating => "Terminating",
        MemberState::Detaching => "Detaching",
        MemberState::Warmed => "Warmed:Pending",
        MemberState::WarmedParked => "Warmed",
        MemberState::Other => "Other",
    }
}

/// Takes one look: the pool group and its warm pool, every user group, the instances
/// outside every group, the claims, and the six queues. Read-only.
pub async fn status<C: Cloud + QueueDepths>(cloud: &C, dep: &Deployment) -> Result<Status, OperatorError> {
    let now = cloud.now_ms();
    let pool = pool_group(cloud, dep).await?;
    let mut by_state = BTreeMap::new();
    for m in &pool.members {
        *by_state.entry(state_name(m.state).to_owned()).or_insert(0) += 1;
    }
    let warm = cloud.describe_warm_pool(&dep.pool_group).await?.map(|w| {
        let mut by_state = BTreeMap::new();
        for i in &w.instances {
            *by_state.entry(i.state.clone()).or_insert(0) += 1;
        }
        WarmStatus { min_size: w.min_size, max_prepared: w.max_group_prepared_capacity, by_state }
    });
    let draining = crate::flow::draining(&pool);
    let sizer = sizer_record::kept(&pool);
    let sizer_stale = !draining && sizer.as_ref().is_some_and(|r| r.stale(now));
    let pool_status = PoolStatus {
        group: pool.name.clone(),
        min_size: pool.min_size,
        max_size: pool.max_size,
        desired: pool.desired_capacity,
        claimable: u32::try_from(pool.members.iter().filter(|m| m.claimable()).count()).unwrap_or(u32::MAX),
        by_state,
        warm,
        draining,
        sizer,
        sizer_stale,
    };
    let mut users = UserCounts { total: 0, by_state: BTreeMap::new() };
    let mut stalled = Vec::new();
    for group in cloud.list_user_groups(&dep.user_group_prefix, &[]).await? {
        let Some(r) = UserRecord::from_tags(&group.tags) else { continue };
        let unchanged_s = now.saturating_sub(r.updated_at_ms) / 1000;
        users.total += 1;
        let entry = users.by_state.entry(r.state.as_str().to_owned()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(unchanged_s);
        if !r.state.is_final() && unchanged_s > u64::from(dep.stall_s) {
            stalled.push(StalledUser {
                user_id: r.user_id.clone(),
                state: r.state.as_str().to_owned(),
                attempt: r.attempt,
                unchanged_s,
                reason: r.reason.clone(),
            });
        }
    }
    for state in [UserState::Claiming, UserState::Initializing, UserState::Ready, UserState::Failed] {
        users.by_state.entry(state.as_str().to_owned()).or_insert((0, 0));
    }
    stalled.sort_by_key(|u| std::cmp::Reverse(u.unchanged_s));
    let claims = cloud.list_claims().await?;
    let mut orphans = Vec::new();
    let mut moving = Vec::new();
    for instance in cloud.instances_outside_groups(&dep.launch_template).await? {
        if claims.iter().any(|c| c.instance_id == instance.instance_id) {
            moving.push(instance.instance_id);
        } else {
            orphans.push(instance.instance_id);
        }
    }
    let claims = claims
        .into_iter()
        .map(|c| {
            let age_s = now.saturating_sub(c.created_ms) / 1000;
            (c.instance_id, c.owner, age_s)
        })
        .collect();
    let mut queues = Vec::new();
    for (name, url, dead_letter) in [
        ("signup", &dep.signup_queue_url, false),
        ("signup DLQ", &dep.signup_dlq_url, true),
        ("re-drive", &dep.redrive_queue_url, false),
        ("re-drive DLQ", &dep.redrive_dlq_url, true),
        ("ready", &dep.ready_queue_url, false),
        ("ready DLQ", &dep.ready_dlq_url, true),
    ] {
        let depth = cloud.queue_depth(url).await?;
        queues.push(QueueStatus { name, url: url.clone(), depth, dead_letter });
    }
    Ok(Status {
        stack: dep.stack.clone(),
        at_ms: now,
        pool: pool_status,
        users,
        stalled,
        orphans,
        moving,
        claims,
        queues,
    })
}

impl Status {
    /// Whether anything needs an operator: a dead-letter message, a stalled user, an
    /// orphan, a pool-sizer that has stopped.
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        self.pool.sizer_stale
            || !self.stalled.is_empty()
            || !self.orphans.is_empty()
            || self.queues.iter().any(|q| q.dead_letter && q.depth.visible + q.depth.in_flight > 0)
    }

    /// The human table `warmpool status` prints.
    #[must_use]
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let p = &self.pool;
        let _ = writeln!(out, "stack {}", self.stack);
        let _ = writeln!(
            out,
            "pool {}: desired {} (min {}, max {}), {} claimable",
            p.group, p.desired, p.min_size, p.max_size, p.claimable
        );
        if p.draining {
            let _ = writeln!(out, "  draining: hands out nothing; `warmpool resume` brings it back");
        }
        match &p.sizer {
            Some(r) => {
                let ago_s = self.at_ms.saturating_sub(r.at_ms) / 1000;
                let warm = r.warm.map_or_else(String::new, |w| format!(", warm tier {w}"));
                let flag = if p.sizer_stale { "  <- needs a look: the pool-sizer has stopped writing" } else { "" };
                let _ = writeln!(
                    out,
                    "  pool-sizer {ago_s} s ago: {:.1} signups/h, refill {} s; computed {}, set desired {}{warm}{flag}",
                    r.rate_per_h, r.refill_s, r.computed, r.desired
                );
            }
            None => {
                let _ = writeln!(out, "  pool-sizer: no decision recorded (a static pool, or before its first run)");
            }
        }
        for (state, n) in &p.by_state {
            let _ = writeln!(out, "  {state:<24} {n:>5}");
        }
        if let Some(w) = &p.warm {
            let max = w.max_prepared.map_or_else(|| "group max".to_owned(), |m| m.to_string());
            let _ = writeln!(out, "warm tier: min {}, max prepared {max}", w.min_size);
            for (state, n) in &w.by_state {
                let _ = writeln!(out, "  {state:<24} {n:>5}");
            }
        }
        let _ = writeln!(out, "users: {}", self.users.total);
        let _ = writeln!(out, "  {:<24} {:>5}  {:>22}", "state", "users", "longest unchanged (s)");
        for (state, (n, oldest)) in &self.users.by_state {
            let _ = writeln!(out, "  {state:<24} {n:>5}  {oldest:>22}");
        }
        let _ = writeln!(out, "stalled (unchanged for over the stall threshold): {}", self.stalled.len());
        for u in &self.stalled {
            let why = u.reason.as_deref().unwrap_or("-");
            let _ = writeln!(out, "  {} {} attempt {} for {} s: {why}", u.user_id, u.state, u.attempt, u.unchanged_s);
        }
        let _ = writeln!(out, "outside every group: {} orphans, {} moving", self.orphans.len(), self.moving.len());
        for id in &self.orphans {
            let _ = writeln!(out, "  orphan {id}");
        }
        let _ = writeln!(out, "claims: {}", self.claims.len());
        for (instance, owner, age) in &self.claims {
            let _ = writeln!(out, "  {instance} held by {owner} for {age} s");
        }
        let _ = writeln!(out, "  {:<24} {:>8} {:>10} {:>8}", "queue", "visible", "in flight", "delayed");
        for q in &self.queues {
            let d = q.depth;
            let flag = if q.dead_letter && d.visible + d.in_flight > 0 { "  <- needs a look" } else { "" };
            let _ = writeln!(out, "  {:<24} {:>8} {:>10} {:>8}{flag}", q.name, d.visible, d.in_flight, d.delayed);
        }
        out
    }
}
