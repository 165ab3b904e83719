//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per
//! metric, which CloudWatch Logs turns into a metric without an API call.

use serde_json::{Value, json};

use crate::domain::{Path, UserState};

/// Namespace of every warmpool metric.
pub const NAMESPACE: &str = "warmpool";

/// The new users' metric ([`Metric::Signup`]) and its dimension, the pool group's name:
/// one per deployment, so two stacks in a Region count their own.
pub const SIGNUPS: &str = "Signups";
pub const POOL_GROUP: &str = "PoolGroup";

/// What the flow measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A user became ready: seconds from signup, by path.
    TimeToReady { seconds: f64, path: Path },
    /// An init failed and the user was moved to another instance.
    Failover,
    /// Claim attempts that found the instance already claimed, in one claim.
    ClaimConflicts(u32),
    /// Claimable (healthy, `InService`) pool instances seen when claiming.
    PoolDepth(u32),
    /// A user took the cold path.
    ColdPath,
    /// The pool-sizer's signup-rate estimate (signups per second).
    SignupRate(f64),
    /// The pool-sizer's refill-time estimate (s): launch to `InService`.
    RefillSeconds(f64),
    /// The pool size the pool-sizer asked for.
    PoolTarget(u32),
    /// An event lifecycle or command-status still failed on after Lambda's retries
    /// (its invocation record reached the re-drive queue).
    FailedEvent,
    /// A signup found the Region's Auto Scaling group quota reached.
    GroupQuotaReached,
    /// Auto Scaling replaced a ready user's host; it is being initialised for the user.
    HostReplaced,
    /// A failed user's group was deleted after its retention (`FAILED_RETENTION_H`).
    FailedGroupRemoved,
    /// A new user's signup was refused: the stack holds `MAX_USERS` users.
    UserLimitReached,
    /// A user was given up on: no attempt succeeded in `MAX_ATTEMPTS`. Counted by the
    /// run that took the user off its last failed init, so once a user (a run that dies
    /// between the two tag writes loses the count; the user's tags still say `failed`).
    UserFailed,
    /// Users in one in-flight state, counted by each reconcile sweep (a gauge).
    UsersInFlight { state: UserState, count: u32 },
    /// Orphans (instances of our launch template in no group, with no live claim) that
    /// a reconcile sweep found and terminated.
    Orphans(u32),
    /// A signup found no pool instance to claim and began waiting for one (`POOL_WAIT_S`).
    PoolWait,
    /// A new user: the signup that created the user's group (the first signup wins, so
    /// once a user, unless that signup's answer was lost and its retry found the group).
    /// By the deployment's pool group: the pool-sizer's signup rate reads it back
    /// (`GetMetricData`), one call a run whatever the number of users.
    Signup { pool_group: String },
}

