//! What a run ended with, read from the in-memory cloud's ground truth.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use statrs::statistics::{Data, OrderStatistics};
use warmpool_core::Config;
use warmpool_core::domain::{ReadyMessage, UserRecord, UserState};

use crate::{Breakdown, Snapshot};

/// One user's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserReport {
    pub user_id: String,
    pub instance_id: Option<String>,
    /// `warm` or `cold`: where the user's host was launched (the pool, or the user's own
    /// group), from the cloud's ground truth; the flow's record when no host is known.
    pub path: String,
    /// What the flow recorded, when it differs from the ground truth (a bug).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_path: Option<String>,
    pub attempts: u32,
    /// `ready`, `failed`, or the state it was stuck in.
    pub state: String,
    pub ready_after_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the time to ready went (ready users).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
}

/// The cloud's own view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudReport {
    /// Group name to its instances (not leaving).
    pub asgs: BTreeMap<String, Vec<String>>,
    pub terminated: Vec<String>,
    /// Running instances in no group.
    pub outside: Vec<String>,
    /// Instances listed by two groups.
    pub in_two_groups: Vec<String>,
    pub dead_letters: usize,
    /// AWS calls by operation.
    pub calls: BTreeMap<String, u64>,
    /// `Describe*` reads answered with the state from before a recent mutation
    /// (eventual consistency, `CloudModel::stale_read_ms`).
    pub stale_reads: u64,
    /// Instances sent user-init more than once.
    pub repeated_inits: Vec<String>,
    /// The prefix of the users' groups (`USER_ASG_PREFIX`).
    #[serde(skip)]
    pub user_group_prefix: String,
}

/// Totals and time-to-ready figures (seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub users: usize,
    pub ready: usize,
    pub failed: usize,
    pub not_finished: usize,
    pub warm: usize,
    pub cold: usize,
    pub failovers: u32,
    pub p50_s: Option<f64>,
    pub p95_s: Option<f64>,
    pub max_s: Option<f64>,
    pub warm_p50_s: Option<f64>,
    pub cold_p50_s: Option<f64>,
    /// Simulated time to the end of the run (all users final, or the deadline).
    pub simulated_s: f64,
    /// After an unfinished run's deadline: how long the cloud then ran (faults and all)
    /// until nothing ran outside a group; 0 for a finished run.
    pub settle_s: f64,
    /// Where the time to ready went: the mean over every ready user...
    pub breakdown: Option<Breakdown>,
    /// ... and over the slowest (time to ready at or above the 95th percentile).
    pub slowest_breakdown: Option<Breakdown>,
}

/// The whole report (`--json` prints this).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub users: Vec<UserReport>,
    pub summary: Summary,
    pub cloud: CloudReport,
    /// What the run's API calls cost, by service (filled by the run that knows its
    /// window: the demo's whole run).
    pub api: crate::ApiUsage,
}

impl Report {
    /// Builds the report for `users` from the ground truth.
    #[must_use]
    pub fn build(cfg: &Config, snap: &Snapshot, users: &[String], simulated_s: f64) -> Self {
        let ready_msgs: BTreeMap<String, ReadyMessage> = snap
            .ready_messages
            .iter()
            .filter_map(|b| serde_json::from_str::<ReadyMessage>(b).ok())
            .map(|m| (m.user_id.clone(), m))
            .collect();
        let users: Vec<UserReport> = users.iter().map(|u| user_report(cfg, snap, &ready_msgs, u)).collect();
        let times = |path: Option<&str>| -> Vec<f64> {
            let mut t: Vec<f64> = users
                .iter()
                .filter(|u| u.state == "ready" && path.is_none_or(|p| u.path == p))
                .filter_map(|u| u.ready_after_s)
                .collect();
            t.sort_by(f64::total_cmp);
            t
        };
        let all = times(None);
        let p95 = percentile(&all, 95.0);
        let count = |state: &str| users.iter().filter(|u| u.state == state).count();
        let summary = Summary {
            users: users.len(),
            ready: count("ready"),
            failed: count("failed"),
            not_finished: users.iter().filter(|u| u.state != "ready" && u.state != "failed").count(),
            warm: users.iter().filter(|u| u.state == "ready" && u.path == "warm").count(),
            cold: users.iter().filter(|u| u.state == "ready" && u.path == "cold").count(),
            failovers: users.iter().map(|u| u.attempts.saturating_sub(1)).sum(),
            p50_s: percentile(&all, 50.0),
            p95_s: p95,
            max_s: all.last().copied(),
            warm_p50_s: percentile(&times(Some("warm")), 50.0),
            cold_p50_s: percentile(&times(Some("cold")), 50.0),
            simulated_s,
            settle_s: 0.0,
            breakdown: mean_breakdown(&users, None),
            slowest_breakdown: mean_breakdown(&users, p95),
        };
        Self {
            users,
            summary,
            cloud: CloudReport {
                asgs: snap.groups.clone(),
                terminated: snap.terminated.clone(),
                outside: snap.outside.clone(),
                in_two_groups: snap.in_two_groups.clone(),
                dead_letters: snap.dead_letters.len(),
                calls: snap.calls.clone(),
                stale_reads: snap.stale_reads,
                repeated_inits: snap.repeated_inits.clone(),
                user_group_prefix: cfg.user_group_prefix.clone(),
            },
            api: crate::ApiUsage::default(),
        }
    }

