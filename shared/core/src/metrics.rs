//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per
//! metric, which CloudWatch Logs turns into a metric without an API call.

use serde_json::{Value, json};

use crate::domain::Path;

/// Namespace of every warmpool metric.
pub const NAMESPACE: &str = "warmpool";

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
    /// A signup found no pool instance to claim and began waiting for one (`POOL_WAIT_S`).
    PoolWait,
}

impl Metric {
    /// Name, value, unit and dimensions.
    #[must_use]
    pub fn parts(&self) -> (&'static str, f64, &'static str, Vec<(&'static str, &'static str)>) {
        match self {
            Self::TimeToReady { seconds, path } => ("TimeToReady", *seconds, "Seconds", vec![("Path", path.as_str())]),
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
        }
    }

    /// The EMF document for this metric at `timestamp_ms`.
    #[must_use]
    pub fn to_emf(&self, timestamp_ms: u64) -> Value {
        let (name, value, unit, dims) = self.parts();
        let dim_names: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dim_names],
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

    #[test]
    fn emf_document_names_its_metric_and_dimensions() {
        let doc = Metric::TimeToReady { seconds: 8.5, path: Path::Warm }.to_emf(1_000);
        assert_eq!(doc["_aws"]["Timestamp"], 1_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "warmpool");
        assert_eq!(directive["Dimensions"], json!([["Path"]]));
        assert_eq!(directive["Metrics"][0], json!({"Name": "TimeToReady", "Unit": "Seconds"}));
        assert_eq!(doc["TimeToReady"], 8.5);
        assert_eq!(doc["Path"], "warm");
        let plain = Metric::ClaimConflicts(3).to_emf(1);
        assert_eq!(plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(plain["ClaimConflicts"], 3.0);
    }
}