impl Metric {
    /// Name, value, unit and dimensions.
    #[must_use]
    pub fn parts(&self) -> (&'static str, f64, &'static str, Vec<(&'static str, String)>) {
        match self {
            Self::TimeToReady { seconds, path } => {
                ("TimeToReady", *seconds, "Seconds", vec![("Path", path.as_str().to_owned())])
            }
            Self::Failover => ("Failovers", 1.0, "Count", vec![]),
            Self::ClaimConflicts(n) => ("ClaimConflicts", f64::from(*n), "Count", vec![]),
            Self::PoolDepth(n) => ("PoolDepth", f64::from(*n), "Count", vec![]),
            Self::ColdPath => ("ColdPaths", 1.0, "Count", vec![]),
            Self::SignupRate(r) => ("SignupRate", *r, "Count/Second", vec![]),
            Self::RefillSeconds(s) => ("RefillTime", *s, "Seconds", vec![]),
            Self::PoolTarget(n) => ("PoolTarget", f64::from(*n), "Count", vec![]),
            Self::FailedEvent => ("FailedEvents", 1.0, "Count", vec![]),
            Self::GroupQuotaReached => ("GroupQuotaReached", 1.0, "Count", vec![]),
            Self::HostReplaced => ("HostReplaced", 1.0, "Count", vec![]),
            Self::FailedGroupRemoved => ("FailedGroupsRemoved", 1.0, "Count", vec![]),
            Self::UserLimitReached => ("UserLimitReached", 1.0, "Count", vec![]),
            Self::PoolWait => ("PoolWaits", 1.0, "Count", vec![]),
            Self::UserFailed => ("UsersFailed", 1.0, "Count", vec![]),
            Self::UsersInFlight { state, count } => {
                ("UsersInFlight", f64::from(*count), "Count", vec![("State", state.as_str().to_owned())])
            }
            Self::Orphans(n) => ("Orphans", f64::from(*n), "Count", vec![]),
            Self::Signup { pool_group } => (SIGNUPS, 1.0, "Count", vec![(POOL_GROUP, pool_group.clone())]),
        }
    }

    /// The EMF document for this metric at `timestamp_ms`.
    /// One of each kind of metric: what the template's dashboard and alarms may name
    /// (a test holds them to these names).
    #[must_use]
    pub fn every_kind() -> Vec<Self> {
        vec![
            Self::TimeToReady { seconds: 1.0, path: Path::Warm },
            Self::Failover,
            Self::ClaimConflicts(1),
            Self::PoolDepth(1),
            Self::ColdPath,
            Self::SignupRate(1.0),
            Self::RefillSeconds(1.0),
            Self::PoolTarget(1),
            Self::FailedEvent,
            Self::GroupQuotaReached,
            Self::HostReplaced,
            Self::FailedGroupRemoved,
            Self::UserLimitReached,
            Self::PoolWait,
            Self::UserFailed,
            Self::UsersInFlight { state: UserState::Claiming, count: 1 },
            Self::Orphans(1),
            Self::Signup { pool_group: "warmpool-pool".to_owned() },
        ]
    }

    #[must_use]
    pub fn to_emf(&self, timestamp_ms: u64) -> Value {
        let (name, value, unit, dims) = self.parts();
        // A metric with dimensions is published twice: by them, and over them all (the
        // empty set), so a dashboard or an alarm can read, say, every user's time to
        // ready as one metric (CloudWatch has no percentile across dimension values).
        let dim_names: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
        let dimension_sets = if dim_names.is_empty() { json!([[]]) } else { json!([dim_names, []]) };
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimension_sets,
                    "Metrics": [{ "Name": name, "Unit": unit }],
                }],
            },
            name: value,
        });
        for (k, v) in dims {
            doc[k] = v.into();
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variant's place in [`Metric::every_kind`]; exhaustive, so a new kind of metric
    /// does not compile until it is given one (and the test below has it listed).
    fn kind(m: &Metric) -> usize {
        match m {
            Metric::TimeToReady { .. } => 0,
            Metric::Failover => 1,
            Metric::ClaimConflicts(_) => 2,
            Metric::PoolDepth(_) => 3,
            Metric::ColdPath => 4,
            Metric::SignupRate(_) => 5,
            Metric::RefillSeconds(_) => 6,
            Metric::PoolTarget(_) => 7,
            Metric::FailedEvent => 8,
            Metric::GroupQuotaReached => 9,
            Metric::HostReplaced => 10,
            Metric::FailedGroupRemoved => 11,
            Metric::UserLimitReached => 12,
            Metric::PoolWait => 13,
            Metric::UserFailed => 14,
            Metric::UsersInFlight { .. } => 15,
            Metric::Orphans(_) => 16,
            Metric::Signup { .. } => 17,
        }
    }

    #[test]
    fn every_kind_lists_each_kind_once_with_its_own_name() {
        let kinds: Vec<usize> = Metric::every_kind().iter().map(kind).collect();
        assert_eq!(kinds, (0..=17).collect::<Vec<_>>());
        let names: std::collections::BTreeSet<&str> = Metric::every_kind().iter().map(|m| m.parts().0).collect();
        assert_eq!(names.len(), kinds.len(), "two kinds share a name: {names:?}");
    }

    #[test]
    fn emf_document_names_its_metric_and_dimensions() {
        let doc = Metric::TimeToReady { seconds: 8.5, path: Path::Warm }.to_emf(1_000);
        assert_eq!(doc["_aws"]["Timestamp"], 1_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "warmpool");
        assert_eq!(directive["Dimensions"], json!([["Path"], []]), "by path, and over every path");
        assert_eq!(directive["Metrics"][0], json!({"Name": "TimeToReady", "Unit": "Seconds"}));
        assert_eq!(doc["TimeToReady"], 8.5);
        assert_eq!(doc["Path"], "warm");
        let plain = Metric::ClaimConflicts(3).to_emf(1);
        assert_eq!(plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(plain["ClaimConflicts"], 3.0);
    }
}