    /// Invariant violations visible in the ground truth; empty when all hold.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.cloud.outside.is_empty() {
            v.push(format!("instances running outside every group: {:?}", self.cloud.outside));
        }
        if !self.cloud.in_two_groups.is_empty() {
            v.push(format!("instances in two groups: {:?}", self.cloud.in_two_groups));
        }
        if !self.cloud.repeated_inits.is_empty() {
            v.push(format!("instances sent user-init more than once: {:?}", self.cloud.repeated_inits));
        }
        for u in self.users.iter().filter(|u| u.state == "ready") {
            if let Some(recorded) = &u.recorded_path {
                v.push(format!("{} is recorded {recorded}, but its host came {}", u.user_id, u.path));
            }
        }
        let mut seen = BTreeSet::new();
        for u in &self.users {
            if let Some(i) = &u.instance_id
                && u.state == "ready"
                && !seen.insert(i.clone())
            {
                v.push(format!("instance {i} serves two users"));
            }
        }
        for (name, ids) in &self.cloud.asgs {
            if name.starts_with(&self.cloud.user_group_prefix) && ids.len() > 1 {
                v.push(format!("user group {name} holds {} instances", ids.len()));
            }
        }
        v
    }
}

/// One user's line of the report, from the ground truth.
fn user_report(cfg: &Config, snap: &Snapshot, ready_msgs: &BTreeMap<String, ReadyMessage>, u: &str) -> UserReport {
    let group = cfg.user_group(u);
    let record = snap.tags.get(&group).and_then(UserRecord::from_tags);
    let live = snap.groups.get(&group).and_then(|ids| ids.first().cloned());
    match record {
        None => UserReport {
            user_id: u.to_owned(),
            instance_id: None,
            path: "none".into(),
            recorded_path: None,
            attempts: 0,
            state: "missing".into(),
            ready_after_s: None,
            reason: Some("no user group exists".into()),
            breakdown: None,
        },
        Some(r) => {
            let ready_after_s = ready_msgs
                .get(u)
                .map(|m| m.ready_after_s)
                .or_else(|| r.ready_at_ms.map(|t| t.saturating_sub(r.requested_at_ms) as f64 / 1000.0));
            let reason = match r.state {
                UserState::Ready => None,
                UserState::Failed => r.reason.clone(),
                other => Some(format!(
                    "still {} when the run ended{}",
                    other.as_str(),
                    r.reason.as_ref().map(|x| format!(" (last: {x})")).unwrap_or_default()
                )),
            };
            let breakdown = ready_after_s
                .filter(|_| r.state == UserState::Ready)
                .map(|t| snap.waits.get(u).copied().unwrap_or_default().completed(t));
            let instance_id = live.or(r.instance.clone());
            let recorded = r.path.as_str();
            let path = match instance_id.as_ref().and_then(|i| snap.launched_in.get(i)) {
                Some(g) if *g == cfg.pool_group => "warm",
                Some(g) if *g == group => "cold",
                Some(_) => "elsewhere",
                None => recorded,
            };
            UserReport {
                user_id: u.to_owned(),
                instance_id,
                path: path.into(),
                recorded_path: (path != recorded).then(|| recorded.into()),
                attempts: r.attempt,
                state: r.state.as_str().into(),
                ready_after_s,
                reason,
                breakdown,
            }
        }
    }
}

/// The mean breakdown of the ready users whose time to ready is at least `from_s`
/// (all of them with `None`).
fn mean_breakdown(users: &[UserReport], from_s: Option<f64>) -> Option<Breakdown> {
    let parts: Vec<Breakdown> = users
        .iter()
        .filter(|u| from_s.is_none_or(|p| u.ready_after_s.is_some_and(|t| t >= p)))
        .filter_map(|u| u.breakdown)
        .collect();
    Breakdown::mean(&parts)
}

/// The `p`th percentile (0 to 100) of `values`: statrs's quantile, which interpolates
/// between the two nearest ranks (the R-8, median-unbiased definition). `None` when
/// there are no values.
#[must_use]
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let q = Data::new(values.to_vec()).quantile((p / 100.0).clamp(0.0, 1.0));
    q.is_finite().then_some(q)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn interpolated_between_ranks() {
        let v = [10.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        assert_eq!(percentile(&v, 50.0), Some(5.5));
        assert_eq!(percentile(&v, 95.0), Some(10.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
